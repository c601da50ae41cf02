/**
 * The systemd units of the resident daemon (docs/resident.md), written by `cni-nft install
 * --resident` with the bin dir they run from; deploy/systemd holds the same text for /opt/cni/bin
 * (a unit test keeps them equal).
 */

export const RESIDENT_SOCKET_UNIT = "cni-nft-resident.socket";
export const RESIDENT_SERVICE_UNIT = "cni-nft-resident.service";

export function residentUnits(binDir: string): Record<string, string> {
  return {
    [RESIDENT_SOCKET_UNIT]: `# The socket cni-nft's plugins hand their calls to when a resident daemon serves them
# (docs/resident.md). systemd holds it and starts cni-nft-resident.service on the first call; with
# neither, the plugins run every call in-process, as without a daemon.
[Unit]
Description=cni-nft: socket of the resident plugin daemon
Documentation=file:///usr/share/doc/cni-nft/resident.md

[Socket]
ListenStream=/run/cni-nft/resident/plugins.sock
SocketUser=root
SocketMode=0600
DirectoryMode=0700
Accept=no

[Install]
WantedBy=sockets.target
`,
    [RESIDENT_SERVICE_UNIT]: `# The resident plugin daemon: plugin calls served by a warm process (docs/resident.md). It
# serves only callers in its own network and mount namespaces with its own privileges, so it is
# not sandboxed (PrivateTmp, ProtectSystem and the like make a mount namespace of its own, a
# narrower CapabilityBoundingSet other capabilities: then it would serve nobody). It exits after
# ten idle minutes; the socket starts it again. SIGTERM lets the calls in flight finish.
[Unit]
Description=cni-nft: resident plugin daemon
Documentation=file:///usr/share/doc/cni-nft/resident.md
Requires=${RESIDENT_SOCKET_UNIT}
After=${RESIDENT_SOCKET_UNIT}

[Service]
Type=simple
ExecStart=${binDir}/cni-nft resident --idle-exit 600
KillMode=mixed
TimeoutStopSec=90
`,
  };
}
