/**
 * Pure matching of observations against expectations (no I/O): address patterns, result shape, kernel links
 * and routes. Each function returns the list of mismatches in words; empty means it matched.
 */
import { cidrContains, formatIP, parseCidr, parseIP } from "../../lib/cidr.js";
import type { IpExpect, KernelRouteExpect, LinkExpect, ResultExpect, RouteExpect } from "./schema.js";
import type { KLink, KRoute } from "./kernel.js";

type J = Record<string, unknown>;

/** Canonical "addr/prefix" (IPv6 compressed like Go), or the input when it does not parse. */
export function canonCidr(s: string): string {
  const c = parseCidr(s);
  if (!c) return s;
  return `${formatIP({ family: c.family, value: c.ip })}/${c.prefix}`;
}

export function canonIP(s: string): string {
  const ip = parseIP(s);
  return ip ? formatIP(ip) : s;
}

/** "10.1.0.2/24" exactly, or "in 10.1.0.0/24": inside that subnet with that prefix length. */
export function addressMatches(pattern: string, actual: string): boolean {
  if (pattern.startsWith("in ")) {
    const net = parseCidr(pattern.slice(3));
    const a = parseCidr(actual);
    if (!net || !a || a.family !== net.family || a.prefix !== net.prefix) return false;
    return cidrContains(net, { family: a.family, value: a.ip });
  }
  return canonCidr(pattern) === canonCidr(actual);
}

/** The dst of a route normalized: "default" is 0.0.0.0/0 or ::/0 by family of the other fields. */
export function canonDst(dst: string, v6hint = false): string {
  if (dst === "default") return v6hint ? "::/0" : "0.0.0.0/0";
  return canonCidr(dst.includes("/") ? dst : `${dst}/${dst.includes(":") ? 128 : 32}`);
}

function regexOk(pattern: string, s: string): boolean {
  return new RegExp(pattern).test(s);
}

/** Deep partial match: every key of `want` must be in `got` with a matching value; arrays element-wise. */
export function partialMatch(want: unknown, got: unknown, path = "result"): string[] {
  if (want === null || typeof want !== "object")
    return Object.is(want, got) ? [] : [`${path}: expected ${JSON.stringify(want)}, got ${JSON.stringify(got)}`];
  if (Array.isArray(want)) {
    if (!Array.isArray(got)) return [`${path}: expected an array, got ${JSON.stringify(got)}`];
    if (got.length !== want.length)
      return [`${path}: expected ${want.length} entries, got ${got.length}: ${JSON.stringify(got)}`];
    return want.flatMap((w, i) => partialMatch(w, got[i], `${path}[${i}]`));
  }
  if (got === null || typeof got !== "object" || Array.isArray(got))
    return [`${path}: expected an object, got ${JSON.stringify(got)}`];
  return Object.entries(want as J).flatMap(([k, w]) =>
    k in (got as J) ? partialMatch(w, (got as J)[k], `${path}.${k}`) : [`${path}.${k}: missing`],
  );
}

/** Addresses of a result at any version: 1.x/0.3/0.4 `ips[].address`, 0.1/0.2 `ip4.ip`/`ip6.ip`. */
export function resultAddresses(result: J | undefined): string[] {
  if (!result) return [];
  if (Array.isArray(result.ips)) return (result.ips as J[]).map((i) => String(i.address));
  const out: string[] = [];
  for (const k of ["ip4", "ip6"]) {
    const o = result[k] as J | undefined;
    if (o && typeof o.ip === "string") out.push(o.ip);
  }
  return out;
}

/** Gateway of a family from a result. */
export function resultGateway(result: J | undefined, family: 4 | 6): string | undefined {
  if (!result) return undefined;
  if (Array.isArray(result.ips)) {
    for (const i of result.ips as J[]) {
      const a = String(i.address);
      if ((a.includes(":") ? 6 : 4) === family && typeof i.gateway === "string") return i.gateway;
    }
    return undefined;
  }
  const o = result[family === 4 ? "ip4" : "ip6"] as J | undefined;
  return o && typeof o.gateway === "string" ? o.gateway : undefined;
}

/** The host-side veth of an attachment: an interface without sandbox named veth*, else the second interface. */
export function resultHostVeth(result: J | undefined): string | undefined {
  const ifs = Array.isArray(result?.interfaces) ? (result!.interfaces as J[]) : [];
  const v = ifs.find((i) => !i.sandbox && typeof i.name === "string" && i.name.startsWith("veth"));
  if (v) return String(v.name);
  const second = ifs[1];
  return second && !second.sandbox && typeof second.name === "string" ? second.name : undefined;
}

export function resultMac(result: J | undefined, name: string): string | undefined {
  const ifs = Array.isArray(result?.interfaces) ? (result!.interfaces as J[]) : [];
  const i = ifs.find((x) => x.name === name);
  return i && typeof i.mac === "string" ? i.mac.toLowerCase() : undefined;
}

