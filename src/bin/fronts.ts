/**
 * What scripts/build-compiled.mjs writes for each plugin name in dist/compiled: its front, the
 * small executable a runtime starts (docs/resident.md "The fronts"). Where a cc is there the
 * front is C (src/resident/thin/front.c, linked with `cFrontTable`); otherwise, or with
 * CNI_NFT_FRONT=sh, it is the sh script `shFront`. Both answer VERSION with the same bytes, the
 * multi-call binary's own answer (a test compares them for every plugin), and otherwise exec the
 * same program the same way.
 */
import { SHIM_MARKER } from "../cni/ipam.js";
import { CLIENT_EXECUTABLE } from "../resident/peer.js";

/** What the fronts exec (the sh front: the client instead when a daemon's socket exists). */
export const MULTICALL_EXECUTABLE = "cni-nft-plugins";

/**
 * The sh front of `name`; `version` is the multi-call binary's VERSION answer, without its
 * newline. The marker is in its first line but one: IPAM delegation recognises it as ours.
 */
export function shFront(name: string, version: string): string {
  if (version.includes("'")) throw new Error("VERSION answer cannot be quoted for sh");
  return `#!/bin/sh
# ${SHIM_MARKER} front for the ${name} plugin (scripts/build-compiled.mjs): VERSION answered here,
# every other verb by a compiled binary beside this file.
if [ "$CNI_COMMAND" = VERSION ]; then
  printf '%s\\n' '${version}'
  exit 0
fi
self=$0
[ -L "$self" ] && self=$(readlink -f "$self")
case $self in */*) dir=\${self%/*} ;; *) dir=. ;; esac
# A daemon's socket (docs/resident.md): its client, which checks it and falls back in-process.
bin=${MULTICALL_EXECUTABLE}
if [ $# -eq 0 ] && [ "$CNI_NFT_RESIDENT" != off ] &&
  [ -S "\${CNI_NFT_RESIDENT_SOCKET:-/run/cni-nft/resident/plugins.sock}" ]; then
  bin=${CLIENT_EXECUTABLE}
fi
CNI_NFT_PLUGIN=${name} exec "$dir/$bin" "$@"
`;
}

/** A C string literal of `s`'s UTF-8 bytes: printable ASCII as is, the rest as octal escapes. */
function cString(s: string): string {
  const plain = (b: number): boolean => b >= 0x20 && b < 0x7f && b !== 0x22 && b !== 0x5c && b !== 0x3f;
  const body = [...Buffer.from(s, "utf8")]
    .map((b) => (plain(b) ? String.fromCharCode(b) : `\\${b.toString(8).padStart(3, "0")}`))
    .join("");
  return `"${body}"`;
}

/**
 * The C front's table entry for `name` (front.c declares these): the plugin's name, the VERSION
 * answer as the sh front prints it, the line dash names when the sh front's exec fails, and the
 * marker as an ELF note, which the linker puts in the first page, where IPAM delegation looks.
 */
export function cFrontTable(name: string, version: string): string {
  if (!/^[a-z][a-z0-9-]*$/.test(name)) throw new Error(`not a plugin name: ${name}`);
  const execLine =
    shFront(name, version)
      .split("\n")
      .findIndex((l) => l.includes(" exec ")) + 1;
  const marker = cString(SHIM_MARKER);
  return `/* The ${name} front's table entry (src/bin/fronts.ts, scripts/build-compiled.mjs). */
#include <stddef.h>
const char front_plugin[] = ${cString(name)};
const char front_version[] = ${cString(`${version}\n`)};
const size_t front_version_len = sizeof front_version - 1;
const int front_exec_line = ${execLine};
__asm__(".section .note.cni-nft,\\"a\\",@note\\n"
        ".balign 4\\n"
        ".long ${Buffer.byteLength(SHIM_MARKER) + 1}, 0, 1\\n"
        ".asciz " ${JSON.stringify(marker)} "\\n"
        ".balign 4\\n"
        ".previous");
`;
}
