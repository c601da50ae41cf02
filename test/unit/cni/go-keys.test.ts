/**
 * runtimeConfig from containerd's go-cni: its PortMapping and BandWidth structs have no JSON tags,
 * so keys arrive capitalised; Go's encoding/json (upstream) matches them case-insensitively, and so
 * must we. Seen with containerd 1.6 in test/integration/kubernetes-node.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { withGoRuntimeConfigKeys } from "../../../src/cni/config.js";

test("go-cni's capitalised capability keys are read as the conventions spell them", () => {
  const fromContainerd = {
    cniVersion: "1.0.0",
    runtimeConfig: {
      portMappings: [{ HostPort: 30080, ContainerPort: 80, Protocol: "tcp", HostIP: "" }],
      bandwidth: {
        IngressRate: 1000000,
        IngressBurst: 2147483647,
        EgressRate: 2000000,
        EgressBurst: 2147483647,
      },
      ipRanges: [[{ Subnet: "10.0.0.0/24" }]],
      io: { extra: 1 },
    },
  };
  assert.deepEqual(withGoRuntimeConfigKeys(fromContainerd), {
    cniVersion: "1.0.0",
    runtimeConfig: {
      portMappings: [{ hostPort: 30080, containerPort: 80, protocol: "tcp", hostIP: "" }],
      bandwidth: {
        ingressRate: 1000000,
        ingressBurst: 2147483647,
        egressRate: 2000000,
        egressBurst: 2147483647,
      },
      ipRanges: [[{ subnet: "10.0.0.0/24" }]],
      io: { extra: 1 },
    },
  });
  // An exact key wins over a case-folded duplicate, as in Go.
  const both = withGoRuntimeConfigKeys({
    runtimeConfig: { portMappings: [{ hostPort: 1, HostPort: 2, containerPort: 3 }] },
  });
  assert.deepEqual(both, { runtimeConfig: { portMappings: [{ hostPort: 1, containerPort: 3 }] } });
  assert.deepEqual(withGoRuntimeConfigKeys({ name: "x" }), { name: "x" });
});
