#!/usr/bin/env bash
# CPU time (user + system of the plugin processes and everything they start) of N bridge ADD+DEL
# pairs with ipMasq, per build and masquerade backend, in throwaway namespaces; rounds
# interleaved. Steadier than wall-clock figures on a loaded machine (docs/performance.md).
#   bash bench/veth-cpu.sh N ROUNDS DIR...   (DIR: a dist/compiled of a build)
set -u
usage() { echo "usage: bash bench/veth-cpu.sh [N [ROUNDS [DIR...]]]   (N pairs, default 20; ROUNDS, default 3; DIR: a dist/compiled)"; }
case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  -*) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
esac
for n in "${1:-20}" "${2:-3}"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "N and ROUNDS must be whole numbers, not $n" >&2; usage >&2; exit 2; }
done
N=${1:-20}
ROUNDS=${2:-3}
shift 2 || true
[ $# -gt 0 ] || set -- "$(cd "$(dirname "$0")/.." && pwd)/dist/compiled"
H=cni-nft-vcpu-h$$
C=cni-nft-vcpu-c$$
IPAM=$(mktemp -d)
ip netns add $H && ip netns add $C || exit 1
ip -n $H link set lo up
trap 'ip netns del $H; ip netns del $C; rm -rf "$IPAM"' EXIT
pairs() { # BIN BACKEND
  local conf='{"cniVersion":"1.0.0","name":"vcpu","type":"bridge","bridge":"vcpubr0","isGateway":true,"ipMasq":true,"ipMasqBackend":"'$2'","ipam":{"type":"host-local","dataDir":"'$IPAM'","ranges":[[{"subnet":"10.133.0.0/16"}]]}}'
  for i in $(seq "$N"); do
    for cmd in ADD DEL; do
      echo "$conf" | ip netns exec $H env CNI_COMMAND=$cmd CNI_CONTAINERID=c$i CNI_NETNS=/run/netns/$C \
        CNI_IFNAME=eth0 CNI_PATH="$1" "$1/bridge" >/dev/null || echo "failed: $1 $cmd $i" >&2
    done
  done
}
for round in $(seq "$ROUNDS"); do
  for bin in "$@"; do
    for backend in nftables iptables; do
      # `times` prints the shell's user/system, then its children's.
      t=$( (pairs "$bin" $backend; times) | tail -1)
      ms=$(echo "$t" | sed -E 's/0m([0-9.]+)s 0m([0-9.]+)s/\1 \2/' | awk -v n="$N" '{ printf "%.1f", ($1 + $2) * 1000 / n }')
      echo "round $round  $backend  $ms ms CPU per ADD+DEL  $bin"
    done
  done
done
