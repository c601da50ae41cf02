/*
 * cni-nft-client in C (docs/resident.md "The C client"): the resident daemon's client as an
 * executable of its own, for the sh fronts (built where the C fronts are not) and for callers that
 * start it directly. The plugin is named by CNI_NFT_PLUGIN, as the sh fronts set it; what the
 * daemon does not serve goes to cni-nft-plugins beside this file (call.c).
 */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "call.h"

int main(int argc, char **argv) {
  char self[PATH_MAX], plugins[PATH_MAX + 32];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) n = 0;
  self[n] = 0;
  char *slash = strrchr(self, '/');
  if (slash) *slash = 0;
  snprintf(plugins, sizeof plugins, "%s/cni-nft-plugins", slash ? self : ".");
  return resident_call(argc, argv, getenv("CNI_NFT_PLUGIN"), plugins);
}
