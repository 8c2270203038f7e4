/**
 * The browsing side of mDNS for `_mcp-e2e._tcp` as a pure state machine
 * (RFC 6762 §5.2, §7.1, §10): records and a clock in; services found,
 * updated and lost, and the queries to send, out. The driver
 * (`mdns-socket.ts`) binds it to sockets; tests run it on a virtual clock.
 *
 * - A TTL cache of its own: PTR, SRV, TXT per instance, A/AAAA per host
 *   named by a cached SRV (addresses of other hosts are not kept).
 * - Goodbyes (TTL 0) expire a record one second later (§10.1); a record with
 *   the cache-flush bit expires the same host's older addresses of that family
 *   one second later (§10.2).
 * - Refresh queries for records in use at 80, 85, 90 and 95 % of their TTL,
 *   plus up to 2 % random (§5.2; one random draw per received packet, so the
 *   records that came together are refreshed together), coalesced into one
 *   packet.
 * - Continuous querying for the service with intervals that double from
 *   1 s up to an hour (§5.2), restarted when an interface appears.
 * - Hostile input is bounded: at most `maxServices` instances (incomplete ones
 *   are evicted first, complete ones never by newcomers), at most
 *   `newServicesBurst` new instances at once and `newServicesPerSecond` after
 *   that, at most `maxAddressesPerHost` addresses per host, TTLs capped at
 *   `maxTtlMs`. Whatever is dropped is counted in `stats`.
 */
import { endpointUrl, parseTxt, SERVICE_NAME, type BrowseRecord, type KnownAnswer, type QueryQuestion, type ServiceTxt, type TxtRefusal } from './mdns-wire.js';

/** Longest TTL honoured by default, ms (longer ones are read as this): a record from a hostile or broken responder cannot pin a cache entry for days. */
export const DEFAULT_MAX_TTL_MS = 2 * 60 * 60 * 1000;
/** A goodbye, or a record flushed by a newer one, lingers this long (RFC 6762 §10.1), ms. */
export const GOODBYE_LINGER_MS = 1000;
/** First interval of continuous querying, and the cap it doubles up to (RFC 6762 §5.2), ms. */
export const FIRST_QUERY_INTERVAL_MS = 1000;
export const MAX_QUERY_INTERVAL_MS = 60 * 60 * 1000;
export const DEFAULT_MAX_SERVICES = 256;
export const DEFAULT_NEW_SERVICES_BURST = 32;
export const DEFAULT_NEW_SERVICES_PER_SECOND = 4;
export const DEFAULT_MAX_ADDRESSES_PER_HOST = 8;
/** Refresh points as fractions of a record's TTL (RFC 6762 §5.2). */
const REFRESH_POINTS = [0.8, 0.85, 0.9, 0.95];
/** Records past this fraction of their TTL are refreshed along with one that is due. */
const PIGGYBACK_POINT = 0.7;
/** An instance announced without its SRV, TXT or addresses is asked for them this long after each try, ms; then no more until its PTR is refreshed. */
const RESOLVE_DELAYS_MS = [250, 1000, 3000];

/** Where a packet came from: the local interface whose network holds the sender, when one does. */
export interface Arrival {
  iface?: string | undefined;
}

/** An address of a service, with the interface it was learned on. */
export interface ServiceAddress {
  address: string;
  family: 4 | 6;
  iface?: string | undefined;
}

/** A service as resolved from the cache: everything needed to dial it. A hint, never proof. */
export interface ResolvedService {
  /** The instance label as announced (human; may change on a rename; never identity). */
  instance: string;
  /** The full instance name, lowercase: the cache key. */
  fullName: string;
  nodeId: string;
  protocolVersions: readonly number[];
  publicKey: Buffer | undefined;
  host: string;
  port: number;
  addresses: readonly ServiceAddress[];
  /** `ws://` / `wss://` URLs, one per usable address. */
  urls: readonly string[];
  /** When the first of the records this rests on expires, ms. */
  expiresAtMs: number;
  firstSeenMs: number;
}

export type BrowseEvent =
  | { type: 'found' | 'updated'; service: ResolvedService }
  | { type: 'lost'; service: ResolvedService; reason: 'goodbye' | 'expired' };

