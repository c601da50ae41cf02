/**
 * deploy/kubernetes/cni-nft.yaml against the Kubernetes API's own object schemas (the OpenAPI
 * definitions of Kubernetes 1.27 that kubernetes-models compiles into validators), and against
 * what the node needs: the init container installs into the host's /opt/cni/bin and
 * /etc/cni/net.d with the node's pod CIDR, its RBAC allows reading the Node, and the conflist of
 * the ConfigMap is one our plugins accept.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { DaemonSet } from "kubernetes-models/apps/v1";
import { ConfigMap, ServiceAccount } from "kubernetes-models/v1";
import { ClusterRole, ClusterRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1";
import { validateConfig } from "../../src/cni/index.js";
import { PLUGINS } from "../../src/bin/plugins.js";

const file = fileURLToPath(new URL("../../deploy/kubernetes/cni-nft.yaml", import.meta.url));
type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } } & Record<
  string,
  unknown
>;
const docs = parseAllDocuments(readFileSync(file, "utf8")).map((d) => {
  assert.deepEqual(d.errors, [], "YAML parses");
  return d.toJS() as Obj;
});
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  "apps/v1/DaemonSet": DaemonSet,
  "v1/ConfigMap": ConfigMap,
  "v1/ServiceAccount": ServiceAccount,
  "rbac.authorization.k8s.io/v1/ClusterRole": ClusterRole,
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": ClusterRoleBinding,
};
const find = <T>(kind: string) => docs.find((d) => d.kind === kind) as unknown as T;

test("every object is valid under the Kubernetes API's schema", () => {
  assert.deepEqual(
    docs.map((d) => d.kind),
    ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet"],
  );
  for (const d of docs) {
    const Model = MODELS[`${d.apiVersion}/${d.kind}`];
    assert.ok(Model, `a schema for ${d.apiVersion} ${d.kind}`);
    assert.doesNotThrow(() => new Model(d as never).validate(), `${d.kind} ${d.metadata.name}`);
  }
  // The validator does reject what the API server rejects (a wrong type here).
  const broken = structuredClone(find<DaemonSet>("DaemonSet"));
  (broken.spec!.template.spec!.initContainers![0] as { image: unknown }).image = 7;
  assert.throws(() => new DaemonSet(broken).validate(), /image must be string/);
});

test("the DaemonSet installs onto the node's host paths with the node's pod CIDR", () => {
  const ds = find<DaemonSet>("DaemonSet");
  const pod = ds.spec!.template.spec!;
  assert.deepEqual(ds.spec!.selector.matchLabels, ds.spec!.template.metadata!.labels);
  assert.equal(pod.hostNetwork, true);
  assert.deepEqual(pod.tolerations, [{ operator: "Exists" }]);
  const hostPaths = Object.fromEntries(
    (pod.volumes ?? []).filter((v) => v.hostPath).map((v) => [v.name, v.hostPath!.path]),
  );
  assert.deepEqual(hostPaths, { "cni-bin": "/opt/cni/bin", "cni-conf": "/etc/cni/net.d" });
  const init = pod.initContainers![0]!;
  const mounts = Object.fromEntries((init.volumeMounts ?? []).map((m) => [m.name, m.mountPath]));
  const args = init.command!;
  assert.deepEqual(args.slice(0, 2), ["/opt/cni-nft/cni-nft", "install"]);
  assert.ok(args.includes(`--bin-dir=${mounts["cni-bin"]}`));
  assert.ok(args.includes(`--conf-dir=${mounts["cni-conf"]}`));
  assert.ok(args.includes(`--conflist=${mounts["config"]}/10-cni-nft.conflist`));
  assert.ok(args.includes("--pod-cidr-from-node=$(NODE_NAME)"));
  assert.deepEqual(init.env, [
    { name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
  ]);
  assert.equal(pod.serviceAccountName, find<ServiceAccount>("ServiceAccount").metadata!.name);
  const role = find<ClusterRole>("ClusterRole");
  assert.deepEqual(role.rules, [{ apiGroups: [""], resources: ["nodes"], verbs: ["get"] }]);
  const binding = find<ClusterRoleBinding>("ClusterRoleBinding");
  assert.equal(binding.roleRef.name, role.metadata!.name);
  assert.deepEqual(binding.subjects, [{ kind: "ServiceAccount", name: "cni-nft", namespace: "kube-system" }]);
});

test("the ConfigMap's conflist: bridge + portmap + bandwidth, each accepted by its plugin's schema", async () => {
  const cm = find<ConfigMap>("ConfigMap");
  const conflist = JSON.parse(cm.data!["10-cni-nft.conflist"]!) as {
    cniVersion: string;
    name: string;
    plugins: { type: string; ipam?: Record<string, unknown> }[];
  };
  assert.deepEqual(
    conflist.plugins.map((p) => p.type),
    ["bridge", "portmap", "bandwidth"],
  );
  assert.equal(conflist.plugins[0]!.ipam!["type"], "host-local");
  assert.equal(conflist.plugins[0]!.ipam!["ranges"], undefined, "the range comes from the node");
  for (const p of conflist.plugins) {
    const load = PLUGINS[p.type];
    if (!load) continue; // bandwidth: validated once its plugin is in the registry
    const schema = (await load()).plugin.about.config;
    if (!schema) continue;
    const withRange = structuredClone(p);
    if (withRange.ipam) withRange.ipam["ranges"] = [[{ subnet: "10.244.1.0/24" }]];
    assert.doesNotThrow(
      () => validateConfig(schema, { cniVersion: conflist.cniVersion, name: conflist.name, ...withRange }),
      p.type,
    );
  }
});

test("no field the Kubernetes API does not know (strict field validation, as kubectl's default)", async () => {
  const { FieldChecker } = await import("../helpers/k8s-fields.js");
  const root = fileURLToPath(new URL("../..", import.meta.url));
  const fields = new FieldChecker(root, {
    DaemonSet: ["apps/v1/DaemonSet", "IDaemonSet"],
    ConfigMap: ["v1/ConfigMap", "IConfigMap"],
    ServiceAccount: ["v1/ServiceAccount", "IServiceAccount"],
    ClusterRole: ["rbac.authorization.k8s.io/v1/ClusterRole", "IClusterRole"],
    ClusterRoleBinding: ["rbac.authorization.k8s.io/v1/ClusterRoleBinding", "IClusterRoleBinding"],
  });
  for (const d of docs) assert.deepEqual(fields.unknownFields(d.kind, d), [], `${d.kind} ${d.metadata.name}`);
  // A typo the schema validators let through is caught here.
  const typo = structuredClone(find<DaemonSet>("DaemonSet")) as unknown as Record<string, unknown>;
  const pod = (typo["spec"] as { template: { spec: Record<string, unknown> } }).template.spec;
  pod["hostNetwrok"] = true;
  (pod["volumes"] as Record<string, unknown>[])[0]!["hostpath"] = { path: "/x" };
  assert.deepEqual(fields.unknownFields("DaemonSet", typo).sort(), [
    "DaemonSet.spec.template.spec.hostNetwrok",
    "DaemonSet.spec.template.spec.volumes[0].hostpath",
  ]);
});
