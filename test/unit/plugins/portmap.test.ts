/**
 * portmap on both backends without root: the fake nftables ruleset and the fake iptables, every
 * step's host state compared with literal text. test/integration/portmap*.test.ts prove the same
 * layouts on the kernel with real connections.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeHost } from "../../../src/hoststate/fake.js";
import { portmapBackends } from "../../../plugins/meta/portmap/backends.js";
import type { PortMapSpec } from "../../../plugins/meta/portmap/config.js";
import { NFT_TABLE, type NftablesPortMapper } from "../../../plugins/meta/portmap/portmap_nftables.js";
import { snatChain } from "../../../plugins/meta/portmap/portmap_nftables_layout.js";
import { A, B, C, BASE, SPEC_A, SPEC_C, specB, threeAttached, type Name } from "./portmap-fixtures.js";
import { spyReads } from "../../helpers/nft-reads.js";

const NFTABLES_ADD = String.raw`add table inet cni_nft_portmap { comment "CNI portmap (cni-nft): host ports to containers, state in maps" ; }
add counter inet cni_nft_portmap cond4-2d25284b6bb9 { comment "DNATed under these conditions, named by the class's maps" ; }
add counter inet cni_nft_portmap snat_sub4-15f04f2f13e6 { comment "masquerade to 10.88.0.0/24, named by the snat map" ; }
add counter inet cni_nft_portmap snat_sub4-9d8797614eb1 { comment "masquerade to 10.99.0.0/16, named by the snat map" ; }
add counter inet cni_nft_portmap snat_sub6-ef330fd8e3d4 { comment "masquerade to fd00::/64, named by the snat map" ; }
add chain inet cni_nft_portmap cond4-2d25284b6bb9 { type nat hook prerouting priority -99 ; policy accept ; }
add chain inet cni_nft_portmap cond4-2d25284b6bb9-out { type nat hook output priority -99 ; policy accept ; }
add chain inet cni_nft_portmap hostports
add chain inet cni_nft_portmap output { type nat hook output priority -100 ; policy accept ; }
add chain inet cni_nft_portmap postrouting { type nat hook postrouting priority 100 ; policy accept ; }
add chain inet cni_nft_portmap prerouting { type nat hook prerouting priority -100 ; policy accept ; }
add chain inet cni_nft_portmap snat_sub4-15f04f2f13e6 { type nat hook postrouting priority 100 ; policy accept ; }
add chain inet cni_nft_portmap snat_sub4-9d8797614eb1 { type nat hook postrouting priority 100 ; policy accept ; }
add chain inet cni_nft_portmap snat_sub6-ef330fd8e3d4 { type nat hook postrouting priority 100 ; policy accept ; }
add map inet cni_nft_portmap cond_any4-2d25284b6bb9 { type inet_proto . inet_service : counter ; }
add map inet cni_nft_portmap cond_ip4-2d25284b6bb9 { type ipv4_addr . inet_proto . inet_service : counter ; }
add map inet cni_nft_portmap dnat_any4 { type inet_proto . inet_service : ipv4_addr . inet_service ; }
add map inet cni_nft_portmap dnat_any6 { type inet_proto . inet_service : ipv6_addr . inet_service ; }
add map inet cni_nft_portmap dnat_ip4 { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service ; }
add map inet cni_nft_portmap dnat_ip6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service ; }
add set inet cni_nft_portmap guarded_any4 { type inet_proto . inet_service ; }
add set inet cni_nft_portmap guarded_any6 { type inet_proto . inet_service ; }
add set inet cni_nft_portmap guarded_ip4 { type ipv4_addr . inet_proto . inet_service ; }
add set inet cni_nft_portmap guarded_ip6 { type ipv6_addr . inet_proto . inet_service ; }
add set inet cni_nft_portmap owners { type ifname . ifname ; comment "owner tag . element tag, one per element (comment: owner)" ; }
add set inet cni_nft_portmap snat_all4 { type ipv4_addr . inet_proto . inet_service ; }
add set inet cni_nft_portmap snat_all6 { type ipv6_addr . inet_proto . inet_service ; }
add map inet cni_nft_portmap snat_sub4 { type ipv4_addr . inet_proto . inet_service : counter ; }
add map inet cni_nft_portmap snat_sub6 { type ipv6_addr . inet_proto . inet_service : counter ; }
add rule inet cni_nft_portmap cond4-2d25284b6bb9 fib daddr type local ip saddr 192.168.0.0/16 counter name ip daddr . meta l4proto . th dport map @cond_ip4-2d25284b6bb9 dnat ip to ip daddr . meta l4proto . th dport map @dnat_ip4
add rule inet cni_nft_portmap cond4-2d25284b6bb9 fib daddr type local ip daddr . meta l4proto . th dport @guarded_ip4 return
add rule inet cni_nft_portmap cond4-2d25284b6bb9 fib daddr type local meta nfproto ipv4 ip saddr 192.168.0.0/16 counter name meta l4proto . th dport map @cond_any4-2d25284b6bb9 dnat ip to meta l4proto . th dport map @dnat_any4
add rule inet cni_nft_portmap cond4-2d25284b6bb9-out fib daddr type local ip saddr 192.168.0.0/16 counter name ip daddr . meta l4proto . th dport map @cond_ip4-2d25284b6bb9 dnat ip to ip daddr . meta l4proto . th dport map @dnat_ip4
add rule inet cni_nft_portmap cond4-2d25284b6bb9-out fib daddr type local ip daddr . meta l4proto . th dport @guarded_ip4 return
add rule inet cni_nft_portmap cond4-2d25284b6bb9-out fib daddr type local meta nfproto ipv4 ip saddr 192.168.0.0/16 counter name meta l4proto . th dport map @cond_any4-2d25284b6bb9 dnat ip to meta l4proto . th dport map @dnat_any4
add rule inet cni_nft_portmap hostports ip daddr . meta l4proto . th dport @guarded_ip4 return
add rule inet cni_nft_portmap hostports dnat ip to ip daddr . meta l4proto . th dport map @dnat_ip4
add rule inet cni_nft_portmap hostports meta nfproto ipv4 meta l4proto . th dport @guarded_any4 return
add rule inet cni_nft_portmap hostports meta nfproto ipv4 dnat ip to meta l4proto . th dport map @dnat_any4
add rule inet cni_nft_portmap hostports ip6 daddr . meta l4proto . th dport @guarded_ip6 return
add rule inet cni_nft_portmap hostports dnat ip6 to ip6 daddr . meta l4proto . th dport map @dnat_ip6
add rule inet cni_nft_portmap hostports meta nfproto ipv6 meta l4proto . th dport @guarded_any6 return
add rule inet cni_nft_portmap hostports meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @dnat_any6
add rule inet cni_nft_portmap output fib daddr type local jump hostports
add rule inet cni_nft_portmap postrouting ct status dnat ip daddr . meta l4proto . th dport @snat_all4 masquerade
add rule inet cni_nft_portmap postrouting ct status dnat ip6 daddr . meta l4proto . th dport @snat_all6 masquerade
add rule inet cni_nft_portmap prerouting fib daddr type local jump hostports
add rule inet cni_nft_portmap snat_sub4-15f04f2f13e6 ct status dnat ip daddr 10.88.0.0/24 ip saddr 10.88.0.0/24 counter name ip daddr . meta l4proto . th dport map @snat_sub4 masquerade
add rule inet cni_nft_portmap snat_sub4-15f04f2f13e6 ct status dnat ip daddr 10.88.0.0/24 ip saddr 127.0.0.1 counter name ip daddr . meta l4proto . th dport map @snat_sub4 masquerade
add rule inet cni_nft_portmap snat_sub4-9d8797614eb1 ct status dnat ip daddr 10.99.0.0/16 ip saddr 10.99.0.0/16 counter name ip daddr . meta l4proto . th dport map @snat_sub4 masquerade
add rule inet cni_nft_portmap snat_sub4-9d8797614eb1 ct status dnat ip daddr 10.99.0.0/16 ip saddr 127.0.0.1 counter name ip daddr . meta l4proto . th dport map @snat_sub4 masquerade
add rule inet cni_nft_portmap snat_sub6-ef330fd8e3d4 ct status dnat ip6 daddr fd00::/64 ip6 saddr fd00::/64 counter name ip6 daddr . meta l4proto . th dport map @snat_sub6 masquerade
add element inet cni_nft_portmap cond_ip4-2d25284b6bb9 { 192.168.1.1 . tcp . 9090 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2" : cond4-2d25284b6bb9 }
add element inet cni_nft_portmap dnat_any4 { tcp . 7070 comment "a5855bd82c6a57c4-dc2c1252476a5386, net: net2, if: eth0, id: ctr3" : 10.99.0.7 . 70, tcp . 8080 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : 10.88.0.5 . 80, udp . 5353 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : 10.88.0.5 . 53 }
add element inet cni_nft_portmap dnat_any6 { tcp . 8080 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : fd00::5 . 80, udp . 5353 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : fd00::5 . 53 }
add element inet cni_nft_portmap dnat_ip4 { 192.168.1.1 . tcp . 9090 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2" : 10.88.0.6 . 90 }
add element inet cni_nft_portmap guarded_ip4 { 192.168.1.1 . tcp . 9090 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2" }
add element inet cni_nft_portmap owners { 8911529e0e42a90 . 323ad11e19a7d17 comment "a5855bd82c6a57c4-dc2c1252476a5386, net: net2, if: eth0, id: ctr3", 8911529e0e42a90 . d372df98d9382d0 comment "a5855bd82c6a57c4-dc2c1252476a5386, net: net2, if: eth0, id: ctr3", 9fb6ac25b24dfdc . 32cdd17bca7675f comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . 7e8376e935a5d6a comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . 81292901f8358b8 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . 8837191ab7dac4e comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . b71c41a2f953881 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . cb6a6e31ab3183b comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . df2d924ec2520a7 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . f561f26038b2ff9 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", c341cbe82cf3de1 . 1d7b3dee6d13454 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2", c341cbe82cf3de1 . 9665ef48d243f91 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2", c341cbe82cf3de1 . f5ad7506d3bbab5 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2", c341cbe82cf3de1 . fbb6958305bede8 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2" }
add element inet cni_nft_portmap snat_sub4 { 10.88.0.5 . tcp . 80 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : snat_sub4-15f04f2f13e6, 10.88.0.5 . udp . 53 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : snat_sub4-15f04f2f13e6, 10.88.0.6 . tcp . 90 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2" : snat_sub4-15f04f2f13e6, 10.99.0.7 . tcp . 70 comment "a5855bd82c6a57c4-dc2c1252476a5386, net: net2, if: eth0, id: ctr3" : snat_sub4-9d8797614eb1 }
add element inet cni_nft_portmap snat_sub6 { fd00::5 . tcp . 80 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : snat_sub6-ef330fd8e3d4, fd00::5 . udp . 53 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : snat_sub6-ef330fd8e3d4 }
`;
const NFTABLES_DEL = String.raw`add table inet cni_nft_portmap { comment "CNI portmap (cni-nft): host ports to containers, state in maps" ; }
add counter inet cni_nft_portmap cond4-2d25284b6bb9 { comment "DNATed under these conditions, named by the class's maps" ; }
add counter inet cni_nft_portmap snat_sub4-15f04f2f13e6 { comment "masquerade to 10.88.0.0/24, named by the snat map" ; }
add counter inet cni_nft_portmap snat_sub4-9d8797614eb1 { comment "masquerade to 10.99.0.0/16, named by the snat map" ; }
add chain inet cni_nft_portmap cond4-2d25284b6bb9 { type nat hook prerouting priority -99 ; policy accept ; }
add chain inet cni_nft_portmap cond4-2d25284b6bb9-out { type nat hook output priority -99 ; policy accept ; }
add chain inet cni_nft_portmap hostports
add chain inet cni_nft_portmap output { type nat hook output priority -100 ; policy accept ; }
add chain inet cni_nft_portmap postrouting { type nat hook postrouting priority 100 ; policy accept ; }
add chain inet cni_nft_portmap prerouting { type nat hook prerouting priority -100 ; policy accept ; }
add chain inet cni_nft_portmap snat_sub4-15f04f2f13e6 { type nat hook postrouting priority 100 ; policy accept ; }
add chain inet cni_nft_portmap snat_sub4-9d8797614eb1 { type nat hook postrouting priority 100 ; policy accept ; }
add map inet cni_nft_portmap cond_any4-2d25284b6bb9 { type inet_proto . inet_service : counter ; }
add map inet cni_nft_portmap cond_ip4-2d25284b6bb9 { type ipv4_addr . inet_proto . inet_service : counter ; }
add map inet cni_nft_portmap dnat_any4 { type inet_proto . inet_service : ipv4_addr . inet_service ; }
add map inet cni_nft_portmap dnat_any6 { type inet_proto . inet_service : ipv6_addr . inet_service ; }
add map inet cni_nft_portmap dnat_ip4 { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service ; }
add map inet cni_nft_portmap dnat_ip6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service ; }
add set inet cni_nft_portmap guarded_any4 { type inet_proto . inet_service ; }
add set inet cni_nft_portmap guarded_any6 { type inet_proto . inet_service ; }
add set inet cni_nft_portmap guarded_ip4 { type ipv4_addr . inet_proto . inet_service ; }
add set inet cni_nft_portmap guarded_ip6 { type ipv6_addr . inet_proto . inet_service ; }
add set inet cni_nft_portmap owners { type ifname . ifname ; comment "owner tag . element tag, one per element (comment: owner)" ; }
add set inet cni_nft_portmap snat_all4 { type ipv4_addr . inet_proto . inet_service ; }
add set inet cni_nft_portmap snat_all6 { type ipv6_addr . inet_proto . inet_service ; }
add map inet cni_nft_portmap snat_sub4 { type ipv4_addr . inet_proto . inet_service : counter ; }
add map inet cni_nft_portmap snat_sub6 { type ipv6_addr . inet_proto . inet_service : counter ; }
add rule inet cni_nft_portmap cond4-2d25284b6bb9 fib daddr type local ip saddr 192.168.0.0/16 counter name ip daddr . meta l4proto . th dport map @cond_ip4-2d25284b6bb9 dnat ip to ip daddr . meta l4proto . th dport map @dnat_ip4
add rule inet cni_nft_portmap cond4-2d25284b6bb9 fib daddr type local ip daddr . meta l4proto . th dport @guarded_ip4 return
add rule inet cni_nft_portmap cond4-2d25284b6bb9 fib daddr type local meta nfproto ipv4 ip saddr 192.168.0.0/16 counter name meta l4proto . th dport map @cond_any4-2d25284b6bb9 dnat ip to meta l4proto . th dport map @dnat_any4
add rule inet cni_nft_portmap cond4-2d25284b6bb9-out fib daddr type local ip saddr 192.168.0.0/16 counter name ip daddr . meta l4proto . th dport map @cond_ip4-2d25284b6bb9 dnat ip to ip daddr . meta l4proto . th dport map @dnat_ip4
add rule inet cni_nft_portmap cond4-2d25284b6bb9-out fib daddr type local ip daddr . meta l4proto . th dport @guarded_ip4 return
add rule inet cni_nft_portmap cond4-2d25284b6bb9-out fib daddr type local meta nfproto ipv4 ip saddr 192.168.0.0/16 counter name meta l4proto . th dport map @cond_any4-2d25284b6bb9 dnat ip to meta l4proto . th dport map @dnat_any4
add rule inet cni_nft_portmap hostports ip daddr . meta l4proto . th dport @guarded_ip4 return
add rule inet cni_nft_portmap hostports dnat ip to ip daddr . meta l4proto . th dport map @dnat_ip4
add rule inet cni_nft_portmap hostports meta nfproto ipv4 meta l4proto . th dport @guarded_any4 return
add rule inet cni_nft_portmap hostports meta nfproto ipv4 dnat ip to meta l4proto . th dport map @dnat_any4
add rule inet cni_nft_portmap hostports ip6 daddr . meta l4proto . th dport @guarded_ip6 return
add rule inet cni_nft_portmap hostports dnat ip6 to ip6 daddr . meta l4proto . th dport map @dnat_ip6
add rule inet cni_nft_portmap hostports meta nfproto ipv6 meta l4proto . th dport @guarded_any6 return
add rule inet cni_nft_portmap hostports meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @dnat_any6
add rule inet cni_nft_portmap output fib daddr type local jump hostports
add rule inet cni_nft_portmap postrouting ct status dnat ip daddr . meta l4proto . th dport @snat_all4 masquerade
add rule inet cni_nft_portmap postrouting ct status dnat ip6 daddr . meta l4proto . th dport @snat_all6 masquerade
add rule inet cni_nft_portmap prerouting fib daddr type local jump hostports
add rule inet cni_nft_portmap snat_sub4-15f04f2f13e6 ct status dnat ip daddr 10.88.0.0/24 ip saddr 10.88.0.0/24 counter name ip daddr . meta l4proto . th dport map @snat_sub4 masquerade
add rule inet cni_nft_portmap snat_sub4-15f04f2f13e6 ct status dnat ip daddr 10.88.0.0/24 ip saddr 127.0.0.1 counter name ip daddr . meta l4proto . th dport map @snat_sub4 masquerade
add rule inet cni_nft_portmap snat_sub4-9d8797614eb1 ct status dnat ip daddr 10.99.0.0/16 ip saddr 10.99.0.0/16 counter name ip daddr . meta l4proto . th dport map @snat_sub4 masquerade
add rule inet cni_nft_portmap snat_sub4-9d8797614eb1 ct status dnat ip daddr 10.99.0.0/16 ip saddr 127.0.0.1 counter name ip daddr . meta l4proto . th dport map @snat_sub4 masquerade
add element inet cni_nft_portmap cond_ip4-2d25284b6bb9 { 192.168.1.1 . tcp . 9090 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2" : cond4-2d25284b6bb9 }
add element inet cni_nft_portmap dnat_any4 { tcp . 7070 comment "a5855bd82c6a57c4-dc2c1252476a5386, net: net2, if: eth0, id: ctr3" : 10.99.0.7 . 70 }
add element inet cni_nft_portmap dnat_ip4 { 192.168.1.1 . tcp . 9090 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2" : 10.88.0.6 . 90 }
add element inet cni_nft_portmap guarded_ip4 { 192.168.1.1 . tcp . 9090 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2" }
add element inet cni_nft_portmap owners { 8911529e0e42a90 . 323ad11e19a7d17 comment "a5855bd82c6a57c4-dc2c1252476a5386, net: net2, if: eth0, id: ctr3", 8911529e0e42a90 . d372df98d9382d0 comment "a5855bd82c6a57c4-dc2c1252476a5386, net: net2, if: eth0, id: ctr3", c341cbe82cf3de1 . 1d7b3dee6d13454 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2", c341cbe82cf3de1 . 9665ef48d243f91 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2", c341cbe82cf3de1 . f5ad7506d3bbab5 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2", c341cbe82cf3de1 . fbb6958305bede8 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2" }
add element inet cni_nft_portmap snat_sub4 { 10.88.0.6 . tcp . 90 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2" : snat_sub4-15f04f2f13e6, 10.99.0.7 . tcp . 70 comment "a5855bd82c6a57c4-dc2c1252476a5386, net: net2, if: eth0, id: ctr3" : snat_sub4-9d8797614eb1 }
`;
const IPTABLES_ADD = String.raw`# iptables
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-DN-85373d34c6846b6c53ee2 - [0:0]
:CNI-DN-ab34fddc4b1c33839a653 - [0:0]
:CNI-DN-ed4ec4e114083227db6b9 - [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A CNI-DN-85373d34c6846b6c53ee2 -s 10.88.0.0/24 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-85373d34c6846b6c53ee2 -s 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-85373d34c6846b6c53ee2 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.88.0.5:80
-A CNI-DN-85373d34c6846b6c53ee2 -s 10.88.0.0/24 -p udp -m udp --dport 5353 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-85373d34c6846b6c53ee2 -s 127.0.0.1/32 -p udp -m udp --dport 5353 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-85373d34c6846b6c53ee2 -p udp -m udp --dport 5353 -j DNAT --to-destination 10.88.0.5:53
-A CNI-DN-ab34fddc4b1c33839a653 -s 10.99.0.0/16 -p tcp -m tcp --dport 7070 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-ab34fddc4b1c33839a653 -s 127.0.0.1/32 -p tcp -m tcp --dport 7070 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-ab34fddc4b1c33839a653 -p tcp -m tcp --dport 7070 -j DNAT --to-destination 10.99.0.7:70
-A CNI-DN-ed4ec4e114083227db6b9 -s 10.88.0.0/24 -d 192.168.1.1/32 -p tcp -m tcp --dport 9090 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-ed4ec4e114083227db6b9 -s 127.0.0.1/32 -d 192.168.1.1/32 -p tcp -m tcp --dport 9090 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-ed4ec4e114083227db6b9 -d 192.168.1.1/32 -p tcp -m tcp --dport 9090 -j DNAT --to-destination 10.88.0.6:90
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"net1\" id: \"ctr1\"" -m multiport --dports 8080 -j CNI-DN-85373d34c6846b6c53ee2
-A CNI-HOSTPORT-DNAT -p udp -m comment --comment "dnat name: \"net1\" id: \"ctr1\"" -m multiport --dports 5353 -j CNI-DN-85373d34c6846b6c53ee2
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"net1\" id: \"ctr2\"" -m multiport --dports 9090 -s 192.168.0.0/16 -j CNI-DN-ed4ec4e114083227db6b9
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"net2\" id: \"ctr3\"" -m multiport --dports 7070 -j CNI-DN-ab34fddc4b1c33839a653
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
COMMIT
# ip6tables
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-DN-85373d34c6846b6c53ee2 - [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A CNI-DN-85373d34c6846b6c53ee2 -s fd00::/64 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-85373d34c6846b6c53ee2 -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00::5]:80
-A CNI-DN-85373d34c6846b6c53ee2 -s fd00::/64 -p udp -m udp --dport 5353 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-85373d34c6846b6c53ee2 -p udp -m udp --dport 5353 -j DNAT --to-destination [fd00::5]:53
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"net1\" id: \"ctr1\"" -m multiport --dports 8080 -j CNI-DN-85373d34c6846b6c53ee2
-A CNI-HOSTPORT-DNAT -p udp -m comment --comment "dnat name: \"net1\" id: \"ctr1\"" -m multiport --dports 5353 -j CNI-DN-85373d34c6846b6c53ee2
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
COMMIT
`;
const IPTABLES_ADD2 = String.raw`# iptables
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-DN-85373d34c6846b6c53ee2 - [0:0]
:CNI-DN-ab34fddc4b1c33839a653 - [0:0]
:CNI-DN-ed4ec4e114083227db6b9 - [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A CNI-DN-85373d34c6846b6c53ee2 -s 10.88.0.0/24 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-85373d34c6846b6c53ee2 -s 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-85373d34c6846b6c53ee2 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.88.0.5:80
-A CNI-DN-85373d34c6846b6c53ee2 -s 10.88.0.0/24 -p udp -m udp --dport 5353 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-85373d34c6846b6c53ee2 -s 127.0.0.1/32 -p udp -m udp --dport 5353 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-85373d34c6846b6c53ee2 -p udp -m udp --dport 5353 -j DNAT --to-destination 10.88.0.5:53
-A CNI-DN-ab34fddc4b1c33839a653 -s 10.99.0.0/16 -p tcp -m tcp --dport 7070 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-ab34fddc4b1c33839a653 -s 127.0.0.1/32 -p tcp -m tcp --dport 7070 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-ab34fddc4b1c33839a653 -p tcp -m tcp --dport 7070 -j DNAT --to-destination 10.99.0.7:70
-A CNI-DN-ed4ec4e114083227db6b9 -s 10.88.0.0/24 -d 192.168.1.1/32 -p tcp -m tcp --dport 9090 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-ed4ec4e114083227db6b9 -s 127.0.0.1/32 -d 192.168.1.1/32 -p tcp -m tcp --dport 9090 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-ed4ec4e114083227db6b9 -d 192.168.1.1/32 -p tcp -m tcp --dport 9090 -j DNAT --to-destination 10.88.0.6:90
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"net1\" id: \"ctr2\"" -m multiport --dports 9090 -s 192.168.0.0/16 -j CNI-DN-ed4ec4e114083227db6b9
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"net2\" id: \"ctr3\"" -m multiport --dports 7070 -j CNI-DN-ab34fddc4b1c33839a653
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"net1\" id: \"ctr1\"" -m multiport --dports 8080 -j CNI-DN-85373d34c6846b6c53ee2
-A CNI-HOSTPORT-DNAT -p udp -m comment --comment "dnat name: \"net1\" id: \"ctr1\"" -m multiport --dports 5353 -j CNI-DN-85373d34c6846b6c53ee2
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
COMMIT
# ip6tables
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-DN-85373d34c6846b6c53ee2 - [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A CNI-DN-85373d34c6846b6c53ee2 -s fd00::/64 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-85373d34c6846b6c53ee2 -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00::5]:80
-A CNI-DN-85373d34c6846b6c53ee2 -s fd00::/64 -p udp -m udp --dport 5353 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-85373d34c6846b6c53ee2 -p udp -m udp --dport 5353 -j DNAT --to-destination [fd00::5]:53
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"net1\" id: \"ctr1\"" -m multiport --dports 8080 -j CNI-DN-85373d34c6846b6c53ee2
-A CNI-HOSTPORT-DNAT -p udp -m comment --comment "dnat name: \"net1\" id: \"ctr1\"" -m multiport --dports 5353 -j CNI-DN-85373d34c6846b6c53ee2
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
COMMIT
`;
const IPTABLES_DEL = String.raw`# iptables
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-DN-ab34fddc4b1c33839a653 - [0:0]
:CNI-DN-ed4ec4e114083227db6b9 - [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A CNI-DN-ab34fddc4b1c33839a653 -s 10.99.0.0/16 -p tcp -m tcp --dport 7070 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-ab34fddc4b1c33839a653 -s 127.0.0.1/32 -p tcp -m tcp --dport 7070 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-ab34fddc4b1c33839a653 -p tcp -m tcp --dport 7070 -j DNAT --to-destination 10.99.0.7:70
-A CNI-DN-ed4ec4e114083227db6b9 -s 10.88.0.0/24 -d 192.168.1.1/32 -p tcp -m tcp --dport 9090 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-ed4ec4e114083227db6b9 -s 127.0.0.1/32 -d 192.168.1.1/32 -p tcp -m tcp --dport 9090 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-ed4ec4e114083227db6b9 -d 192.168.1.1/32 -p tcp -m tcp --dport 9090 -j DNAT --to-destination 10.88.0.6:90
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"net1\" id: \"ctr2\"" -m multiport --dports 9090 -s 192.168.0.0/16 -j CNI-DN-ed4ec4e114083227db6b9
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"net2\" id: \"ctr3\"" -m multiport --dports 7070 -j CNI-DN-ab34fddc4b1c33839a653
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
COMMIT
# ip6tables
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
COMMIT
`;

for (const name of ["nftables", "iptables"] as const) {
  const ADD = name === "nftables" ? NFTABLES_ADD : IPTABLES_ADD;
  const ADD2 = name === "nftables" ? NFTABLES_ADD : IPTABLES_ADD2;
  const DEL = name === "nftables" ? NFTABLES_DEL : IPTABLES_DEL;

  test(`portmap ${name}: ADD of three attachments (dual stack, hostIP, conditions, another network)`, async () => {
    const [host] = await threeAttached(name);
    assert.equal(await host.dump(), ADD);
  });

  test(`portmap ${name}: a second ADD changes nothing but order`, async () => {
    const [host, b] = await threeAttached(name);
    await b.setUp(A, SPEC_A);
    assert.equal(await host.dump(), ADD2);
    assert.deepEqual(await b.check(A, SPEC_A), []);
  });

  test(`portmap ${name}: DEL removes the attachment's mappings and reports its UDP ports; DEL again changes nothing`, async () => {
    const [host, b] = await threeAttached(name);
    assert.deepEqual(await b.remove(A, SPEC_A), { udpPorts: [5353] });
    assert.equal(await host.dump(), DEL);
    await b.remove(A, SPEC_A);
    assert.equal(await host.dump(), DEL);
  });

  test(`portmap ${name}: DEL without the config's mappings (no prevResult) finds them by owner`, async () => {
    const [host, b] = await threeAttached(name);
    assert.deepEqual(await b.remove(A), { udpPorts: [5353] });
    assert.equal(await host.dump(), DEL);
  });

  test(`portmap ${name}: GC keeps the valid attachments and other networks`, async () => {
    const [host, b] = await threeAttached(name);
    await b.gc("net1", [B]);
    assert.equal(await host.dump(), DEL);
  });

  test(`portmap ${name}: DEL on an empty host succeeds and writes nothing`, async () => {
    const host = new FakeHost();
    await portmapBackends(host)
      .find((x) => x.name === name)!
      .remove(A, SPEC_A);
    assert.equal(await host.dump(), "");
  });
}

test("portmap nftables: CHECK names what is missing after damage, ADD repairs it", async () => {
  const [host, b] = await threeAttached("nftables");
  const nft = host.nft("inet", NFT_TABLE);
  await nft.run(
    nft
      .newTransaction()
      .delete({ kind: "element", map: "dnat_any6", key: ["udp", "5353"] })
      .delete({ kind: "element", map: "cond_ip4-2d25284b6bb9", key: ["192.168.1.1", "tcp", "9090"] })
      .flush({ kind: "chain", name: "cond4-2d25284b6bb9-out" })
      .delete({ kind: "chain", name: "cond4-2d25284b6bb9-out" }),
  );
  assert.deepEqual(await b.check(A, SPEC_A), [
    "element udp . 5353 of dnat_any6 in table inet cni_nft_portmap",
  ]);
  assert.deepEqual(await b.check(B, specB("nftables")), [
    "element 192.168.1.1 . tcp . 9090 of cond_ip4-2d25284b6bb9 in table inet cni_nft_portmap",
    "chain cond4-2d25284b6bb9-out in table inet cni_nft_portmap",
  ]);
  // Their repeated ADDs put back what went without reading (the elements' owner elements stayed).
  const reads = spyReads((b as NftablesPortMapper).nft);
  await b.setUp(A, SPEC_A);
  await b.setUp(B, specB("nftables"));
  assert.deepEqual(reads, []);
  assert.equal(await host.dump(), NFTABLES_ADD);
});

test("portmap nftables: DEL of the previous owner of a taken-over port leaves the new owner's element", async () => {
  const [host, b] = await threeAttached("nftables");
  await b.setUp(B, { ...SPEC_C, containers: [{ family: 4, address: "10.88.0.6", subnet: "10.88.0.0/24" }] });
  await b.remove(C, SPEC_C);
  assert.match(await host.dump(), /dnat_any4 \{ tcp \. 7070 comment "[^"]*id: ctr2" : 10\.88\.0\.6 \. 70, /);
  assert.doesNotMatch(await host.dump(), /ctr3/);
});

test("portmap nftables: DEL with neither mappings nor a record lists the table and finds them by owner", async () => {
  const [host, b] = await threeAttached("nftables");
  host.records("portmap").files.clear();
  assert.deepEqual(await b.remove(A), { udpPorts: [5353] });
  assert.equal(await host.dump(), NFTABLES_DEL);
});

test("portmap nftables: ADD takes over a host port another attachment had", async () => {
  const [host, b] = await threeAttached("nftables");
  await b.setUp(B, { ...SPEC_C, containers: [{ family: 4, address: "10.88.0.6", subnet: "10.88.0.0/24" }] });
  const dump = await host.dump();
  assert.match(
    dump,
    /dnat_any4 \{ tcp \. 7070 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2" : 10\.88\.0\.6 \. 70, /,
  );
  assert.deepEqual(await b.check(C, SPEC_C), [
    "element tcp . 7070 of dnat_any4 in table inet cni_nft_portmap",
  ]);
});

test("portmap iptables: CHECK names the missing chain and rules", async () => {
  const [host, b] = await threeAttached("iptables");
  await host.iptables.restore(6, "nat", [
    String.raw`-D CNI-HOSTPORT-DNAT -p udp -m comment --comment "dnat name: \"net1\" id: \"ctr1\"" -m multiport --dports 5353 -j CNI-DN-85373d34c6846b6c53ee2`,
  ]);
  await host.iptables.restore(4, "nat", [
    String.raw`-D CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"net1\" id: \"ctr2\"" -m multiport --dports 9090 -s 192.168.0.0/16 -j CNI-DN-ed4ec4e114083227db6b9`,
    "-F CNI-DN-ed4ec4e114083227db6b9",
    "-X CNI-DN-ed4ec4e114083227db6b9",
  ]);
  assert.deepEqual(await b.check(A, SPEC_A), [
    String.raw`ip6tables rule -A CNI-HOSTPORT-DNAT -p udp -m comment --comment "dnat name: \"net1\" id: \"ctr1\"" -m multiport --dports 5353 -j CNI-DN-85373d34c6846b6c53ee2`,
  ]);
  assert.deepEqual(await b.check(B, specB("iptables")), [
    "iptables chain CNI-DN-ed4ec4e114083227db6b9 in table nat",
  ]);
});

/** The lines of a dump that differ with the option: the attachment's and the shared mark chains. */
async function optionLines(name: Name, spec: Partial<PortMapSpec>): Promise<string> {
  const host = new FakeHost();
  const b = portmapBackends(host).find((x) => x.name === name)!;
  await b.setUp(A, {
    ...BASE,
    mappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }],
    containers: [
      { family: 4, address: "10.88.0.5", subnet: "10.88.0.0/24" },
      { family: 6, address: "fd00::5", subnet: "fd00::/64" },
    ],
    ...spec,
  });
  return (
    (await host.dump())
      .split("\n")
      .filter((l) => /ctr1|CNI-DN|guard6-|cond6-|SETMARK|MASQ|MY-MARK/.test(l))
      .join("\n") + "\n"
  );
}

