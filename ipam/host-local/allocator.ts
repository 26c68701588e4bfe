/**
 * host-local address allocation, over a small ReservationStore so it runs without a disk.
 *
 * The order is the reference's (`backend/allocator/allocator.go`): per range set, a requested IP if one lies in the
 * set, else round-robin from the set's last reserved address, skipping gateways. What differs is the rollback: only
 * the addresses this ADD reserved are released (the reference releases everything the attachment holds).
 *
 * @example
 *   const ips = await allocate(store, conf.rangeSets, conf.requestedIPs, containerID, ifname);
 *   // [{ address: "10.1.2.2/24", gateway: "10.1.2.1" }]
 */
import { type IPAddr, formatIP, parseIP } from "../../lib/cidr.js";
import { CniError, ErrorCode, asCniError } from "../../lib/errors.js";
import type { IPConfig } from "../../lib/types.js";
import { type Range, type RangeSet, isGateway, rangeContains, rangeFor, rangeSetToString } from "./range.js";

/**
 * What the allocator needs from reservation storage. IPs are canonical text (formatIP), which is also the
 * reference's file name for them.
 */
export interface ReservationStore {
  /** Atomically reserve ip for (id, ifname) and remember it as the set's last reserved IP; false if already taken. */
  reserve(ip: string, id: string, ifname: string, setIndex: number): Promise<boolean>;
  /** The last IP reserved in this set (`last_reserved_ip.<setIndex>`), if known. */
  lastReserved(setIndex: number): Promise<string | undefined>;
  /** True when a reservation exists for ip. */
  isReserved(ip: string): Promise<boolean>;
  /** IPs held by this attachment (exact match on id+ifname; legacy files holding only the id match too). */
  findByAttachment(id: string, ifname: string): Promise<string[]>;
  /** Remove the reservation of ip; no error if there is none. */
  release(ip: string): Promise<void>;
}

/** One address the iterator offers, with the range it came from (for the prefix and the gateway). */
export interface Candidate {
  readonly ip: IPAddr;
  readonly range: Range;
}

/** Where the round-robin walk begins: just after lastReserved if it lies in the set, else at the first rangeStart. */
function startPosition(set: RangeSet, lastReserved: IPAddr | undefined): { index: number; cur: bigint | undefined } {
  const index = lastReserved === undefined ? -1 : set.findIndex((r) => rangeContains(r, lastReserved));
  return index >= 0 && lastReserved !== undefined ? { index, cur: lastReserved.value } : { index: 0, cur: undefined };
}

/**
 * Every allocatable address of a set once, in the reference's round-robin order: start after lastReserved (or at the
 * first range's rangeStart), step up to rangeEnd, jump to the next range's rangeStart (the last range wraps to the
 * first), stop when back at the first address visited. A range's own gateway is skipped.
 *
 * @example [...iterateRangeSet(set, lastReserved)].map((c) => formatIP(c.ip))
 */
export function* iterateRangeSet(set: RangeSet, lastReserved?: IPAddr): Generator<Candidate, void, undefined> {
  if (set.length === 0) return;
  let { index, cur } = startPosition(set, lastReserved);
  let r = set[index] as Range;
  let first: bigint | undefined;
  const offer = (value: bigint): Candidate | undefined => {
    const ip: IPAddr = { family: r.rangeStart.family, value };
    return isGateway(r, ip) ? undefined : { ip, range: r };
  };
  if (cur === undefined) {
    cur = first = r.rangeStart.value;
    const c = offer(cur);
    if (c) yield c;
  }
  for (;;) {
    if (cur === r.rangeEnd.value) {
      index = (index + 1) % set.length;
      r = set[index] as Range;
      cur = r.rangeStart.value;
    } else {
      cur += 1n;
    }
    if (first === undefined) first = cur;
    else if (cur === first) return;
    const c = offer(cur);
    if (c) yield c;
  }
}

/**
 * Number of addresses of the set that can still be handed out: every address of every range minus its gateway,
 * minus the reserved ones. Arithmetic, not a walk, so it is cheap on a /64.
 *
 * @param reserved the canonical text of every reserved IP of the network (others sets' IPs are ignored)
 */
export function freeCount(set: RangeSet, reserved: Iterable<string>): bigint {
  let total = 0n;
  for (const r of set) total += r.rangeEnd.value - r.rangeStart.value + 1n - (rangeContains(r, r.gateway) ? 1n : 0n);
  const taken = new Set<string>();
  for (const text of reserved) {
    const ip = parseIP(text);
    const r = ip && rangeFor(set, ip);
    if (ip && r && !isGateway(r, ip)) taken.add(formatIP(ip));
  }
  return total - BigInt(taken.size);
}

/**
 * True when at least one address of the set is free. Walks the set in allocation order, so it stops after at most
 * (reservations + gateways + 1) probes whatever the range size.
 */
export async function hasFree(
  set: RangeSet,
  isReserved: (ip: string) => boolean | Promise<boolean>,
  lastReserved?: IPAddr,
): Promise<boolean> {
  for (const c of iterateRangeSet(set, lastReserved)) {
    if (!(await isReserved(formatIP(c.ip)))) return true;
  }
  return false;
}

function ipConfig(c: Candidate): IPConfig {
  return { address: `${formatIP(c.ip)}/${c.range.subnet.prefix}`, gateway: formatIP(c.range.gateway) };
}

