/*
 * A plugin's front in C (docs/resident.md "The fronts"), built once per plugin name by
 * scripts/build-compiled.mjs and linked with that name's entry of the table src/bin/fronts.ts
 * writes: front_plugin and front_version, the answer the sh front prints. It does what the sh
 * front does, in the same order, without a shell and without a second exec on the daemon's path:
 *   VERSION: the answer, exit 0, whatever else is set;
 *   no arguments, CNI_NFT_RESIDENT not off and a socket at CNI_NFT_RESIDENT_SOCKET (or the
 *   default path; `[ -S ]` follows links): the daemon's client (call.c) in this process, which
 *   hands what the daemon does not serve to cni-nft-plugins as cni-nft-client does;
 *   anything else: exec cni-nft-plugins beside the front with CNI_NFT_PLUGIN set.
 * "Beside" is the sh front's: the directory of the path the caller executed (the kernel gives the
 * script that path as $0; a native executable finds it in AT_EXECFN), a symlink resolved first.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

#include "call.h"

extern const char front_plugin[];
extern const char front_version[];
extern const size_t front_version_len;
/* The line of the sh front's exec, which dash names when the exec fails. */
extern const int front_exec_line;

int main(int argc, char **argv) {
  const char *verb = getenv("CNI_COMMAND");
  if (verb && strcmp(verb, "VERSION") == 0) {
    /* printf in the sh front: a failed write still exits 0. */
    for (size_t off = 0; off < front_version_len;) {
      ssize_t w = write(1, front_version + off, front_version_len - off);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) break;
      off += (size_t)w;
    }
    return 0;
  }
  const char *execfn = (const char *)getauxval(AT_EXECFN), *self = execfn;
  if (!self) self = execfn = argc > 0 ? argv[0] : "";
  char resolved[PATH_MAX], plugins[PATH_MAX + 32];
  struct stat st;
  /* `readlink -f` of the sh front: a link resolved whole; when that fails, $self is empty. */
  if (lstat(self, &st) == 0 && S_ISLNK(st.st_mode)) self = realpath(self, resolved) ? resolved : "";
  const char *slash = strrchr(self, '/');
  if (slash) snprintf(plugins, sizeof plugins, "%.*s/cni-nft-plugins", (int)(slash - self), self);
  else snprintf(plugins, sizeof plugins, "./cni-nft-plugins");
  /* The sh front's `CNI_NFT_PLUGIN=name exec "$dir/$bin" "$@"`: the name set, argv[0] the path. */
  if (setenv("CNI_NFT_PLUGIN", front_plugin, 1) != 0) return 2;
  char *alone[] = {plugins, NULL};
  char **args = argc > 0 ? argv : alone;
  args[0] = plugins;
  int n = argc > 0 ? argc : 1;
  const char *off = getenv("CNI_NFT_RESIDENT");
  const char *sock = getenv("CNI_NFT_RESIDENT_SOCKET");
  if (!sock || !*sock) sock = DEFAULT_SOCKET;
  if (n == 1 && !(off && strcmp(off, "off") == 0) && stat(sock, &st) == 0 && S_ISSOCK(st.st_mode))
    return resident_call(n, args, front_plugin, plugins);
  execv(plugins, args);
  /* What dash says and exits with when its exec fails. */
  int e = errno;
  fprintf(stderr, "%s: %d: exec: %s: %s\n", execfn, front_exec_line, plugins,
          e == ENOENT || e == ENOTDIR ? "not found" : strerror(e));
  return e == ENOENT ? 127 : e == EACCES ? 126 : 2;
}