test("portmap iptables: masqAll: 0.0.0.0/0 and ::/0 as masquerade source", async () => {
  assert.equal(
    await optionLines("iptables", { masqAll: true }),
    String.raw`:CNI-DN-85373d34c6846b6c53ee2 - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A CNI-DN-85373d34c6846b6c53ee2 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-85373d34c6846b6c53ee2 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.88.0.5:80
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"net1\" id: \"ctr1\"" -m multiport --dports 8080 -j CNI-DN-85373d34c6846b6c53ee2
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
:CNI-DN-85373d34c6846b6c53ee2 - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A CNI-DN-85373d34c6846b6c53ee2 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-85373d34c6846b6c53ee2 -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00::5]:80
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"net1\" id: \"ctr1\"" -m multiport --dports 8080 -j CNI-DN-85373d34c6846b6c53ee2
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
`,
  );
});

test("portmap nftables: masqAll: every DNATed connection to the container is masqueraded (set snat_all)", async () => {
  assert.equal(
    await optionLines("nftables", { masqAll: true }),
    String.raw`add element inet cni_nft_portmap dnat_any4 { tcp . 8080 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : 10.88.0.5 . 80 }
add element inet cni_nft_portmap dnat_any6 { tcp . 8080 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : fd00::5 . 80 }
add element inet cni_nft_portmap owners { 9fb6ac25b24dfdc . 8837191ab7dac4e comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . bc2d25c64f9105c comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . d8300efca13ab2d comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . f561f26038b2ff9 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" }
add element inet cni_nft_portmap snat_all4 { 10.88.0.5 . tcp . 80 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" }
add element inet cni_nft_portmap snat_all6 { fd00::5 . tcp . 80 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" }
`,
  );
});

