import { test } from "node:test";
import assert from "node:assert/strict";
import * as v from "valibot";
import {
  definePlugin,
  netConf,
  runPlugin,
  parseCniArgs,
  checkKnownArgs,
  validateIfname,
  CniError,
  cidrString,
  type CmdArgs,
  type GcArgs,
} from "../../../src/cni/index.js";

const schema = netConf({ subnet: v.optional(cidrString), mtu: v.optional(v.pipe(v.number(), v.integer())) });
type Conf = v.InferOutput<typeof schema>;
const calls: { verb: string; args: CmdArgs<Conf> }[] = [];
const plugin = definePlugin<Conf>(
  {
    add: (args) => {
      calls.push({ verb: "ADD", args });
      return Promise.resolve({
        cniVersion: args.cniVersion,
        interfaces: [{ name: args.ifname, sandbox: args.netns, mtu: 1500 }],
        ips: [{ interface: 0, address: "10.0.0.2/24", gateway: "10.0.0.1" }],
      });
    },
    del: (args) => {
      calls.push({ verb: "DEL", args });
      return Promise.resolve();
    },
    check: (args) => {
      calls.push({ verb: "CHECK", args });
      return Promise.resolve();
    },
    gc: (args: GcArgs<Conf>) => {
      calls.push({ verb: "GC", args });
      return Promise.resolve();
    },
  },
  { name: "test", knownArgs: ["IP"], config: schema },
);

const env = {
  CNI_COMMAND: "ADD",
  CNI_CONTAINERID: "abc",
  CNI_NETNS: "/run/netns/x",
  CNI_IFNAME: "eth0",
  CNI_PATH: "/opt/cni/bin:/usr/lib/cni",
};
const conf = (o: Record<string, unknown> = {}) =>
  JSON.stringify({ cniVersion: "1.0.0", name: "net", type: "test", ...o });

async function run(e: Record<string, string | undefined>, stdin: string) {
  const out = await runPlugin(plugin, e, stdin);
  return { ...out, json: out.stdout ? (JSON.parse(out.stdout) as Record<string, unknown>) : undefined };
}

const errors: {
  name: string;
  env?: Record<string, string | undefined>;
  stdin?: string;
  code: number;
  msg: RegExp;
}[] = [
  { name: "unknown command", env: { CNI_COMMAND: "FOO" }, code: 4, msg: /unknown CNI_COMMAND: FOO/ },
  {
    name: "missing env",
    env: { CNI_NETNS: undefined, CNI_PATH: "" },
    code: 4,
    msg: /\[CNI_NETNS,CNI_PATH\] missing/,
  },
  { name: "bad JSON", stdin: "{", code: 6, msg: /error unmarshall network config/ },
  {
    name: "incompatible version",
    stdin: conf({ cniVersion: "2.0.0" }),
    code: 1,
    msg: /incompatible CNI versions/,
  },
  {
    name: "CHECK below 0.4.0",
    env: { CNI_COMMAND: "CHECK" },
    stdin: conf({ cniVersion: "0.3.1" }),
    code: 1,
    msg: /does not allow CHECK/,
  },
  {
    name: "GC below 1.1.0",
    env: { CNI_COMMAND: "GC" },
    stdin: conf({ cniVersion: "1.0.0" }),
    code: 1,
    msg: /does not allow GC/,
  },
  {
    name: "STATUS below 1.1.0",
    env: { CNI_COMMAND: "STATUS" },
    stdin: conf({ cniVersion: "0.4.0" }),
    code: 1,
    msg: /does not allow STATUS/,
  },
  { name: "missing name", stdin: conf({ name: undefined }), code: 7, msg: /missing network name/ },
  {
    name: "bad name",
    stdin: conf({ name: "a/b" }),
    code: 7,
    msg: /invalid characters found in network name/,
  },
  {
    name: "bad container id",
    env: { CNI_CONTAINERID: "-x" },
    code: 4,
    msg: /invalid characters in containerID/,
  },
  { name: "ifname too long", env: { CNI_IFNAME: "a234567890123456" }, code: 4, msg: /too long/ },
  { name: "ifname with colon", env: { CNI_IFNAME: "eth0:1" }, code: 4, msg: /whitespace/ },
  { name: "ifname dot", env: { CNI_IFNAME: ".." }, code: 4, msg: /\. or \.\./ },
  { name: "unknown CNI_ARGS", env: { CNI_ARGS: "FOO=1" }, code: 999, msg: /unknown args \["FOO=1"\]/ },
  { name: "bad CNI_ARGS pair", env: { CNI_ARGS: "FOO" }, code: 4, msg: /invalid pair/ },
  {
    name: "bad config field",
    stdin: conf({ subnet: "10.0.0.0/99" }),
    code: 7,
    msg: /invalid network config: subnet: must be a CIDR/,
  },
  { name: "wrong config type", stdin: conf({ mtu: "x" }), code: 7, msg: /mtu: expected number, got "x"/ },
  {
    name: "bad runtimeConfig",
    stdin: conf({ runtimeConfig: { portMappings: [{ hostPort: 70000, containerPort: 1 }] } }),
    code: 7,
    msg: /runtimeConfig.portMappings\[0\].hostPort/,
  },
  {
    name: "bad prevResult",
    stdin: conf({ prevResult: { cniVersion: "1.0.0", ips: [{}] } }),
    code: 6,
    msg: /decode result/,
  },
];
for (const c of errors) {
  test(`skel error: ${c.name}`, async () => {
    const r = await run({ ...env, ...c.env }, c.stdin ?? conf());
    assert.equal(r.exitCode, 1);
    assert.equal(r.json?.code, c.code, r.stdout);
    assert.match(String(r.json?.msg), c.msg);
    assert.equal(typeof r.json?.cniVersion, "string");
    assert.doesNotMatch(r.stdout, /\n\s+at /, "no stack trace");
  });
}

