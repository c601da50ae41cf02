// Preloaded by `bun test` (test/integration/nftables-libnftables.test.ts): the nftables tests
// that follow must run on libnftables in-process, not quietly on the nft command.
import { loadLibNftables } from "../../src/nftables/libnftables.js";

if (!(await loadLibNftables())) throw new Error("libnftables did not load under Bun");