test("portmap iptables: snat: false: no masquerade", async () => {
  assert.equal(
    await optionLines("iptables", { snat: false }),
    String.raw`:CNI-DN-85373d34c6846b6c53ee2 - [0:0]
-A CNI-DN-85373d34c6846b6c53ee2 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.88.0.5:80
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"net1\" id: \"ctr1\"" -m multiport --dports 8080 -j CNI-DN-85373d34c6846b6c53ee2
:CNI-DN-85373d34c6846b6c53ee2 - [0:0]
-A CNI-DN-85373d34c6846b6c53ee2 -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00::5]:80
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"net1\" id: \"ctr1\"" -m multiport --dports 8080 -j CNI-DN-85373d34c6846b6c53ee2
`,
  );
});

test("portmap nftables: snat: false: no masquerade", async () => {
  assert.equal(
    await optionLines("nftables", { snat: false }),
    String.raw`add element inet cni_nft_portmap dnat_any4 { tcp . 8080 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : 10.88.0.5 . 80 }
add element inet cni_nft_portmap dnat_any6 { tcp . 8080 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : fd00::5 . 80 }
add element inet cni_nft_portmap owners { 9fb6ac25b24dfdc . 8837191ab7dac4e comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . f561f26038b2ff9 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" }
`,
  );
});

