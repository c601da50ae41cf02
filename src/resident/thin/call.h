/*
 * The resident daemon's client in C (docs/resident.md "The C client"), shared by cni-nft-client
 * (client.c) and the plugins' C fronts (front.c).
 */
#ifndef CNI_NFT_THIN_CALL_H
#define CNI_NFT_THIN_CALL_H

#define DEFAULT_SOCKET "/run/cni-nft/resident/plugins.sock"

/*
 * Hands the call of `plugin` to the daemon and returns the exit code it answered with, its stdout
 * and stderr written. A call it does not serve never returns: it execs `plugins` (the multi-call
 * binary) with `argv` and the stdin read so far.
 */
int resident_call(int argc, char **argv, const char *plugin, const char *plugins);

#endif