/** What the cache dropped or refused, for logs and tests. */
export interface BrowseStats {
  /** New instances dropped because `maxServices` complete ones are cached. */
  capDropped: number;
  /** Incomplete instances evicted to make room. */
  evicted: number;
  /** New instances dropped by the rate limit. */
  rateLimited: number;
  /** TXT records refused, by reason. */
  txtRefused: Partial<Record<TxtRefusal, number>>;
  /** Addresses refused by the address filter (wrong network) or by the per-host cap. */
  addressesRefused: number;
  /** Goodbyes received. */
  goodbyes: number;
}

export interface BrowseCacheOptions {
  /** Most instances cached. Default `DEFAULT_MAX_SERVICES` (256). */
  maxServices?: number;
  /** New instances accepted at once. Default 32. */
  newServicesBurst?: number;
  /** New instances accepted per second after the burst. Default 4. */
  newServicesPerSecond?: number;
  /** Addresses kept per host (the most recent). Default 8. */
  maxAddressesPerHost?: number;
  /**
   * Longest TTL honoured, ms. Default two hours. Lower values notice a node
   * that vanished without a goodbye (kill -9, a pulled cable) sooner, at the
   * cost of refresh queries at 80-95 % of this instead of the record's TTL.
   */
  maxTtlMs?: number;
  /** Whether an address may be dialled (e.g. it is on the network it arrived from). Default: every address. */
  acceptAddress?: (address: ServiceAddress) => boolean;
  /** Random numbers in [0, 1), for the jitter. Default `Math.random`. */
  random?: () => number;
  /** Our own node id (once known): its service is cached but never refreshed. */
  ownNodeId?: () => string | undefined;
}

interface Cached {
  receivedMs: number;
  ttlMs: number;
  expiresMs: number;
  /** Index into REFRESH_POINTS of the next refresh, or REFRESH_POINTS.length when none is due. */
  refreshStep: number;
  /** The jitter of this record's refresh points, ms. */
  jitterMs: number;
  goodbye: boolean;
}

interface Instance {
  label: string;
  ptr: Cached;
  srv: (Cached & { host: string; port: number }) | undefined;
  txt: (Cached & { fields: ServiceTxt | undefined }) | undefined;
  firstSeenMs: number;
  /** Tries so far to resolve an incomplete instance, and when the next is due (ms). */
  resolveStep: number;
  resolveAtMs: number | undefined;
  /** The last view emitted (`found`/`updated`), to emit only real changes. */
  emitted: ResolvedService | undefined;
  emittedKey: string | undefined;
}

interface HostAddress extends Cached, ServiceAddress {}

const number = (v: number | undefined, d: number, name: string): number => {
  const n = v ?? d;
  if (!Number.isFinite(n) || n <= 0) throw new RangeError(`"${name}" expected a positive number`);
  return n;
};

export class BrowseCache {
  readonly stats: BrowseStats = { capDropped: 0, evicted: 0, rateLimited: 0, txtRefused: {}, addressesRefused: 0, goodbyes: 0 };
  private readonly instances = new Map<string, Instance>();
  private readonly hosts = new Map<string, Map<string, HostAddress>>();
  private readonly maxServices: number;
  private readonly burst: number;
  private readonly perSecond: number;
  private readonly maxAddresses: number;
  private readonly maxTtlMs: number;
  private readonly accept: (a: ServiceAddress) => boolean;
  private readonly random: () => number;
  private readonly ownNodeId: () => string | undefined;
  private tokens: number;
  private tokensAtMs: number | undefined;
  private packetJitter = 0;

  constructor(options: BrowseCacheOptions = {}) {
    this.maxServices = number(options.maxServices, DEFAULT_MAX_SERVICES, 'maxServices');
    this.burst = number(options.newServicesBurst, DEFAULT_NEW_SERVICES_BURST, 'newServicesBurst');
    this.perSecond = number(options.newServicesPerSecond, DEFAULT_NEW_SERVICES_PER_SECOND, 'newServicesPerSecond');
    this.maxAddresses = number(options.maxAddressesPerHost, DEFAULT_MAX_ADDRESSES_PER_HOST, 'maxAddressesPerHost');
    this.maxTtlMs = number(options.maxTtlMs, DEFAULT_MAX_TTL_MS, 'maxTtlMs');
    this.accept = options.acceptAddress ?? (() => true);
    this.random = options.random ?? Math.random;
    this.ownNodeId = options.ownNodeId ?? (() => undefined);
    this.tokens = this.burst;
  }

