#!/usr/bin/env bash
# Installs what cni-nft's demo and tests need on a Debian machine, only where it is missing:
# Debian packages (nftables, iptables, iproute2, upstream CNI plugins as the oracle) and npm
# packages (npm ci when node_modules is missing or older than package-lock.json).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v nft >/dev/null || need+=(nftables)
# libnftables1 (nft's own library, a dependency of nftables): the compiled plugins call it in-process.
/sbin/ldconfig -p 2>/dev/null | grep -q 'libnftables\.so\.1 ' || need+=(libnftables1)
command -v iptables >/dev/null || need+=(iptables)
command -v ip >/dev/null || need+=(iproute2)
command -v nsenter >/dev/null || need+=(util-linux)
command -v conntrack >/dev/null || need+=(conntrack)
# strace: the crash-safety tests kill plugins at chosen syscalls with its fault injection.
command -v strace >/dev/null || need+=(strace)
# A C compiler and libc's headers for the resident daemon's client (src/resident/thin/client.c);
# gcc only recommends libc6-dev, and recommends are not installed here.
command -v cc >/dev/null || need+=(gcc)
[ -f /usr/include/stdio.h ] || need+=(libc6-dev)
# ipset for the netfilter manager's iptables backend (its sets) and its tests.
command -v ipset >/dev/null || need+=(ipset)
# ping: ICMP verdicts in the netfilter manager's kernel tests.
command -v ping >/dev/null || need+=(iputils-ping)
# zsh: the completion test checks the zsh script with zsh -n (2.4 MB installed).
command -v zsh >/dev/null || need+=(zsh)
[ -x /usr/lib/cni/host-local ] || need+=(containernetworking-plugins)
# dnsmasq serves DHCP to the dhcp plugin's test (the binary only: dnsmasq-base starts no service).
command -v dnsmasq >/dev/null || need+=(dnsmasq-base)
# firewalld for the firewall plugin's firewalld test (run in its own namespace on a private bus);
# only where nothing would start it on the host: no systemd and a policy-rc.d (containers, CI).
if ! command -v firewalld >/dev/null && [ ! -d /run/systemd/system ] && [ -x /usr/sbin/policy-rc.d ]; then
  need+=(firewalld dbus-daemon dbus-bin)
fi
# podman 4.3 (CNI backend), runc and a static busybox for the podman test, under the same rule.
if [ ! -d /run/systemd/system ] && [ -x /usr/sbin/policy-rc.d ]; then
  command -v podman >/dev/null || need+=(podman)
  command -v runc >/dev/null || need+=(runc)
  command -v busybox >/dev/null || need+=(busybox-static)
  # containerd 1.6 with its CRI plugin, run by the Kubernetes-shaped test in its own temp dirs.
  command -v containerd >/dev/null || need+=(containerd)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi
