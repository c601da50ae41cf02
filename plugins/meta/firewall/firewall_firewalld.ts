/**
 * The firewalld backend: each container address becomes a source of a firewalld zone (default
 * `trusted`) through firewalld's D-Bus API, as upstream does (addSource, removeSource,
 * querySource on org.fedoraproject.FirewallD1.zone). Node has no D-Bus client without native
 * addons, so each call is one `dbus-send --system` (which honours DBUS_SYSTEM_BUS_ADDRESS).
 */
import { existsSync } from "node:fs";
import { CniError, ErrorCode } from "../../../src/cni/index.js";
import { systemRunner, type Runner } from "../../../src/process/index.js";
import { onPath } from "../../../src/iptables/iptables.js";
import { nftOwnerHash, type Attachment } from "../../../src/cni/attachment.js";
import {
  NO_EFFECTS,
  memoryRecords,
  staleOwners,
  type AttachmentRecords,
  type Effects,
  type HostStateBackend,
} from "../../../src/hoststate/index.js";
import { hostPrefix, recordedAddresses, type AddressRecord, type FirewallSpec } from "./firewall_backend.js";
import { ambientEnv } from "../../../src/cni/ambient.js";

/** This backend's records (src/hoststate/records.ts): the zone sources an ADD is about to add. */
export const RECORDS = "firewall-firewalld";

const FIREWALLD = "org.fedoraproject.FirewallD1";
const FIREWALLD_PATH = "/org/fedoraproject/FirewallD1";
const ZONE_IFACE = `${FIREWALLD}.zone`;

interface Reply {
  ok: boolean;
  /** `string "trusted"`, `boolean true`, … (the reply's value lines, trimmed). */
  values: string[];
  /** The D-Bus error name and message when !ok. */
  error: string;
}

async function call(
  runner: Runner,
  dest: string,
  path: string,
  method: string,
  args: string[],
): Promise<Reply> {
  let r;
  try {
    r = await runner.run({
      argv: ["dbus-send", "--system", "--print-reply", `--dest=${dest}`, path, method, ...args],
    });
  } catch (e) {
    return { ok: false, values: [], error: `could not run dbus-send: ${(e as Error).message}` };
  }
  if (r.code !== 0) return { ok: false, values: [], error: r.stderr.trim() || `dbus-send exited ${r.code}` };
  const values = r.stdout
    .split("\n")
    .slice(1)
    .map((l) => l.trim())
    .filter(Boolean);
  return { ok: true, values, error: "" };
}

/** Where dbus-send looks for the system bus when DBUS_SYSTEM_BUS_ADDRESS is not set. */
const DEFAULT_SYSTEM_BUS = "/var/run/dbus/system_bus_socket";

/**
 * False when the system bus cannot be there at all: its address (DBUS_SYSTEM_BUS_ADDRESS, else
 * the default socket) is a `unix:path=` whose file does not exist. Other kinds of address are
 * left to dbus-send. This spares a dbus-send per firewall call on hosts without D-Bus.
 */
export function systemBusMayBeThere(
  env: Readonly<Record<string, string | undefined>> = ambientEnv(),
): boolean {
  const address = env["DBUS_SYSTEM_BUS_ADDRESS"] ?? `unix:path=${DEFAULT_SYSTEM_BUS}`;
  const paths = address.split(";").map((a) => /^unix:(?:.*,)?path=([^,]+)/.exec(a)?.[1]);
  if (paths.some((p) => p === undefined)) return true; // abstract, tcp, ...: ask dbus-send
  return paths.some((p) => existsSync(decodeURIComponent(p!)));
}

/**
 * As upstream: firewalld runs when its well-known name has an owner on the system bus. Tests
 * give a fake runner (which has no bus socket to look for) and the tools it pretends are there.
 */
export async function isFirewalldRunning(
  runner: Runner = systemRunner,
  has: (tool: string) => boolean = onPath,
): Promise<boolean> {
  if (!has("dbus-send") || (runner === systemRunner && !systemBusMayBeThere())) return false;
  const r = await call(
    runner,
    "org.freedesktop.DBus",
    "/org/freedesktop/DBus",
    "org.freedesktop.DBus.GetNameOwner",
    [`string:${FIREWALLD}`],
  );
  return r.ok;
}

function zoneCall(runner: Runner, method: string, zone: string, source: string): Promise<Reply> {
  return call(runner, FIREWALLD, FIREWALLD_PATH, `${ZONE_IFACE}.${method}`, [
    `string:${zone}`,
    `string:${source}`,
  ]);
}

async function requireRunning(runner: Runner, has: (tool: string) => boolean): Promise<void> {
  if (!has("dbus-send"))
    throw new CniError(
      ErrorCode.Internal,
      "firewalld backend: dbus-send (Debian package dbus-bin) is needed to talk to firewalld and is not in PATH",
    );
  if (!(await isFirewalldRunning(runner, has)))
    throw new CniError(
      ErrorCode.Internal,
      `firewalld backend: firewalld is not running (${FIREWALLD} has no owner on the system D-Bus); start firewalld or choose another backend`,
    );
}

export class FirewalldFirewall implements HostStateBackend<FirewallSpec> {
  readonly component = "firewall";
  readonly name = "firewalld";
  /**
   * `runner` and `has`: the host's by default; a fake runner's scripted D-Bus in tests.
   * `records`: where ADD records the sources it is about to add (the plugin's: host.records).
   */
  constructor(
    private readonly runner: Runner = systemRunner,
    private readonly has: (tool: string) => boolean = onPath,
    private readonly records: AttachmentRecords = memoryRecords(),
  ) {}

  /** As upstream: present when firewalld runs (one dbus-send). */
  present(): Promise<boolean> {
    return isFirewalldRunning(this.runner, this.has);
  }

  private running(): Promise<boolean> {
    return isFirewalldRunning(this.runner, this.has);
  }

  /** The sources are recorded first: they carry no owner, so DEL and GC find them by the record. */
  async setUp(a: Attachment, conf: FirewallSpec): Promise<Effects> {
    if (conf.addresses.length === 0) return NO_EFFECTS;
    await requireRunning(this.runner, this.has);
    const before = this.records.read(nftOwnerHash(a)) as Partial<AddressRecord> | undefined;
    const kept = before?.zone === conf.zone ? recordedAddresses(before) : [];
    this.records.write(nftOwnerHash(a), {
      addresses: [...new Set([...kept, ...conf.addresses])],
      zone: conf.zone,
    } satisfies AddressRecord);
    for (const ip of conf.addresses) {
      const r = await zoneCall(this.runner, "addSource", conf.zone, ip);
      if (!r.ok && !r.error.includes("ZONE_ALREADY_SET"))
        throw new CniError(
          ErrorCode.Internal,
          `failed to add the address ${ip} to ${conf.zone} zone: ${r.error}`,
        );
    }
    return NO_EFFECTS;
  }

  /**
   * The sources prevResult and the record name. As upstream, errors are ignored: the source may
   * be gone already, or firewalld restarted (which drops runtime sources: nothing is left then).
   */
  async remove(a: Attachment, conf?: FirewallSpec): Promise<Effects> {
    await this.removeOwner(nftOwnerHash(a), conf);
    return NO_EFFECTS;
  }

  private async removeOwner(owner: string, conf?: FirewallSpec): Promise<void> {
    const recorded = this.records.read(owner) as Partial<AddressRecord> | undefined;
    const zone = typeof recorded?.zone === "string" ? recorded.zone : "trusted";
    const sources = new Map<string, string>();
    for (const ip of recordedAddresses(recorded)) sources.set(hostPrefix(ip), zone);
    for (const ip of conf?.addresses ?? []) sources.set(ip, conf!.zone);
    if (sources.size && (await this.running()))
      for (const [ip, z] of sources) await zoneCall(this.runner, "removeSource", z, ip);
    this.records.remove(owner);
  }

  /** One of its addresses is a source of the zone (sources carry no owner). */
  async holds(_a: Attachment, conf: FirewallSpec): Promise<boolean> {
    if (conf.addresses.length === 0 || !(await this.running())) return false;
    for (const ip of conf.addresses) {
      const r = await zoneCall(this.runner, "querySource", conf.zone, ip);
      if (r.ok && r.values.includes("boolean true")) return true;
    }
    return false;
  }

  async check(_a: Attachment, conf: FirewallSpec): Promise<string[]> {
    if (conf.addresses.length === 0) return [];
    await requireRunning(this.runner, this.has);
    const missing: string[] = [];
    for (const ip of conf.addresses) {
      const r = await zoneCall(this.runner, "querySource", conf.zone, ip);
      if (!r.ok || !r.values.includes("boolean true")) missing.push(`the address ${ip} in ${conf.zone} zone`);
    }
    return missing;
  }

  /** From the records (sources carry no owner); without any, not even a D-Bus call. */
  async gc(network: string, valid: readonly Attachment[]): Promise<Effects> {
    for (const owner of staleOwners(this.records, network, valid)) await this.removeOwner(owner);
    return NO_EFFECTS;
  }
}