test("portmap iptables: conditionsV6: a guard chain for IPv6 only", async () => {
  assert.equal(
    await optionLines("iptables", { conditionsV6: ["-s", "fd00::/8"] }),
    String.raw`:CNI-DN-85373d34c6846b6c53ee2 - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A CNI-DN-85373d34c6846b6c53ee2 -s 10.88.0.0/24 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-85373d34c6846b6c53ee2 -s 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-85373d34c6846b6c53ee2 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.88.0.5:80
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"net1\" id: \"ctr1\"" -m multiport --dports 8080 -j CNI-DN-85373d34c6846b6c53ee2
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
:CNI-DN-85373d34c6846b6c53ee2 - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A CNI-DN-85373d34c6846b6c53ee2 -s fd00::/64 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-85373d34c6846b6c53ee2 -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00::5]:80
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"net1\" id: \"ctr1\"" -m multiport --dports 8080 -s fd00::/8 -j CNI-DN-85373d34c6846b6c53ee2
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
`,
  );
});

test("portmap nftables: conditionsV6: a class of conditions for IPv6 only (no chain or jump of the container's own)", async () => {
  assert.equal(
    await optionLines("nftables", { conditionsV6: ["ip6 saddr fd00::/8"] }),
    String.raw`add counter inet cni_nft_portmap cond6-ef8f7fedb886 { comment "DNATed under these conditions, named by the class's maps" ; }
add chain inet cni_nft_portmap cond6-ef8f7fedb886 { type nat hook prerouting priority -99 ; policy accept ; }
add chain inet cni_nft_portmap cond6-ef8f7fedb886-out { type nat hook output priority -99 ; policy accept ; }
add rule inet cni_nft_portmap cond6-ef8f7fedb886 fib daddr type local ip6 saddr fd00::/8 counter name ip6 daddr . meta l4proto . th dport map @cond_ip6-ef8f7fedb886 dnat ip6 to ip6 daddr . meta l4proto . th dport map @dnat_ip6
add rule inet cni_nft_portmap cond6-ef8f7fedb886 fib daddr type local ip6 daddr . meta l4proto . th dport @guarded_ip6 return
add rule inet cni_nft_portmap cond6-ef8f7fedb886 fib daddr type local meta nfproto ipv6 ip6 saddr fd00::/8 counter name meta l4proto . th dport map @cond_any6-ef8f7fedb886 dnat ip6 to meta l4proto . th dport map @dnat_any6
add rule inet cni_nft_portmap cond6-ef8f7fedb886-out fib daddr type local ip6 saddr fd00::/8 counter name ip6 daddr . meta l4proto . th dport map @cond_ip6-ef8f7fedb886 dnat ip6 to ip6 daddr . meta l4proto . th dport map @dnat_ip6
add rule inet cni_nft_portmap cond6-ef8f7fedb886-out fib daddr type local ip6 daddr . meta l4proto . th dport @guarded_ip6 return
add rule inet cni_nft_portmap cond6-ef8f7fedb886-out fib daddr type local meta nfproto ipv6 ip6 saddr fd00::/8 counter name meta l4proto . th dport map @cond_any6-ef8f7fedb886 dnat ip6 to meta l4proto . th dport map @dnat_any6
add element inet cni_nft_portmap cond_any6-ef8f7fedb886 { tcp . 8080 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : cond6-ef8f7fedb886 }
add element inet cni_nft_portmap dnat_any4 { tcp . 8080 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : 10.88.0.5 . 80 }
add element inet cni_nft_portmap dnat_any6 { tcp . 8080 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : fd00::5 . 80 }
add element inet cni_nft_portmap guarded_any6 { tcp . 8080 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" }
add element inet cni_nft_portmap owners { 9fb6ac25b24dfdc . 32cdd17bca7675f comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . 8837191ab7dac4e comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . cb6a6e31ab3183b comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . db32740f173e781 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . e5f77aa00826962 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . f561f26038b2ff9 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" }
add element inet cni_nft_portmap snat_sub4 { 10.88.0.5 . tcp . 80 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : snat_sub4-15f04f2f13e6 }
add element inet cni_nft_portmap snat_sub6 { fd00::5 . tcp . 80 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : snat_sub6-ef330fd8e3d4 }
`,
  );
});

