/**
 * What sbr changes, planned from what the container's namespace shows (pure: tests compare the
 * `ip -batch` lines literally). Upstream's algorithm: per address of the interface, a rule "from
 * ADDRESS lookup TABLE" with TABLE the first number from 100 no rule uses; in that table a default
 * route via the gateway and a copy of the interface's main-table routes that belong to the address;
 * then the interface's routes leave the main table (with `addSourceHints`, only the non-link
 * ones, and the subnet route gets the address as its source hint).
 */
import { contains, formatIP, parseCIDR, parseIPLiteral, subnetOf } from "../../../src/address/index.js";
import type { IPConfig } from "../../../src/cni/types.js";

export const FIRST_TABLE = 100;

export interface RuleShow {
  priority?: number;
  src?: string;
  srclen?: number;
  table?: string;
}

export interface RouteShow {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  scope?: string;
  metric?: number;
  prefsrc?: string;
  table?: string;
  type?: string;
}

const NAMED_TABLES: Record<string, number> = { local: 255, main: 254, default: 253, unspec: 0 };

export function tableNumber(t: string | undefined): number {
  if (t === undefined) return 254; // ip leaves out the main table
  return NAMED_TABLES[t] ?? Number(t);
}

function v6(addr: string): boolean {
  return addr.includes(":");
}

/** The first table from `from` no rule and no main-table route uses (upstream's getNextTableID). */
export function nextFreeTable(rules: RuleShow[], from: number): number {
  const used = new Set(rules.map((r) => tableNumber(r.table)));
  let t = from;
  while (used.has(t) || t === 254) t++;
  return t;
}

function inSubnet(cidr: string, addr: string | undefined): boolean {
  if (!addr) return false;
  const net = parseCIDR(cidr);
  const a = parseIPLiteral(addr);
  return net !== null && a !== null && contains(net, a);
}

/** A route of `ip -json route show` as the words that make or delete it. */
export function routeSpec(r: RouteShow, family: 4 | 6, table: number | "main"): string {
  const dst = r.dst === "default" ? (family === 6 ? "::/0" : "0.0.0.0/0") : r.dst;
  const parts = [dst];
  if (r.gateway) parts.push(`via ${r.gateway}`);
  if (r.dev) parts.push(`dev ${r.dev}`);
  if (r.protocol) parts.push(`proto ${r.protocol}`);
  if (r.scope) parts.push(`scope ${r.scope}`);
  if (r.prefsrc) parts.push(`src ${r.prefsrc}`);
  if (r.metric !== undefined) parts.push(`metric ${r.metric}`);
  parts.push(`table ${table}`);
  return parts.join(" ");
}

export interface SbrPlan {
  /** `ip -batch` lines; IPv6 rules go in `rules6` (ip cannot tell a rule's family from its address). */
  commands: string[];
  rules6: string[];
  /** What undoes a failed run: the rules (IPv4 in `undo`, IPv6 in `undo6`) and tables made. */
  undo: string[];
  undo6: string[];
}

function ruleLines(plan: SbrPlan, host: string, table: number): void {
  const six = host.includes(":");
  (six ? plan.rules6 : plan.commands).push(`rule add from ${host} table ${table}`);
  (six ? plan.undo6 : plan.undo).push(`rule del from ${host} table ${table}`);
}

export interface InterfaceRoutes {
  v4: RouteShow[];
  v6: RouteShow[];
}

/** sbr without `table`: a table per address, its rules and routes, the main table tidied. */
export function planRoutes(opts: {
  ifname: string;
  ips: IPConfig[];
  rules: RuleShow[];
  /** The interface's routes in the main table. */
  routes: InterfaceRoutes;
  gateways: { v4?: string; v6?: string };
  addSourceHints: boolean;
}): SbrPlan {
  const plan: SbrPlan = { commands: [], rules6: [], undo: [], undo6: [] };
  const { commands, undo } = plan;
  const rules = [...opts.rules];
  let table = nextFreeTable(rules, FIRST_TABLE);
  for (const ip of opts.ips) {
    const [addr] = ip.address.split("/") as [string];
    const fam = v6(addr) ? 6 : 4;
    const host = `${addr}/${fam === 6 ? 128 : 32}`;
    ruleLines(plan, host, table);
    undo.push(`route flush table ${table}`);
    rules.push({ src: addr, table: String(table) });
    const gw = (fam === 6 ? opts.gateways.v6 : opts.gateways.v4) ?? ip.gateway;
    if (gw)
      commands.push(
        `route add ${fam === 6 ? "::/0" : "0.0.0.0/0"} via ${gw} dev ${opts.ifname} table ${table}`,
      );
    // Both families, as upstream (it lists the link's routes of every family): a route with
    // neither source nor gateway is copied into every address's table.
    for (const [r, rf] of familyRoutes(opts.routes)) {
      const mine =
        inSubnet(ip.address, r.prefsrc) || inSubnet(ip.address, r.gateway) || (!r.prefsrc && !r.gateway);
      if (mine) commands.push(`route replace ${routeSpec(r, rf, table)}`);
    }
    table = nextFreeTable(rules, table + 1);
  }
  const all = familyRoutes(opts.routes);
  if (opts.addSourceHints) {
    for (const ip of opts.ips) {
      const [addr] = ip.address.split("/") as [string];
      commands.push(
        `route replace ${subnetOf(ip.address)} dev ${opts.ifname} src ${addr} scope link table main`,
      );
    }
    for (const [r, fam] of all)
      if (r.scope !== "link") commands.push(`route del ${routeSpec(r, fam, "main")}`);
  } else {
    for (const [r, fam] of all) commands.push(`route del ${routeSpec(r, fam, "main")}`);
  }
  return plan;
}

function familyRoutes(routes: InterfaceRoutes): Array<[RouteShow, 4 | 6]> {
  return [
    ...routes.v4.map((r): [RouteShow, 4 | 6] => [r, 4]),
    ...routes.v6.map((r): [RouteShow, 4 | 6] => [r, 6]),
  ];
}

/** sbr with `table`: only the rules, into the given table. */
export function planRulesOnly(ips: IPConfig[], table: number): SbrPlan {
  const plan: SbrPlan = { commands: [], rules6: [], undo: [], undo6: [] };
  for (const ip of ips) {
    const [addr] = ip.address.split("/") as [string];
    ruleLines(plan, `${addr}/${v6(addr) ? 128 : 32}`, table);
  }
  return plan;
}

/**
 * DEL: the rules (of `table`, when given) whose source is one of the interface's addresses, for
 * `ip -batch` of the rules' family.
 */
export function rulesToDelete(rules: RuleShow[], addresses: string[], table?: number): string[] {
  const canonical = (a: string): string | undefined => {
    const ip = parseIPLiteral(a);
    return ip ? formatIP(ip) : undefined;
  };
  const mine = new Set(addresses.map(canonical));
  const out: string[] = [];
  for (const r of rules) {
    if (!r.src || r.src === "all") continue;
    if (table !== undefined && tableNumber(r.table) !== table) continue;
    const src = canonical(r.src);
    if (src === undefined || !mine.has(src)) continue;
    const len = r.srclen ?? (v6(r.src) ? 128 : 32);
    out.push(
      `rule del from ${r.src}/${len} table ${tableNumber(r.table)}${r.priority !== undefined ? ` priority ${r.priority}` : ""}`,
    );
  }
  return out;
}
