// Run by Bun inside a namespace (test/integration/ffi-rtnetlink.test.ts): the device routeDevice
// finds for each address given, "-" where it finds no route, as JSON.
import { loadLibc } from "../../src/ffi/libc.js";
import { routeDevice } from "../../src/ffi/rtnetlink.js";
import { bytesOf, parseIP } from "../../src/address/index.js";

const libc = await loadLibc();
if (!libc) throw new Error("libc did not load under Bun");
const out: Record<string, string> = {};
for (const a of process.argv.slice(2)) out[a] = routeDevice(libc, bytesOf(parseIP(a)!)) ?? "-";
console.log(JSON.stringify(out));