  /** Instances cached (complete or not). */
  get size(): number {
    return this.instances.size;
  }

  /** Addresses cached, over all hosts. */
  get addressCount(): number {
    let n = 0;
    for (const h of this.hosts.values()) n += h.size;
    return n;
  }

  /** The services that can be dialled now. */
  services(): ResolvedService[] {
    const out: ResolvedService[] = [];
    for (const i of this.instances.values()) if (i.emitted) out.push(i.emitted);
    return out;
  }

  /** Take in the records of one response. */
  handle(records: readonly BrowseRecord[], from: Arrival, nowMs: number): BrowseEvent[] {
    const touched = new Set<string>();
    // One jitter for the records of one packet: those with one TTL come due together and are refreshed in one query.
    this.packetJitter = this.random() * 0.02;
    for (const r of records) {
      if (r.kind === 'ptr') this.onPtr(r, nowMs, touched);
      else if (r.kind === 'srv') this.onSrv(r, nowMs, touched);
      else if (r.kind === 'txt') this.onTxt(r, nowMs, touched);
      else this.onAddress(r, from, nowMs, touched);
    }
    return this.resolveTouched(touched, nowMs, 'expired');
  }

  /** Drop what has expired at `nowMs`. */
  expire(nowMs: number): BrowseEvent[] {
    const touched = new Set<string>();
    let goodbye = false;
    for (const [key, i] of this.instances) {
      if (i.ptr.expiresMs <= nowMs) {
        goodbye ||= i.ptr.goodbye;
        this.dropInstance(key, i);
        if (i.emitted) touched.add(key);
        continue;
      }
      if (i.srv && i.srv.expiresMs <= nowMs) {
        goodbye ||= i.srv.goodbye;
        this.unref(i.srv.host);
        i.srv = undefined;
        touched.add(key);
      }
      if (i.txt && i.txt.expiresMs <= nowMs) {
        goodbye ||= i.txt.goodbye;
        i.txt = undefined;
        touched.add(key);
      }
    }
    for (const [host, addrs] of this.hosts) {
      let changed = false;
      for (const [address, a] of addrs) {
        if (a.expiresMs <= nowMs) {
          goodbye ||= a.goodbye;
          addrs.delete(address);
          changed = true;
        }
      }
      if (changed) for (const [key, i] of this.instances) if (i.srv?.host === host) touched.add(key);
    }
    return this.resolveTouched(touched, nowMs, goodbye ? 'goodbye' : 'expired');
  }

  /** The earliest time at which `expire` or `dueRefreshes` has something to do, ms; undefined when the cache is empty. */
  nextDeadlineMs(): number | undefined {
    let next = Infinity;
    const consider = (c: Cached) => {
      next = Math.min(next, c.expiresMs);
      const at = this.refreshAt(c);
      if (at !== undefined) next = Math.min(next, at);
    };
    for (const i of this.instances.values()) {
      if (i.resolveAtMs !== undefined) next = Math.min(next, i.resolveAtMs);
      consider(i.ptr);
      if (i.srv) consider(i.srv);
      if (i.txt) consider(i.txt);
    }
    for (const addrs of this.hosts.values()) for (const a of addrs.values()) consider(a);
    return next === Infinity ? undefined : next;
  }