function ipMatches(want: IpExpect, got: J, i: number): string[] {
  const out: string[] = [];
  const addr = typeof got.address === "string" ? got.address : "";
  if (!addressMatches(want.address, addr))
    out.push(`ips[${i}].address: expected ${want.address}, got ${addr || JSON.stringify(got)}`);
  if (want.gateway !== undefined && canonIP(String(got.gateway ?? "")) !== canonIP(want.gateway))
    out.push(`ips[${i}].gateway: expected ${want.gateway}, got ${String(got.gateway)}`);
  if (want.interface !== undefined && got.interface !== want.interface)
    out.push(`ips[${i}].interface: expected ${want.interface}, got ${String(got.interface)}`);
  if (want.version === "none" && "version" in got)
    out.push(`ips[${i}].version: expected no version field (spec 1.0.0+), got ${JSON.stringify(got.version)}`);
  else if (want.version !== undefined && want.version !== "none" && got.version !== want.version)
    out.push(`ips[${i}].version: expected "${want.version}", got ${JSON.stringify(got.version)}`);
  return out;
}

function routeKey(r: { dst: string; gw?: string | null | undefined }): string {
  const dst = canonDst(r.dst, r.dst.includes(":"));
  return `${dst} via ${r.gw ? canonIP(r.gw) : "-"}`;
}

/** A result against its expectation. `ifname`/`netns` are for `sandbox`. */
export function matchResult(want: ResultExpect, got: J, ifname: string, netns: string): string[] {
  const out: string[] = [];
  if (want.cniVersion !== undefined && got.cniVersion !== want.cniVersion)
    out.push(`result.cniVersion: expected ${want.cniVersion}, got ${JSON.stringify(got.cniVersion)}`);
  const ifs = Array.isArray(got.interfaces) ? (got.interfaces as J[]) : [];
  if (typeof want.interfaces === "number" && ifs.length !== want.interfaces)
    out.push(
      `result.interfaces: expected ${want.interfaces}, got ${ifs.length} (${ifs.map((i) => i.name).join(", ")})`,
    );
  if (Array.isArray(want.interfaces)) {
    if (ifs.length !== want.interfaces.length)
      out.push(
        `result.interfaces: expected ${want.interfaces.length}, got ${ifs.length} (${ifs.map((i) => i.name).join(", ")})`,
      );
    else
      want.interfaces.forEach((re, i) => {
        if (!regexOk(re, String(ifs[i]!.name)))
          out.push(`result.interfaces[${i}].name: expected /${re}/, got ${String(ifs[i]!.name)}`);
      });
  }
  if (want.ips !== undefined) {
    const ips = Array.isArray(got.ips) ? (got.ips as J[]) : [];
    if (ips.length !== want.ips.length)
      out.push(`result.ips: expected ${want.ips.length}, got ${ips.length}: ${JSON.stringify(ips)}`);
    else
      want.ips.forEach((w, i) => {
        out.push(...ipMatches(w, ips[i]!, i));
      });
  }
  if (want.routes !== undefined) {
    const routes = Array.isArray(got.routes) ? (got.routes as J[]) : [];
    const gotKeys = routes.map((r) => routeKey({ dst: String(r.dst), gw: r.gw as string | undefined })).sort();
    const wantKeys = want.routes.map((r: RouteExpect) => routeKey(r));
    // A route expected without gw constraint (gw undefined) matches any gw of that dst.
    const free = want.routes.filter((r) => r.gw === undefined).map((r) => canonDst(r.dst, r.dst.includes(":")));
    const strict = want.routes.filter((r) => r.gw !== undefined).map((r) => routeKey(r));
    const remaining = [...gotKeys];
    const missing: string[] = [];
    for (const k of strict) {
      const i = remaining.indexOf(k);
      if (i < 0) missing.push(k);
      else remaining.splice(i, 1);
    }
    for (const d of free) {
      const i = remaining.findIndex((k) => k.startsWith(`${d} via`));
      if (i < 0) missing.push(`${d} via *`);
      else remaining.splice(i, 1);
    }
    if (missing.length > 0 || remaining.length > 0)
      out.push(`result.routes: expected [${wantKeys.join(", ")}], got [${gotKeys.join(", ")}]`);
  }
  for (const k of want.has ?? []) if (!(k in got)) out.push(`result: key ${k} missing`);
  for (const k of want.lacks ?? []) if (k in got) out.push(`result: key ${k} present (${JSON.stringify(got[k])})`);
  if (want.json) out.push(...partialMatch(want.json, got));
  if (want.sandbox) {
    const pod = ifs.find((i) => i.name === ifname);
    if (!pod) out.push(`result.interfaces: no ${ifname}`);
    else if (pod.sandbox !== netns)
      out.push(`result.interfaces[${ifname}].sandbox: expected ${netns}, got ${JSON.stringify(pod.sandbox)}`);
  }
  return out;
}

/** One expected link against the namespace's links. `name` is already resolved. */
export function matchLink(want: LinkExpect, name: string, all: KLink[], where: string, resultMacOf?: string): string[] {
  const l = all.find((x) => x.name === name);
  if (!l) return [`${where}: no link ${name} (have ${all.map((x) => x.name).join(", ")})`];
  const out: string[] = [];
  const p = `${where} ${name}`;
  if (want.kind !== undefined && l.kind !== want.kind) out.push(`${p}: kind ${l.kind}, expected ${want.kind}`);
  if (want.up !== undefined && l.up !== want.up)
    out.push(`${p}: ${l.up ? "up" : "down"}, expected ${want.up ? "up" : "down"}`);
  if (want.mtu !== undefined && l.mtu !== want.mtu) out.push(`${p}: mtu ${l.mtu}, expected ${want.mtu}`);
  if (want.master !== undefined && l.master !== want.master)
    out.push(`${p}: master ${l.master ?? "none"}, expected ${want.master}`);
  if (want.hairpin !== undefined && (l.hairpin ?? false) !== want.hairpin)
    out.push(`${p}: hairpin ${l.hairpin ?? "n/a"}, expected ${want.hairpin}`);
  if (want.isolated !== undefined && (l.isolated ?? false) !== want.isolated)
    out.push(`${p}: isolated ${l.isolated ?? "n/a"}, expected ${want.isolated}`);
  if (want.promisc !== undefined && l.promisc !== want.promisc)
    out.push(`${p}: promisc ${l.promisc}, expected ${want.promisc}`);
  for (const a of want.addresses ?? [])
    if (!l.addresses.some((x) => addressMatches(a, x)))
      out.push(`${p}: no address ${a} (has ${l.addresses.join(", ") || "none"})`);
  if (want.mac !== undefined && l.mac.toLowerCase() !== want.mac.toLowerCase())
    out.push(`${p}: mac ${l.mac}, expected ${want.mac}`);
  if (want.macFromResult) {
    if (!resultMacOf) out.push(`${p}: the ADD result gives no MAC for it`);
    else if (l.mac.toLowerCase() !== resultMacOf) out.push(`${p}: mac ${l.mac}, result says ${resultMacOf}`);
  }
  return out;
}

function kroutePred(want: KernelRouteExpect, r: KRoute): boolean {
  if (want.dst === "default") {
    if (r.dst !== "0.0.0.0/0" && r.dst !== "::/0") return false;
    if (want.gw !== undefined && (r.family === 6) !== want.gw.includes(":")) return false;
  } else if (canonDst(want.dst) !== canonDst(r.dst)) return false;
  if (want.gw !== undefined && (!r.gw || canonIP(r.gw) !== canonIP(want.gw))) return false;
  if (want.dev !== undefined && r.dev !== want.dev) return false;
  if (want.mtu !== undefined && r.mtu !== want.mtu) return false;
  if (want.advmss !== undefined && r.advmss !== want.advmss) return false;
  if (want.metric !== undefined && (r.metric ?? 0) !== want.metric) return false;
  if ((want.table ?? 254) !== r.table) return false;
  return true;
}

export function showRoute(r: KRoute): string {
  return [
    r.dst,
    r.gw && `via ${r.gw}`,
    r.dev && `dev ${r.dev}`,
    r.table !== 254 && `table ${r.table}`,
    r.metric && `metric ${r.metric}`,
    r.mtu && `mtu ${r.mtu}`,
    r.advmss && `advmss ${r.advmss}`,
  ]
    .filter(Boolean)
    .join(" ");
}

function showWant(w: KernelRouteExpect): string {
  return [
    w.dst,
    w.gw && `via ${w.gw}`,
    w.dev && `dev ${w.dev}`,
    w.table && `table ${w.table}`,
    w.metric && `metric ${w.metric}`,
    w.mtu && `mtu ${w.mtu}`,
    w.advmss && `advmss ${w.advmss}`,
  ]
    .filter(Boolean)
    .join(" ");
}

export function matchRoutes(
  want: KernelRouteExpect[] | undefined,
  absent: KernelRouteExpect[] | undefined,
  got: KRoute[],
  where: string,
): string[] {
  const out: string[] = [];
  for (const w of want ?? [])
    if (!got.some((r) => kroutePred(w, r)))
      out.push(`${where}: no route ${showWant(w)} (have: ${got.map(showRoute).join("; ") || "none"})`);
  for (const w of absent ?? []) {
    const hit = got.find((r) => kroutePred(w, r));
    if (hit) out.push(`${where}: route ${showRoute(hit)} present, expected absent`);
  }
  return out;
}
