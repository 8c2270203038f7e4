/**
 * The mDNS / DNS-SD discovery source (issue 12; PROTOCOL.md §13.11): nodes on
 * one network find each other with no configuration, and ordinary tools see
 * them (`avahi-browse -rt _mcp-e2e._tcp`, `dns-sd -B _mcp-e2e._tcp`).
 *
 * - Advertising: `MdnsAdvertiser` (@homebridge/ciao: probing, conflict
 *   renaming, per-interface answers, known-answer suppression, jitter,
 *   goodbyes).
 * - Browsing: our own, on dns-packet and node:dgram (`MdnsSockets` +
 *   `BrowseCache`): continuous queries backing off 1 s, 2 s, 4 s ... to an
 *   hour, a capped TTL cache, goodbyes expiring in 1 s, parse errors dropped
 *   and counted, addresses dialled only on the network they were announced on.
 *
 * Everything found is a hint (`discovered`): a node id, the URLs it was
 * announced at, for how long. It proves nothing: a connection to it is pinned
 * to the node id (§13.7), and nothing here grants access.
 */
import { EventEmitter } from 'node:events';
import { hostname, networkInterfaces } from 'node:os';
import { isNodeId } from '../../identity/identity.js';
import type { PeerRecord } from '../record.js';
import type { DiscoveryContext, DiscoveryHint, DiscoverySource } from '../source.js';
import { MdnsAdvertiser } from './mdns-advertiser.js';
import { BrowseCache, QuerySchedule, type BrowseEvent, type BrowseStats, type ResolvedService } from './mdns-cache.js';
import { isDialableFrom } from './mdns-interfaces.js';
import { DEFAULT_INTERFACE_POLL_MS, MdnsSockets, type MdnsSocketStats } from './mdns-socket.js';
import { readPacket, encodeQuery, SERVICE_NAME, type QueryQuestion } from './mdns-wire.js';

/** The source's name in hints and in the registry. */
export const MDNS_SOURCE = 'mdns';
/** How long `publish` waits for the announcement (probing takes ~1 s) before it returns and lets it go on, ms. */
const PUBLISH_WAIT_MS = 10_000;
/** How long `lookup` waits for an answer when no signal ends it sooner, ms. */
export const DEFAULT_LOOKUP_TIMEOUT_MS = 3000;
/** Questions per query packet (a name is at most 255 bytes: 24 of them stay well under 9000 bytes, usually under 1500). */
const MAX_QUESTIONS_PER_QUERY = 24;

/** A node found on the network (a `DiscoveryHint` of issue 11's interface): where it says it can be reached, until when. Never trust. */
export interface MdnsHint extends DiscoveryHint {
  nodeId: string;
  /** `ws://` / `wss://` URLs, best first. */
  addresses: string[];
  /** How long the hint holds (the shortest TTL it rests on), ms. */
  ttlMs: number;
  /** The identity key, when the announcement carried one whose SHA-256 is `nodeId`. */
  publicKey?: Buffer | undefined;
  /** The instance name (human, may change on a rename; never identity). */
  name: string;
}

/** Everything the source counted: what was dropped is never dropped silently. */
export interface MdnsStats extends MdnsSocketStats, BrowseStats {
  /** Packets that did not decode as DNS. */
  parseErrors: number;
  /** Services cached now, and addresses. */
  services: number;
  addresses: number;
  /** Queries sent (each to every interface). */
  queries: number;
}

export interface MdnsSourceOptions {
  /** Interface names to use; default every up, multicast-capable interface (and loopback). */
  interfaces?: readonly string[] | undefined;
  /** Use IPv6 where an interface has it. Default true. */
  ipv6?: boolean | undefined;
  /** Browse for other nodes. Default true. */
  browse?: boolean | undefined;
  /** Dial addresses that are not on the network they were announced on. Default false. */
  allowOffLinkAddresses?: boolean | undefined;
  /** Most services cached. Default 256. */
  maxServices?: number | undefined;
  /** New services accepted at once, then per second. Defaults 32 and 4. */
  newServicesBurst?: number | undefined;
  newServicesPerSecond?: number | undefined;
  /** Longest TTL honoured, ms (see `BrowseCacheOptions.maxTtlMs`). Default two hours. */
  maxTtlMs?: number | undefined;
  /** How often interfaces are read again, ms. Default 3000. */
  interfacePollMs?: number | undefined;
  /** The human part of our instance name. Default the host name. */
  name?: string | undefined;
  /** The exact instance name to ask for (tests of conflicts). Default `<name>-<12 hex of id>`. */
  instanceName?: string | undefined;
  /** Expected network errors and renames, for the log. */
  onWarning?: ((message: string, fields: Record<string, unknown>) => void) | undefined;
}

/** What `publish` announces instead of what it takes from the record. */
export interface MdnsPublishOptions {
  /** The port the endpoint listens on. Default: the port of the record's first address. */
  port?: number | undefined;
  /** The HTTP path. Default: the path of the record's first address. */
  path?: string | undefined;
  /** Announce only these local addresses. Default: the local addresses the record states, or all when it states none. */
  addresses?: readonly string[] | undefined;
  /** Announce AAAA records. Default: when an announced address is IPv6 (all: true). */
  ipv6?: boolean | undefined;
}

export interface MdnsSourceEvents {
  hint: [MdnsHint];
  /** A service is gone: a goodbye, or its TTL ran out. */
  expired: [{ nodeId: string; name: string; reason: 'goodbye' | 'expired' }];
  /** Every change of the browse cache, as it happened. */
  service: [BrowseEvent];
  /** Our instance was renamed after a conflict. */
  renamed: [string];
}

const toHint = (s: ResolvedService, nowMs: number): MdnsHint => ({
  nodeId: s.nodeId,
  addresses: [...s.urls],
  ttlMs: Math.max(0, s.expiresAtMs - nowMs),
  publicKey: s.publicKey,
  name: s.instance,
});

/**
 * The mDNS source (a `DiscoverySource`, issue 11). Under a mesh node, what
 * it finds goes to the node as hints (our own node id left out); on its own
 * (`start()` without a context: `discover`, tests) it only raises its events:
 * `hint`, `expired`, `service`, `renamed`. `start` and `stop` are safe to
 * repeat; nothing it receives can make it throw.
 */
export class MdnsSource extends EventEmitter<MdnsSourceEvents> implements DiscoverySource {
  readonly name = MDNS_SOURCE;
  private context: DiscoveryContext | undefined;
  private readonly options: MdnsSourceOptions;
  private readonly sockets: MdnsSockets;
  private readonly cache: BrowseCache;
  private readonly advertiser: MdnsAdvertiser;
  private schedule: QuerySchedule | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private parseErrors = 0;
  private queries = 0;
  private publishedNodeId: string | undefined;

  constructor(options: MdnsSourceOptions = {}) {
    super();
    this.options = options;
    this.sockets = new MdnsSockets({
      interfaces: options.interfaces,
      ipv6: options.ipv6,
      interfacePollMs: options.interfacePollMs ?? DEFAULT_INTERFACE_POLL_MS,
      onPacket: (bytes, from) => this.onPacket(bytes, from.iface),
      watchOnly: options.browse === false,
      onInterfacesAdded: () => this.requery(),
      onInterfacesChanged: (names) => this.advertiser.setInterfaces(names),
      onError: (err, iface) => this.warn(`mDNS on ${iface}: ${err.code ?? err.message}`, { iface, code: err.code }),
    });
    this.cache = new BrowseCache({
      maxServices: options.maxServices,
      newServicesBurst: options.newServicesBurst,
      newServicesPerSecond: options.newServicesPerSecond,
      maxTtlMs: options.maxTtlMs,
      ownNodeId: () => this.context?.nodeId ?? this.publishedNodeId,
      acceptAddress: (a) => isDialableFrom(a.address, a.family, a.iface, this.sockets.current, options.allowOffLinkAddresses),
    });
    this.advertiser = new MdnsAdvertiser({
      ipv6: options.ipv6,
      onRename: (instance) => {
        this.warn(`mDNS name conflict: announced as "${instance}"`, { instance });
        this.emit('renamed', instance);
      },
    });
  }