  /**
   * The questions of the refreshes due at `nowMs` (each record's next refresh
   * point passed), coalesced: the service PTR once, SRV+TXT per instance,
   * A+AAAA per host. When anything is due, records past 70 % of their TTL
   * come along (so a browser of N nodes sends one refresh, not N). Records
   * are refreshed only while they are in use: a service's records, or an
   * instance still being resolved; our own node's service never (it is ours
   * to announce, not to keep alive).
   */
  dueRefreshes(nowMs: number): QueryQuestion[] {
    const questions = new Map<string, QueryQuestion>();
    const add = (name: string, type: QueryQuestion['type']) => questions.set(`${type} ${name}`, { name, type });
    const own = this.ownNodeId();
    const isOwn = (i: Instance) => own !== undefined && i.txt?.fields?.nodeId === own;
    const ownHosts = new Set<string>();
    const otherHosts = new Set<string>();
    for (const i of this.instances.values()) if (i.srv) (isOwn(i) ? ownHosts : otherHosts).add(i.srv.host);
    const hostInUse = (host: string) => otherHosts.has(host) || !ownHosts.has(host);
    // Pass 1 (due points reached) and, only if it found something, pass 2 (piggyback from 70 %).
    const visit = (take: (c: Cached) => boolean) => {
      for (const [key, i] of this.instances) {
        if (isOwn(i)) continue;
        if (take(i.ptr)) add(SERVICE_NAME, 'PTR');
        if (i.srv && take(i.srv)) add(key, 'SRV');
        if (i.txt && take(i.txt)) add(key, 'TXT');
      }
      for (const [host, addrs] of this.hosts) {
        if (!hostInUse(host)) continue;
        for (const a of addrs.values()) if (take(a)) (add(host, 'A'), add(host, 'AAAA'));
      }
    };
    visit((c) => {
      const at = this.refreshAt(c);
      if (at === undefined || at > nowMs) return false;
      while (c.refreshStep < REFRESH_POINTS.length && (this.refreshAt(c) ?? Infinity) <= nowMs) c.refreshStep++;
      return true;
    });
    for (const [key, i] of this.instances) {
      if (i.resolveAtMs !== undefined && i.resolveAtMs <= nowMs) {
        // Announced, not resolved: ask for what it needs (a few times, RESOLVE_DELAYS_MS).
        add(key, 'SRV');
        add(key, 'TXT');
        if (i.srv) (add(i.srv.host, 'A'), add(i.srv.host, 'AAAA'));
        i.resolveStep++;
        i.resolveAtMs = i.resolveStep < RESOLVE_DELAYS_MS.length ? nowMs + RESOLVE_DELAYS_MS[i.resolveStep]! : undefined;
      }
    }
    if (questions.size > 0) {
      visit((c) => {
        if (c.refreshStep !== 0 || c.goodbye || nowMs < c.receivedMs + PIGGYBACK_POINT * c.ttlMs) return false;
        c.refreshStep = 1; // asked now as if at 80 %: if nothing answers, the next try is at 85 %
        return true;
      });
    }
    return [...questions.values()];
  }

  /** Known answers for a PTR query (RFC 6762 §7.1): instances whose PTR has more than half its TTL left, with the TTL left in seconds. */
  knownAnswers(nowMs: number): KnownAnswer[] {
    const out: KnownAnswer[] = [];
    for (const [key, i] of this.instances) {
      const left = i.ptr.expiresMs - nowMs;
      if (!i.ptr.goodbye && left > i.ptr.ttlMs / 2) out.push({ instance: key, ttl: Math.floor(left / 1000) });
    }
    return out;
  }

  // -------------------------------------------------------------------------------------------

  private cached(ttlS: number, nowMs: number): Cached {
    const ttlMs = Math.min(ttlS * 1000, this.maxTtlMs);
    const goodbye = ttlMs === 0;
    return {
      receivedMs: nowMs,
      ttlMs,
      expiresMs: goodbye ? nowMs + GOODBYE_LINGER_MS : nowMs + ttlMs,
      refreshStep: goodbye ? REFRESH_POINTS.length : 0,
      jitterMs: this.packetJitter * ttlMs,
      goodbye,
    };
  }

  private refreshAt(c: Cached): number | undefined {
    if (c.refreshStep >= REFRESH_POINTS.length) return undefined;
    return c.receivedMs + REFRESH_POINTS[c.refreshStep]! * c.ttlMs + c.jitterMs;
  }

  /** A goodbye shortens what is cached; it never creates or lengthens anything. */
  private refresh<T extends Cached>(old: T, fresh: Cached): Cached {
    if (!fresh.goodbye) return fresh;
    this.stats.goodbyes++;
    return { ...fresh, expiresMs: Math.min(old.expiresMs, fresh.expiresMs) };
  }