/** Per-ADD state: what was reserved so far, so a failure can give exactly that back. */
interface Attempt {
  readonly store: ReservationStore;
  readonly id: string;
  readonly ifname: string;
  readonly taken: string[];
  /** Lazily read: only sets without a requested IP need it. */
  held?: IPAddr[];
}

async function reserve(a: Attempt, ip: IPAddr, setIndex: number): Promise<boolean> {
  const text = formatIP(ip);
  const ok = await a.store.reserve(text, a.id, a.ifname, setIndex);
  if (ok) a.taken.push(text);
  return ok;
}

async function takeRequested(a: Attempt, set: RangeSet, setIndex: number, ip: IPAddr): Promise<IPConfig> {
  const range = rangeFor(set, ip) as Range;
  if (isGateway(range, ip)) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `requested ip ${formatIP(ip)} is subnet's gateway`);
  }
  if (!(await reserve(a, ip, setIndex))) {
    throw new CniError(
      ErrorCode.AlreadyInUse,
      `requested IP address ${formatIP(ip)} is not available in range set ${rangeSetToString(set)}`,
    );
  }
  return ipConfig({ ip, range });
}

/** The reference refuses a second address in a set for one attachment (plugins#327): a repeated ADD is an error. */
async function refuseDuplicate(a: Attempt, set: RangeSet): Promise<void> {
  a.held ??= (await a.store.findByAttachment(a.id, a.ifname)).flatMap((t) => parseIP(t) ?? []);
  const dup = a.held.find((ip) => rangeFor(set, ip) !== undefined);
  if (dup !== undefined) {
    throw new CniError(
      ErrorCode.AlreadyInUse,
      `${formatIP(dup)} has been allocated to ${a.id}, duplicate allocation is not allowed`,
      "run DEL for this container and interface first",
    );
  }
}

async function takeNext(a: Attempt, set: RangeSet, setIndex: number): Promise<IPConfig> {
  await refuseDuplicate(a, set);
  const last = await a.store.lastReserved(setIndex);
  for (const c of iterateRangeSet(set, last === undefined ? undefined : parseIP(last))) {
    // false means another ADD created the reservation first; the next address is as good.
    if (await reserve(a, c.ip, setIndex)) return ipConfig(c);
  }
  throw new CniError(ErrorCode.AddressesExhausted, `no IP addresses available in range set: ${rangeSetToString(set)}`);
}

/** Assign each set the first still-unassigned requested IP it contains, as the reference's loop does. */
function assignRequested(
  sets: readonly RangeSet[],
  requested: readonly IPAddr[],
): { perSet: (IPAddr | undefined)[]; unmatched: IPAddr[] } {
  const pending = [...requested];
  const perSet = sets.map((set) => {
    const i = pending.findIndex((ip) => rangeFor(set, ip) !== undefined);
    return i < 0 ? undefined : pending.splice(i, 1)[0];
  });
  return { perSet, unmatched: pending };
}

/**
 * Refuse, before anything is read or written, the requests no store can satisfy: a requested IP that lies in no
 * range set, or that is its range's gateway (code 7). allocate() checks the same; calling this first lets a caller
 * refuse such an ADD without touching the disk at all.
 */
export function checkRequested(rangeSets: readonly RangeSet[], requestedIPs: readonly IPAddr[]): void {
  const { perSet, unmatched } = assignRequested(rangeSets, requestedIPs);
  if (unmatched.length > 0) {
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `failed to allocate all requested IPs: ${unmatched.map(formatIP).join(" ")}`,
    );
  }
  perSet.forEach((ip, i) => {
    if (ip && isGateway(rangeFor(rangeSets[i]!, ip) as Range, ip)) {
      throw wrapSetError(
        new CniError(ErrorCode.InvalidNetworkConfig, `requested ip ${formatIP(ip)} is subnet's gateway`),
        i,
      );
    }
  });
}

async function rollback(a: Attempt): Promise<void> {
  // Best effort, like the reference: the original error is the one worth reporting.
  for (const ip of a.taken.reverse()) await a.store.release(ip).catch(() => undefined);
}

function wrapSetError(err: unknown, setIndex: number): CniError {
  const e = asCniError(err, ErrorCode.IOFailure);
  return new CniError(e.code, `failed to allocate for range ${setIndex}: ${e.message}`, e.details);
}

/**
 * Allocate one address per range set for (id, ifname), in set order.
 *
 * Requested IPs that lie in no set fail the whole ADD before anything is reserved (the reference reserves, then
 * releases; the outcome is the same). On any failure, everything this call reserved is released.
 *
 * @throws CniError 101 when a set is full, 102 when a requested IP is taken or the attachment already holds an
 *   address in a set, 7 when a requested IP is a gateway or matches no set; store failures keep their code (else 5).
 */
export async function allocate(
  store: ReservationStore,
  rangeSets: readonly RangeSet[],
  requestedIPs: readonly IPAddr[],
  id: string,
  ifname: string,
): Promise<IPConfig[]> {
  checkRequested(rangeSets, requestedIPs);
  const { perSet } = assignRequested(rangeSets, requestedIPs);
  const a: Attempt = { store, id, ifname, taken: [] };
  const out: IPConfig[] = [];
  for (const [i, set] of rangeSets.entries()) {
    const requested = perSet[i];
    try {
      out.push(requested ? await takeRequested(a, set, i, requested) : await takeNext(a, set, i));
    } catch (err) {
      await rollback(a);
      throw wrapSetError(err, i);
    }
  }
  return out;
}