test("VERSION prints supported versions", async () => {
  const r = await run({ CNI_COMMAND: "VERSION" }, "");
  assert.deepEqual(r.json, {
    cniVersion: "1.1.0",
    supportedVersions: ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
  });
});

test("no CNI_COMMAND prints about on stderr, exit 0", async () => {
  const r = await run({}, "");
  assert.equal(r.exitCode, 0);
  assert.match(r.stderr, /CNI test plugin/);
});

test("ADD passes parsed args and prints the result in the config's version", async () => {
  calls.length = 0;
  const r = await run(
    { ...env, CNI_ARGS: "IgnoreUnknown=1;IP=10.0.0.9;K8S_POD_NAME=p" },
    conf({
      cniVersion: "0.4.0",
      extra: { keep: true },
      args: { cni: { ips: ["10.0.0.9"] } },
      runtimeConfig: { mac: "02:00:00:00:00:01", custom: 1 },
    }),
  );
  assert.equal(r.exitCode, 0, r.stdout);
  assert.deepEqual(r.json, {
    cniVersion: "0.4.0",
    interfaces: [{ name: "eth0", sandbox: "/run/netns/x" }],
    ips: [{ version: "4", interface: 0, address: "10.0.0.2/24", gateway: "10.0.0.1" }],
    dns: {},
  });
  const a = calls[0]!.args;
  assert.deepEqual(a.args, { IgnoreUnknown: "1", IP: "10.0.0.9", K8S_POD_NAME: "p" });
  assert.deepEqual(a.path, ["/opt/cni/bin", "/usr/lib/cni"]);
  assert.equal(a.containerId, "abc");
  assert.deepEqual(a.config.extra, { keep: true });
  assert.deepEqual(a.config.runtimeConfig, { mac: "02:00:00:00:00:01", custom: 1 });
  assert.deepEqual(a.config.args?.cni?.ips, ["10.0.0.9"]);
});

test("DEL gets prevResult in current form", async () => {
  calls.length = 0;
  const r = await run(
    { ...env, CNI_COMMAND: "DEL", CNI_NETNS: "" },
    conf({
      cniVersion: "0.4.0",
      prevResult: { cniVersion: "0.4.0", ips: [{ version: "4", address: "10.0.0.2/24" }], dns: {} },
    }),
  );
  assert.equal(r.exitCode, 0, r.stdout);
  assert.equal(r.stdout, "");
  assert.deepEqual(calls[0]!.args.prevResult, {
    cniVersion: "0.4.0",
    ips: [{ address: "10.0.0.2/24" }],
    dns: {},
  });
});

test("GC gets validAttachments as attachments of the network; config without cniVersion defaults to 0.1.0", async () => {
  calls.length = 0;
  const va = [{ containerID: "c1", ifname: "eth0" }];
  const r = await run(
    { CNI_COMMAND: "GC", CNI_PATH: "/x" },
    conf({ cniVersion: "1.1.0", "cni.dev/valid-attachments": va }),
  );
  assert.equal(r.exitCode, 0, r.stdout);
  const network = (JSON.parse(conf({})) as { name: string }).name;
  assert.deepEqual((calls[0]!.args as GcArgs<Conf>).validAttachments, [
    { network, containerId: "c1", ifname: "eth0" },
  ]);
  const r2 = await run({ ...env }, JSON.stringify({ name: "n", type: "t" }));
  assert.deepEqual(r2.json, {
    cniVersion: "0.1.0",
    ip4: { ip: "10.0.0.2/24", gateway: "10.0.0.1" },
    dns: {},
  });
});

test("STATUS without a status function succeeds", async () => {
  const r = await run({ CNI_COMMAND: "STATUS" }, conf({ cniVersion: "1.1.0" }));
  assert.equal(r.exitCode, 0);
});