  private takeToken(nowMs: number): boolean {
    if (this.tokensAtMs !== undefined) this.tokens = Math.min(this.burst, this.tokens + ((nowMs - this.tokensAtMs) / 1000) * this.perSecond);
    this.tokensAtMs = nowMs;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private onPtr(r: Extract<BrowseRecord, { kind: 'ptr' }>, nowMs: number, touched: Set<string>): void {
    const existing = this.instances.get(r.instance);
    const fresh = this.cached(r.ttl, nowMs);
    if (existing) {
      existing.ptr = this.refresh(existing.ptr, fresh);
      touched.add(r.instance);
      return;
    }
    if (fresh.goodbye) return; // nothing to say goodbye to
    if (this.instances.size >= this.maxServices && !this.evictIncomplete()) {
      this.stats.capDropped++;
      return;
    }
    if (!this.takeToken(nowMs)) {
      this.stats.rateLimited++;
      return;
    }
    this.instances.set(r.instance, {
      label: r.label,
      ptr: fresh,
      srv: undefined,
      txt: undefined,
      firstSeenMs: nowMs,
      resolveStep: 0,
      resolveAtMs: undefined,
      emitted: undefined,
      emittedKey: undefined,
    });
    touched.add(r.instance);
  }

  /** Make room by dropping the oldest instance that never resolved. */
  private evictIncomplete(): boolean {
    for (const [key, i] of this.instances) {
      if (!i.emitted) {
        this.dropInstance(key, i);
        this.stats.evicted++;
        return true;
      }
    }
    return false;
  }

  private onSrv(r: Extract<BrowseRecord, { kind: 'srv' }>, nowMs: number, touched: Set<string>): void {
    const i = this.instances.get(r.instance);
    if (!i) return; // only instances a PTR announced are kept
    const fresh = this.cached(r.ttl, nowMs);
    if (i.srv && i.srv.host === r.host && i.srv.port === r.port) {
      i.srv = { ...this.refresh(i.srv, fresh), host: r.host, port: r.port };
    } else if (!fresh.goodbye) {
      if (i.srv) this.unref(i.srv.host);
      i.srv = { ...fresh, host: r.host, port: r.port };
      this.ref(r.host);
    }
    touched.add(r.instance);
  }

  private onTxt(r: Extract<BrowseRecord, { kind: 'txt' }>, nowMs: number, touched: Set<string>): void {
    const i = this.instances.get(r.instance);
    if (!i) return;
    const fresh = this.cached(r.ttl, nowMs);
    if (fresh.goodbye) {
      if (i.txt) i.txt = { ...this.refresh(i.txt, fresh), fields: i.txt.fields };
    } else {
      const parsed = parseTxt(r.strings);
      if (typeof parsed === 'string') {
        // Refused once per distinct arrival; the instance stays unresolved (and is evicted first).
        this.stats.txtRefused[parsed] = (this.stats.txtRefused[parsed] ?? 0) + 1;
        i.txt = { ...fresh, fields: undefined };
      } else {
        i.txt = { ...fresh, fields: parsed };
      }
    }
    touched.add(r.instance);
  }

  private ref(host: string): void {
    if (!this.hosts.has(host)) this.hosts.set(host, new Map());
  }

  private unref(host: string): void {
    for (const i of this.instances.values()) if (i.srv?.host === host) return;
    this.hosts.delete(host);
  }

  private onAddress(r: Extract<BrowseRecord, { kind: 'addr' }>, from: Arrival, nowMs: number, touched: Set<string>): void {
    const addrs = this.hosts.get(r.host);
    if (!addrs) return; // no cached service points at this host
    const fresh = this.cached(r.ttl, nowMs);
    const existing = addrs.get(r.address);
    if (fresh.goodbye) {
      if (existing) addrs.set(r.address, { ...existing, ...this.refresh(existing, fresh) });
    } else {
      const candidate: ServiceAddress = { address: r.address, family: r.family, iface: from.iface };
      if (!this.accept(candidate)) {
        this.stats.addressesRefused++;
        return;
      }
      if (r.flush) {
        // §10.2: this host's other addresses of this family, received more than a second ago, are stale.
        for (const [addr, a] of addrs) {
          if (addr !== r.address && a.family === r.family && nowMs - a.receivedMs > GOODBYE_LINGER_MS) a.expiresMs = Math.min(a.expiresMs, nowMs + GOODBYE_LINGER_MS);
        }
      }
      addrs.delete(r.address);
      addrs.set(r.address, { ...fresh, ...candidate });
      while (addrs.size > this.maxAddresses) {
        addrs.delete(addrs.keys().next().value!);
        this.stats.addressesRefused++;
      }
    }
    for (const [key, i] of this.instances) if (i.srv?.host === r.host) touched.add(key);
  }

  private dropInstance(key: string, i: Instance): void {
    this.instances.delete(key);
    if (i.emitted) this.lostViews.set(key, i.emitted);
    if (i.srv) this.unref(i.srv.host);
  }

  private resolve(key: string, i: Instance): ResolvedService | undefined {
    if (!i.srv || !i.txt?.fields) return undefined;
    const fields = i.txt.fields;
    const addrs = [...(this.hosts.get(i.srv.host)?.values() ?? [])];
    const addresses: ServiceAddress[] = [];
    const urls: string[] = [];
    let expiresAtMs = Math.min(i.ptr.expiresMs, i.srv.expiresMs, i.txt.expiresMs);
    // IPv4 first, then IPv6; within a family the most recently received first.
    for (const a of addrs.sort((x, y) => x.family - y.family || y.receivedMs - x.receivedMs)) {
      const url = endpointUrl(a.address, a.family, i.srv.port, fields);
      if (url === undefined || urls.includes(url)) continue;
      urls.push(url);
      addresses.push({ address: a.address, family: a.family, iface: a.iface });
      expiresAtMs = Math.min(expiresAtMs, a.expiresMs);
    }
    if (urls.length === 0) return undefined;
    return {
      instance: i.label,
      fullName: key,
      nodeId: fields.nodeId,
      protocolVersions: fields.protocolVersions,
      publicKey: fields.publicKey,
      host: i.srv.host,
      port: i.srv.port,
      addresses,
      urls,
      expiresAtMs,
      firstSeenMs: i.firstSeenMs,
    };
  }

  private resolveTouched(touched: Set<string>, nowMs: number, lostReason: 'goodbye' | 'expired'): BrowseEvent[] {
    const events: BrowseEvent[] = [];
    for (const key of touched) {
      const i = this.instances.get(key);
      const view = i ? this.resolve(key, i) : undefined;
      if (!view) {
        const last = i?.emitted ?? this.lostViews.get(key);
        this.lostViews.delete(key);
        if (last) events.push({ type: 'lost', service: last, reason: lostReason });
        if (i) {
          i.emitted = undefined;
          i.emittedKey = undefined;
          if (i.resolveAtMs === undefined && i.resolveStep < RESOLVE_DELAYS_MS.length) i.resolveAtMs = nowMs + RESOLVE_DELAYS_MS[i.resolveStep]!;
        }
        continue;
      }
      i!.resolveStep = 0;
      i!.resolveAtMs = undefined;
      const viewKey = JSON.stringify([view.nodeId, view.port, view.urls, view.publicKey?.toString('hex'), view.protocolVersions]);
      if (viewKey !== i!.emittedKey) events.push({ type: i!.emitted ? 'updated' : 'found', service: view });
      i!.emitted = view;
      i!.emittedKey = viewKey;
    }
    return events;
  }

  /** Views of instances dropped whole (their PTR expired) until `resolveTouched` reports them lost. */
  private readonly lostViews = new Map<string, ResolvedService>();
}

/**
 * When to send the next continuous query for the service (RFC 6762 §5.2):
 * the first 20..120 ms after `start`, then after 1 s, 2 s, 4 s ... up to an
 * hour. `restart` (a new interface, a lookup) begins again, but never sooner
 * than a second after the last query: however often an application looks a
 * node up, the link sees at most one query a second.
 */
export class QuerySchedule {
  private intervalMs = FIRST_QUERY_INTERVAL_MS;
  private nextMs: number;
  private lastSentMs = -Infinity;

  constructor(nowMs: number, private readonly random: () => number = Math.random) {
    this.nextMs = nowMs + 20 + random() * 100;
  }

  /** When the next query is due, ms. */
  get dueMs(): number {
    return this.nextMs;
  }

  /** Call when a query was sent at `nowMs`: schedules the next one. */
  sent(nowMs: number): void {
    this.lastSentMs = nowMs;
    this.nextMs = nowMs + this.intervalMs;
    this.intervalMs = Math.min(this.intervalMs * 2, MAX_QUERY_INTERVAL_MS);
  }

  /** Begin again with a query in 20..120 ms (or a second after the last one). */
  restart(nowMs: number): void {
    this.intervalMs = FIRST_QUERY_INTERVAL_MS;
    this.nextMs = Math.max(this.lastSentMs + FIRST_QUERY_INTERVAL_MS, Math.min(this.nextMs, nowMs + 20 + this.random() * 100));
  }
}
