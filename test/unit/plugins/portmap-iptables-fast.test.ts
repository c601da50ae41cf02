/**
 * portmap iptables without reading the table (fake iptables): a new container's ADD on a host
 * whose PREROUTING jumps to CNI-HOSTPORT-DNAT (PREROUTING listed alone), and a DEL with the ADD's
 * record, are one batch per family; without the jump (first ADD on the host, a flushed table)
 * and when a batch fails (a missing shared chain, a chain left by upstream,
 * a rule gone by hand, a record of a killed ADD or of an earlier version) falls back to one read.
 * test/integration/portmap*.test.ts prove the batches on the kernel.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeHost } from "../../../src/hoststate/fake.js";
import { nftOwnerHash } from "../../../src/cni/attachment.js";
import { portmapBackends } from "../../../plugins/meta/portmap/backends.js";
import { RECORDS } from "../../../plugins/meta/portmap/portmap_iptables.js";
import { A, B, C, SPEC_A, SPEC_C, specB } from "./portmap-fixtures.js";

async function twoAttached(): Promise<[FakeHost, ReturnType<typeof portmapBackends>[number]]> {
  const host = new FakeHost();
  const b = portmapBackends(host).find((x) => x.name === "iptables")!;
  await b.setUp(A, SPEC_A);
  await b.setUp(B, specB("iptables"));
  return [host, b];
}

const EMPTY_V4 = String.raw`# iptables
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

test("portmap iptables: the first ADD on a host reads; the next container's ADD and DEL read nothing, one batch each", async () => {
  const [host, b] = await twoAttached();
  assert.deepEqual(
    host.iptables.saves,
    ["4 nat", "6 nat"],
    "A's checks failed: the shared chains were missing",
  );
  host.iptables.saves.length = 0;
  const from = host.iptables.restores.length;
  const before = await host.dump();
  await b.setUp(C, SPEC_C);
  assert.deepEqual(await b.remove(C), { udpPorts: [] });
  assert.deepEqual(host.iptables.saves, []);
  assert.deepEqual(host.iptables.listed.slice(-1), ["4 nat PREROUTING"], "PREROUTING alone, for its jump");
  assert.deepEqual(
    host.iptables.restores.slice(from).map((r) => [r.family, r.input]),
    [
      [
        4,
        String.raw`*nat
-N CNI-DN-ab34fddc4b1c33839a653
-A CNI-DN-ab34fddc4b1c33839a653 -s 10.99.0.0/16 -p tcp -m tcp --dport 7070 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-ab34fddc4b1c33839a653 -s 127.0.0.1/32 -p tcp -m tcp --dport 7070 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-ab34fddc4b1c33839a653 -p tcp -m tcp --dport 7070 -j DNAT --to-destination 10.99.0.7:70
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"net2\" id: \"ctr3\"" -m multiport --dports 7070 -j CNI-DN-ab34fddc4b1c33839a653
COMMIT
`,
      ],
      [
        4,
        String.raw`*nat
-D CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"net2\" id: \"ctr3\"" -m multiport --dports 7070 -j CNI-DN-ab34fddc4b1c33839a653
-F CNI-DN-ab34fddc4b1c33839a653
-X CNI-DN-ab34fddc4b1c33839a653
COMMIT
`,
      ],
    ],
  );
  assert.equal(await host.dump(), before);
  assert.equal(host.records(RECORDS).read(nftOwnerHash(C)), undefined);
});

test("portmap iptables: DEL by the record reports the recorded UDP ports, and the host is as before the ADD", async () => {
  const [host, b] = await twoAttached();
  host.iptables.saves.length = 0;
  assert.deepEqual(await b.remove(B), { udpPorts: [] });
  assert.deepEqual(await b.remove(A), { udpPorts: [5353] });
  assert.deepEqual(host.iptables.saves, []);
  assert.equal(await host.dump(), EMPTY_V4 + EMPTY_V4.replace("# iptables", "# ip6tables"));
});

test("portmap iptables: a flushed PREROUTING makes the next ADD read; the read puts the jump back", async () => {
  const [host, b] = await twoAttached();
  await host.iptables.restore(4, "nat", ["-F PREROUTING"]);
  await b.setUp(C, SPEC_C);
  assert.match(await host.dump(), /^-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT$/m);
  assert.match(await host.dump(), /--dports 7070 -j CNI-DN-ab34fddc4b1c33839a653/);
});

test("portmap iptables: an ADD with no record over upstream's chain of the same container fails -N and replaces it (one copy)", async () => {
  const [host, b] = await twoAttached();
  await b.setUp(C, SPEC_C);
  const added = await host.dump();
  host.records(RECORDS).files.delete(nftOwnerHash(C));
  await b.setUp(C, SPEC_C);
  assert.equal(await host.dump(), added);
});

test("portmap iptables: DEL falls back to a read when its batch fails or its record is of an earlier version or of a killed ADD", async () => {
  const [host, b] = await twoAttached();
  const records = host.records(RECORDS);
  const chainOnly = { chain: "CNI-DN-85373d34c6846b6c53ee2" };
  // An entry rule removed by hand: the batch fails, the read removes the rest.
  await host.iptables.restore(4, "nat", [
    String.raw`-D CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"net1\" id: \"ctr2\"" -m multiport --dports 9090 -s 192.168.0.0/16 -j CNI-DN-ed4ec4e114083227db6b9`,
  ]);
  await b.remove(B);
  // A record of an earlier version (the chain alone).
  records.write(nftOwnerHash(A), chainOnly);
  assert.deepEqual(await b.remove(A), { udpPorts: [5353] });
  assert.equal(await host.dump(), EMPTY_V4 + EMPTY_V4.replace("# iptables", "# ip6tables"));
  // A killed ADD: its record, none of its rules.
  await b.setUp(C, SPEC_C);
  const record = records.read(nftOwnerHash(C));
  await b.remove(C);
  records.write(nftOwnerHash(C), record);
  assert.deepEqual(await b.remove(C), { udpPorts: [] });
  assert.equal(await host.dump(), EMPTY_V4 + EMPTY_V4.replace("# iptables", "# ip6tables"));
  assert.deepEqual(records.owners(), []);
});
