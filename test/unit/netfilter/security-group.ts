/** The same manager calls for both backends' tests: a security group as Neutron's agent writes it. */
import type { NetfilterManager } from "../../../src/netfilter/index.js";

export function securityGroup(m: NetfilterManager, lastComment = false): void {
  m.setMembers("allowed", 4, ["10.0.0.0/8", "192.168.1.7/32"]);
  m.ipv4.filter.addChain("sg-1");
  m.ipv4.filter.addRule("INPUT", "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", { top: true });
  m.ipv4.filter.addRule("INPUT", "-j $sg-1");
  m.ipv4.filter.addRule("sg-1", "-p tcp --dport 22 -m set --match-set allowed src -j ACCEPT", {
    comment: "ssh",
    tag: "ssh",
  });
  m.ipv4.filter.addRule("sg-1", lastComment ? '-m comment --comment "last one" -j DROP' : "-j DROP");
  m.ipv4.nat.addRule("POSTROUTING", "-s 10.88.0.0/16 ! -o cni0 -j MASQUERADE");
}