  /** Open the sockets and begin browsing; with a mesh node's `context`, hand what is found to it. */
  async start(context?: DiscoveryContext): Promise<void> {
    if (context) this.context = context;
    if (this.running) return;
    this.running = true;
    await this.sockets.start();
    if (this.options.browse === false) return;
    this.schedule = new QuerySchedule(Date.now());
    this.arm();
  }

  /** Withdraw our announcement (goodbyes) and close everything. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    clearTimeout(this.timer);
    this.sockets.close();
    await this.advertiser.stop();
    this.context = undefined;
  }

  private warn(message: string, fields: Record<string, unknown>): void {
    this.options.onWarning?.(message, fields);
    this.context?.log('debug', message, fields);
  }

  /** The services that can be dialled now. */
  services(): ResolvedService[] {
    return this.cache.services();
  }

  /** The instance name we announce (after any rename), if any. */
  get instanceName(): string | undefined {
    return this.advertiser.instanceName;
  }

  stats(): MdnsStats {
    return { ...this.sockets.stats, ...this.cache.stats, parseErrors: this.parseErrors, services: this.cache.size, addresses: this.cache.addressCount, queries: this.queries };
  }

  /**
   * Announce our record's node on the network: its node id, identity key and
   * protocol versions, and the port and path of its first address. Only the
   * local addresses the record states (with that port) are announced: a
   * record of a listener on 127.0.0.1 is announced on loopback alone, one of
   * a wildcard listener with every address it lists; a record with none of
   * ours (public URLs behind a proxy) on every interface. `options` overrides
   * each of these. Replaces an earlier announcement (one that says the same,
   * as a refreshed record does, is left as it is); starts the source if it is
   * not running. Resolves once announced (probed): `instanceName` is then the
   * name in use.
   * @throws RangeError when there is no port to announce.
   */
  async publish(record: PeerRecord, options: MdnsPublishOptions = {}): Promise<void> {
    await this.start();
    const urls = record.addresses.map((u) => new URL(u));
    const portOf = (u: URL) => Number(u.port || (u.protocol === 'wss:' ? 443 : 80));
    const first = urls[0];
    const port = options.port ?? (first ? portOf(first) : undefined);
    if (port === undefined) throw new RangeError('mDNS publish: no port (the record has no address, and none was given)');
    const path = options.path ?? (first && first.pathname !== '/' ? first.pathname : undefined);
    const local = new Set(Object.values(networkInterfaces()).flatMap((l) => (l ?? []).map((i) => i.address.replace(/%.*$/, '').toLowerCase())));
    const stated = urls.filter((u) => portOf(u) === port).map((u) => u.hostname.replace(/^\[|\]$/g, '')).filter((h) => local.has(h));
    const addresses = options.addresses ?? (stated.length > 0 ? stated : undefined);
    this.publishedNodeId = record.nodeId;
    const announced = this.advertiser.announce({
      nodeId: record.nodeId,
      publicKey: record.publicKey,
      protocolVersions: [...record.protocolVersions],
      port,
      path,
      scheme: first?.protocol === 'wss:' ? 'wss' : 'ws',
      name: this.options.name ?? record.name ?? hostname(),
      instanceName: this.options.instanceName,
      addresses,
      ipv6: options.ipv6 ?? (addresses ? addresses.some((a) => a.includes(':')) : true),
    });
    // Probing takes about a second; a node must not hang in start() if it takes far longer (it goes on in the background).
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), PUBLISH_WAIT_MS);
      timer.unref();
    });
    const outcome = await Promise.race([announced.then(() => 'done' as const), late]).finally(() => clearTimeout(timer));
    if (outcome === 'late') {
      this.warn(`mDNS: not announced within ${PUBLISH_WAIT_MS} ms; still trying`, {});
      announced.catch((err: Error) => this.warn(`mDNS announcement failed: ${err.message}`, {}));
    }
  }

  /**
   * The services announcing `nodeId` (each a hint: one node id may be
   * claimed by several), at once if cached, else as soon as one answers a
   * new query, or none when `signal` aborts or `timeoutMs` (default 3000)
   * passes. Never rejects on network errors.
   * @throws TypeError for a malformed node id.
   */
  async lookup(nodeId: string, signal?: AbortSignal, timeoutMs = DEFAULT_LOOKUP_TIMEOUT_MS): Promise<MdnsHint[]> {
    if (!isNodeId(nodeId)) throw new TypeError('"nodeId" expected 64 lowercase hex digits');
    const matching = () => this.cache.services().filter((s) => s.nodeId === nodeId).map((s) => toHint(s, Date.now()));
    const cached = matching();
    if (cached.length > 0 || !this.running || this.options.browse === false || signal?.aborted) return cached;
    this.requery();
    return new Promise<MdnsHint[]>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.off('service', onService);
        signal?.removeEventListener('abort', done);
        resolve(matching());
      };
      const onService = (e: BrowseEvent) => {
        if (e.type !== 'lost' && e.service.nodeId === nodeId) done();
      };
      const timer = setTimeout(done, timeoutMs);
      this.on('service', onService);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  /** Query again soon (a new interface, a lookup): the backoff starts over. */
  requery(): void {
    if (!this.running || !this.schedule) return;
    this.schedule.restart(Date.now());
    this.arm();
  }

  private onPacket(bytes: Buffer, iface: string | undefined): void {
    const records = readPacket(bytes);
    if (!records) {
      this.parseErrors++;
      return;
    }
    this.publishEvents(this.cache.handle(records, { iface }, Date.now()));
    this.arm();
  }

  private publishEvents(events: BrowseEvent[]): void {
    const now = Date.now();
    for (const e of events) {
      this.emit('service', e);
      if (e.type === 'lost') {
        this.emit('expired', { nodeId: e.service.nodeId, name: e.service.instance, reason: e.reason });
        continue;
      }
      const hint = toHint(e.service, now);
      this.emit('hint', hint);
      // The node checks and stores it (a hint of `discovered`, never more); our own announcement is no news.
      if (this.context && hint.nodeId !== this.context.nodeId) this.context.emit({ nodeId: hint.nodeId, addresses: hint.addresses, ttlMs: hint.ttlMs });
    }
  }

  /** One timer for everything that is due next: the continuous query, refreshes, expiries. */
  private arm(): void {
    if (!this.running || !this.schedule) return;
    clearTimeout(this.timer);
    const next = Math.min(this.schedule.dueMs, this.cache.nextDeadlineMs() ?? Infinity);
    this.timer = setTimeout(() => this.tick(), Math.max(0, next - Date.now()));
    this.timer.unref();
  }

  private tick(): void {
    if (!this.running || !this.schedule) return;
    const now = Date.now();
    this.publishEvents(this.cache.expire(now));
    const questions: QueryQuestion[] = this.cache.dueRefreshes(now);
    const ptrDue = now >= this.schedule.dueMs;
    if (ptrDue) {
      this.schedule.sent(now);
      if (!questions.some((q) => q.type === 'PTR')) questions.unshift({ name: SERVICE_NAME, type: 'PTR' });
    }
    // Known answers go with the query for the service (§7.1; an expiring PTR is left out by the half-TTL rule);
    // many refreshes at once are split so that every packet stays small.
    for (let i = 0; i < questions.length; i += MAX_QUESTIONS_PER_QUERY) {
      const part = questions.slice(i, i + MAX_QUESTIONS_PER_QUERY);
      this.queries++;
      this.sockets.send(encodeQuery(part, part.some((q) => q.type === 'PTR') ? this.cache.knownAnswers(now) : []));
    }
    this.arm();
  }
}

/**
 * What the network offers now, like `avahi-browse -t`: browse for
 * `timeoutMs` (queries at ~0, 1 and 2 s fit in the default 3000 ms), then
 * stop. Announces nothing.
 */
export async function browseOnce(timeoutMs = 3000, options: Omit<MdnsSourceOptions, 'browse'> = {}): Promise<ResolvedService[]> {
  const source = new MdnsSource({ ...options, browse: true });
  await source.start();
  try {
    await new Promise((resolve) => setTimeout(resolve, timeoutMs));
    return source.services();
  } finally {
    await source.stop();
  }
}