test("a plain Error becomes code 999 with its message", async () => {
  const p = definePlugin(
    {
      add: () => Promise.reject(new Error("boom")),
      del: () => Promise.reject(new CniError(11, "busy", "later")),
    },
    { name: "x" },
  );
  const a = await runPlugin(p, env, conf());
  assert.deepEqual(JSON.parse(a.stdout), { cniVersion: "1.0.0", code: 999, msg: "boom" });
  const d = await runPlugin(p, { ...env, CNI_COMMAND: "DEL" }, conf());
  assert.deepEqual(JSON.parse(d.stdout), { cniVersion: "1.0.0", code: 11, msg: "busy", details: "later" });
});

test("CNI_ARGS helpers", () => {
  assert.deepEqual(parseCniArgs("A=1;B=2;"), { A: "1", B: "2" });
  assert.deepEqual(parseCniArgs(""), {});
  assert.doesNotThrow(() => checkKnownArgs({ IgnoreUnknown: "true", X: "1" }, []));
  assert.throws(() => checkKnownArgs({ X: "1" }, ["Y"]), /unknown args/);
  assert.doesNotThrow(() => validateIfname("eth0"));
  assert.throws(() => validateIfname("a b"));
  assert.throws(() => validateIfname(""), /empty/);
});

test("ADD of a plugin that answers with its prevResult: one the config's version cannot carry is refused before it runs; a main plugin's is not", async () => {
  const chained = definePlugin<Conf>(
    {
      add: (args) => (calls.push({ verb: "ADD", args }), Promise.resolve(args.prevResult!)),
      del: () => Promise.resolve(),
    },
    { name: "chained", config: schema, answersWithPrevResult: true },
  );
  // A 0.2.0 result cannot say "no address": a prevResult without one cannot be answered.
  const stdin = conf({ cniVersion: "0.2.0", prevResult: { cniVersion: "0.2.0", dns: {} } });
  calls.length = 0;
  const out = await runPlugin(chained, env, stdin);
  assert.equal(out.exitCode, 1);
  const err = JSON.parse(out.stdout) as Record<string, unknown>;
  assert.equal(err["code"], 7);
  assert.match(
    String(err["msg"]),
    /cniVersion 0.2.0 results must carry an IP address and the prevResult has none/,
  );
  assert.equal(calls.length, 0);
  assert.equal(
    (await runPlugin(chained, { ...env, CNI_COMMAND: "DEL" }, stdin)).exitCode,
    0,
    "DEL returns no result",
  );
  // A main plugin (its own IPAM's result) chained after another: not refused, as upstream's.
  const main = await run(env, stdin);
  assert.equal(main.exitCode, 0, main.stdout);
  assert.deepEqual(main.json?.["ip4"], { ip: "10.0.0.2/24", gateway: "10.0.0.1" });
});

test("a prevResult of another version group than the config's is refused on every verb (code 7 naming prevResult.cniVersion); one of the same group or without a version is taken", async () => {
  for (const [confVersion, prevVersion] of [
    ["1.0.0", "0.4.0"],
    ["1.1.0", "0.2.0"],
    ["0.4.0", "1.0.0"],
    ["0.3.1", "0.2.0"],
    ["0.2.0", "0.4.0"],
  ] as const)
    // CHECK needs a config of 0.4.0 or later (code 1 before that, whatever the prevResult).
    for (const verb of ["ADD", "DEL", ...(confVersion >= "0.4.0" ? ["CHECK"] : [])]) {
      calls.length = 0;
      const ips = [{ version: "4", address: "10.0.0.2/24" }];
      const prevResult = {
        cniVersion: prevVersion,
        ips,
        ip4: { ip: "10.0.0.2/24" },
        interfaces: [{ name: "eth0" }],
      };
      const out = await run({ ...env, CNI_COMMAND: verb }, conf({ cniVersion: confVersion, prevResult }));
      assert.equal(out.exitCode, 1, `${confVersion} ${prevVersion} ${verb}`);
      assert.equal(out.json?.["code"], 7);
      assert.match(
        String(out.json?.["msg"]),
        new RegExp(
          `could not parse prevResult: a cniVersion ${confVersion} config takes a prevResult of version .*, but prevResult.cniVersion is "${prevVersion}"`,
        ),
      );
      assert.equal(calls.length, 0);
    }
  for (const [confVersion, prevVersion] of [
    ["1.1.0", "1.0.0"],
    ["1.0.0", "1.1.0"],
    ["0.4.0", "0.3.1"],
    ["0.3.0", "0.4.0"],
    ["0.2.0", "0.1.0"],
    ["1.0.0", undefined],
  ]) {
    const prevResult = {
      ...(prevVersion ? { cniVersion: prevVersion } : {}),
      ips: [{ version: "4", address: "10.0.0.2/24" }],
      ip4: { ip: "10.0.0.2/24" },
    };
    const out = await run({ ...env, CNI_COMMAND: "DEL" }, conf({ cniVersion: confVersion, prevResult }));
    assert.equal(out.exitCode, 0, `${confVersion} ${prevVersion}: ${out.stdout}`);
  }
});