test("portmap iptables: a hostIP of the other family maps that family only", async () => {
  assert.equal(
    await optionLines("iptables", {
      mappings: [{ hostPort: 8080, containerPort: 80, protocol: "sctp", hostIP: "fd00::1", hostFamily: 6 }],
    }),
    String.raw`:CNI-DN-85373d34c6846b6c53ee2 - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A CNI-HOSTPORT-DNAT -p sctp -m comment --comment "dnat name: \"net1\" id: \"ctr1\"" -m multiport --dports 8080 -j CNI-DN-85373d34c6846b6c53ee2
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
:CNI-DN-85373d34c6846b6c53ee2 - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A CNI-DN-85373d34c6846b6c53ee2 -s fd00::/64 -d fd00::1/128 -p sctp -m sctp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-85373d34c6846b6c53ee2 -d fd00::1/128 -p sctp -m sctp --dport 8080 -j DNAT --to-destination [fd00::5]:80
-A CNI-HOSTPORT-DNAT -p sctp -m comment --comment "dnat name: \"net1\" id: \"ctr1\"" -m multiport --dports 8080 -j CNI-DN-85373d34c6846b6c53ee2
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
`,
  );
});

test("portmap nftables: a hostIP of the other family maps that family only", async () => {
  assert.equal(
    await optionLines("nftables", {
      mappings: [{ hostPort: 8080, containerPort: 80, protocol: "sctp", hostIP: "fd00::1", hostFamily: 6 }],
    }),
    String.raw`add element inet cni_nft_portmap dnat_ip6 { fd00::1 . sctp . 8080 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : fd00::5 . 80 }
add element inet cni_nft_portmap owners { 9fb6ac25b24dfdc . 229df1a041db2b0 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . 5bbce87911b9dfe comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" }
add element inet cni_nft_portmap snat_sub6 { fd00::5 . sctp . 80 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : snat_sub6-ef330fd8e3d4 }
`,
  );
});

