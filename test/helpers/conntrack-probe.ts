// Run by Bun inside a namespace (test/integration/conntrack.test.ts): the UDP flush through
// ctnetlink, with no command to fall back on.
import { flushUdpConntrack } from "../../src/conntrack/flush.js";

const ports = process.argv.slice(2).map(Number);
await flushUdpConntrack(ports, [4, 6], { commandPresent: false });
