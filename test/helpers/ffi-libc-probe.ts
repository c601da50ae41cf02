// Run by Bun (test/integration/ffi-libc.test.ts): the libc binding from the inside.
import { statSync } from "node:fs";
import { loadLibc, LibcError } from "../../src/ffi/libc.js";

const [target = ""] = process.argv.slice(2);
const libc = await loadLibc();
if (!libc) throw new Error("libc did not load under Bun");
const netnsInode = (): number => statSync("/proc/thread-self/ns/net").ino;
const before = netnsInode();
const inside = libc.withNetns(target, netnsInode);
const after = netnsInode();
let missing = "";
try {
  libc.withNetns(`${target}-missing`, netnsInode);
} catch (e) {
  missing = e instanceof LibcError ? e.code : String(e);
}
let thrown = "";
try {
  libc.withNetns(target, () => {
    throw new Error("from inside");
  });
} catch (e) {
  thrown = (e as Error).message;
}
console.log(
  JSON.stringify({
    before,
    inside,
    after,
    missing,
    thrown,
    afterThrow: netnsInode(),
    target: statSync(target).ino,
  }),
);