test("portmap iptables: markMasqBit sets the mark bit of the shared chains", async () => {
  assert.equal(
    await optionLines("iptables", { markMasqBit: 5 }),
    String.raw`:CNI-DN-85373d34c6846b6c53ee2 - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A CNI-DN-85373d34c6846b6c53ee2 -s 10.88.0.0/24 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-85373d34c6846b6c53ee2 -s 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-85373d34c6846b6c53ee2 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.88.0.5:80
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"net1\" id: \"ctr1\"" -m multiport --dports 8080 -j CNI-DN-85373d34c6846b6c53ee2
-A CNI-HOSTPORT-MASQ -m mark --mark 0x20/0x20 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x20/0x20
:CNI-DN-85373d34c6846b6c53ee2 - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A CNI-DN-85373d34c6846b6c53ee2 -s fd00::/64 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-85373d34c6846b6c53ee2 -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00::5]:80
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"net1\" id: \"ctr1\"" -m multiport --dports 8080 -j CNI-DN-85373d34c6846b6c53ee2
-A CNI-HOSTPORT-MASQ -m mark --mark 0x20/0x20 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x20/0x20
`,
  );
});

test("portmap iptables: externalSetMarkChain: the operator's chain marks, no shared mark chains", async () => {
  assert.equal(
    await optionLines("iptables", { externalSetMarkChain: "MY-MARK" }),
    String.raw`:CNI-DN-85373d34c6846b6c53ee2 - [0:0]
-A CNI-DN-85373d34c6846b6c53ee2 -s 10.88.0.0/24 -p tcp -m tcp --dport 8080 -j MY-MARK
-A CNI-DN-85373d34c6846b6c53ee2 -s 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j MY-MARK
-A CNI-DN-85373d34c6846b6c53ee2 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.88.0.5:80
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"net1\" id: \"ctr1\"" -m multiport --dports 8080 -j CNI-DN-85373d34c6846b6c53ee2
:CNI-DN-85373d34c6846b6c53ee2 - [0:0]
-A CNI-DN-85373d34c6846b6c53ee2 -s fd00::/64 -p tcp -m tcp --dport 8080 -j MY-MARK
-A CNI-DN-85373d34c6846b6c53ee2 -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00::5]:80
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"net1\" id: \"ctr1\"" -m multiport --dports 8080 -j CNI-DN-85373d34c6846b6c53ee2
`,
  );
});

test("portmap nftables: ADD and DEL read nothing from nft (with mappings or from the record), the last DEL of a subnet takes its chain and counter", async () => {
  const [host, b] = await threeAttached("nftables");
  // (upstream's cni_hostport tables are looked for through forTable, not counted here)
  const reads = spyReads((b as NftablesPortMapper).nft);
  const D = { ...A, containerId: "ctr4" };
  await b.setUp(D, { ...SPEC_C, mappings: [{ hostPort: 6060, containerPort: 60, protocol: "tcp" }] });
  await b.remove(D);
  await b.remove(A, SPEC_A);
  assert.deepEqual(reads, []);
  assert.equal(await host.dump(), NFTABLES_DEL);
  await b.remove(C);
  await b.remove(B, specB("nftables"));
  assert.doesNotMatch(await host.dump(), /add element|snat_sub[46]-/);
});

test("portmap nftables: DEL is one nft run while another attachment is noted on its subnet; the last one's DEL drops the subnet's chain in a second", async () => {
  const [host, b] = await threeAttached("nftables");
  const nft = (b as NftablesPortMapper).nft as unknown as Record<string, (...args: unknown[]) => unknown>;
  const runs: string[] = [];
  for (const m of ["run", "runAll"]) {
    const orig = nft[m]!.bind(nft);
    nft[m] = (...args: unknown[]) => {
      runs.push(m);
      return orig(...args);
    };
  }
  const D = { ...A, containerId: "ctr4" };
  const specD: PortMapSpec = {
    ...BASE,
    mappings: [{ hostPort: 6060, containerPort: 60, protocol: "tcp" }],
    containers: [{ family: 4, address: "10.88.0.9", subnet: "10.88.0.0/24" }],
  };
  await b.setUp(D, specD);
  runs.length = 0;
  // 10.88.0.0/24 is A's and B's too: no batch tries its chain (it would fail, EBUSY, and abort).
  await b.remove(D);
  assert.deepEqual(runs, ["run"]);
  runs.length = 0;
  await b.remove(A, SPEC_A); // fd00::/64 was A's alone
  await b.remove(B, specB("nftables")); // the last of 10.88.0.0/24
  assert.deepEqual(runs, ["run", "run", "run", "run"]);
  assert.doesNotMatch(await host.dump(), new RegExp(`${snatChain(4, "10.88.0.0/24")}|snat_sub6-`));
  assert.match(await host.dump(), new RegExp(snatChain(4, "10.99.0.0/16")));
  assert.deepEqual(
    host
      .records("portmap")
      .uses()
      .map(([name]) => name),
    [snatChain(4, "10.99.0.0/16")],
  );
});
