/**
 * The mesh node: one object that combines an identity, an optional server,
 * the peer registry and the discovery sources (PROTOCOL.md §13).
 *
 * - `start()` listens (when a server is configured), publishes our signed
 *   record (and refreshes it at half its lifetime) and starts the sources.
 * - Every encrypted session, incoming or outgoing, marks its peer `verified`
 *   in the registry and carries both nodes' own records on the control
 *   channel (§13.6), so both learn each other's addresses.
 * - `connect(nodeId)` dials the registry's addresses for that node id, most
 *   recently successful first, then asks the sources' lookups in parallel,
 *   and pins every handshake to the node id (§13.7): an address that leads
 *   elsewhere fails with `ERR_PEER_KEY_CHANGED` and is never used.
 * - Events: `peer:discovered`, `peer:updated`, `peer:verified`,
 *   `peer:expired`, `record:refused`, `session`.
 *
 * Discovery never grants access: who may call MCP tools stays the server's
 * trust policy (the allowlist). A `blocked` node id is refused as a peer,
 * never dialled, and its records are dropped.
 */
import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import { McpE2eError, isMcpE2eError, type ErrorCode } from '../errors.js';
import { resolvePeerName } from '../identity/names.js';
import { fingerprintOf, normalizeNodeId, type NodeIdentity, type PeerIdentity } from '../identity/identity.js';
import type { PeerAllowList, TrustPolicy } from '../identity/trust.js';
import { PROTOCOL_VERSION, SUPPORTED_VERSIONS } from '../protocol.js';
import { EncryptedWebSocketClientTransport, type EncryptedWebSocketClientTransportOptions } from '../transport/client.js';
import { EncryptedWebSocketServer, type EncryptedWebSocketServerOptions } from '../transport/server.js';
import { createPeerRecord, decodePeerRecord, encodePeerRecordBody, DEFAULT_RECORD_LIFETIME_MS, MAX_RECORD_LIFETIME_MS, recordBytesFromHex, verifyPeerRecord, type PeerRecord, type RecordService } from '../discovery/record.js';
import { PeerRegistry, type PeerInfo, type PeerRegistryOptions, type PeerSource, type RegistryOutcome } from '../discovery/registry.js';
import type { DiscoveryContext, DiscoveryHint, DiscoverySource, EmitResult, LogLevel, PeerEvent } from '../discovery/source.js';
import { MdnsSource, type MdnsSourceOptions } from '../discovery/sources/mdns.js';
import { TokenBucket } from '../util/rate.js';
import { createLeavingRecord } from '../discovery/gossip/leaving.js';
import { listeningUrls } from './addresses.js';
import { MeshSession, type ControlMessage, type MeshTransport } from './session.js';

/** `type` of the control message that carries a node's own record (§13.6). */
export const PEER_RECORD_MESSAGE = 'peer_record';
/** Records a session peer may send at once, and one more per interval after (§13.6). */
export const SESSION_RECORD_BURST = 4;
export const SESSION_RECORD_INTERVAL_MS = 10_000;
/** Default time for all lookups of one `connect`, ms. */
export const DEFAULT_LOOKUP_TIMEOUT_MS = 5_000;
/** How often expiries are checked for `peer:expired` and the registry file is looked at for other processes' changes, ms. */
export const DEFAULT_EXPIRY_CHECK_MS = 5_000;

/** What `announce` states in our record. */
export interface AnnounceOptions {
  /** A short human name (never identity). */
  name?: string;
  /** What we serve (e.g. the wrapped MCP server's name and version). */
  service?: RecordService;
  /** The URLs to announce instead of the listening ones (behind a proxy or NAT). */
  publicUrls?: string[];
  /** Lifetime of each record, ms. Default one hour; at most one day. */
  lifetimeMs?: number;
  /** Make a new record this often, ms. Default half the lifetime. */
  refreshMs?: number;
  /** Protocol versions to state. Default [PROTOCOL_VERSION]. */
  protocolVersions?: number[];
  /** On `stop()`, publish a leaving record so that the mesh forgets us at once (PROTOCOL.md §14.7). Default true. */
  leaveOnStop?: boolean;
}

/**
 * The server of a mesh node: the options of `EncryptedWebSocketServer` (the
 * identity is the node's), and where to listen. `onConnection` must start
 * the transport (connect it to an MCP server, or call `transport.start()`):
 * until then nothing of the session is read, records and gossip included.
 */
export type MeshServerOptions = Omit<EncryptedWebSocketServerOptions, 'identity'> & {
  /** TCP port; 0 picks one. Default 0. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
};

/** Options of `MeshNode`. */
export interface MeshNodeOptions {
  identity: NodeIdentity;
  /** The registry, or options to make one (ours: `selfNodeId` and `isTrusted` filled in). Default: in memory. */
  registry?: PeerRegistry | PeerRegistryOptions;
  /** The allowlist: decides `trusted` and gives names (labels). Default: the server's, if it has one. */
  allowList?: PeerAllowList;
  /** Discovery sources. Default none. */
  sources?: DiscoverySource[];
  /**
   * Find and announce nodes on the local network with mDNS / DNS-SD
   * (PROTOCOL.md §13.11): `true`, or the options of `MdnsSource`. Default
   * off: a library does not multicast unasked (the CLI turns it on).
   * Announcing follows `announce`.
   */
  mdns?: boolean | MdnsSourceOptions;
  /** Accept connections. Default: none (a node that only dials). */
  server?: MeshServerOptions;
  /** Publish our record to the sources and on sessions. Default: not (a node that publishes nothing still sends a valid record of ours found in the registry). */
  announce?: AnnounceOptions | boolean;
  /** Options for the transports `connect` makes (limits, signatures, framings). */
  client?: Omit<EncryptedWebSocketClientTransportOptions, 'identity' | 'expectedPeer' | 'trust' | 'allowAnyPeer' | 'enableEncryption'>;
  /** Default `DEFAULT_LOOKUP_TIMEOUT_MS`. */
  lookupTimeoutMs?: number;
  /** Default `DEFAULT_EXPIRY_CHECK_MS`. */
  expiryCheckMs?: number;
  /** Where the node's messages go. Default: nowhere. */
  log?: (level: LogLevel, message: string, fields?: Record<string, unknown>) => void;
}

/** Options of one `connect`. */
export interface MeshConnectOptions {
  /**
   * Start one attempt's transport. Default `(t) => t.start()`. With the MCP
   * SDK: `start: async (t) => { client = new Client(info); await client.connect(t); }`
   * (a fresh client per attempt).
   */
  start?: (transport: EncryptedWebSocketClientTransport) => Promise<void>;
  /** Abort the whole attempt. */
  signal?: AbortSignal;
  /** Default the node's `lookupTimeoutMs`. */
  lookupTimeoutMs?: number;
}

/** One failed address of a `connect`. */
export interface DialAttempt {
  url: string;
  code: ErrorCode;
  message: string;
}

/** The events of a mesh node. */
export interface MeshEvents {
  'peer:discovered': [PeerEvent];
  'peer:updated': [PeerEvent];
  'peer:verified': [PeerEvent];
  'peer:expired': [PeerEvent];
  'record:refused': [{ code: ErrorCode; message: string; source: PeerSource; nodeId?: string | undefined }];
  session: [MeshSession];
}

/** Codes that say "this address leads to someone else, or someone is in the way": they name a failed connect first. */
const AUTH_FAILURES = (code: ErrorCode) => code === 'ERR_PEER_KEY_CHANGED' || code === 'ERR_PEER_REJECTED' || (code.startsWith('ERR_HANDSHAKE_') && code !== 'ERR_HANDSHAKE_TIMEOUT');

export class MeshNode extends EventEmitter<MeshEvents> {
  readonly identity: NodeIdentity;
  readonly registry: PeerRegistry;
  readonly #ownsRegistry: boolean;
  readonly #sources: DiscoverySource[];
  readonly #options: MeshNodeOptions;
  readonly #announce: AnnounceOptions | undefined;
  readonly #log: NonNullable<MeshNodeOptions['log']>;
  #server: EncryptedWebSocketServer | undefined;
  #address: AddressInfo | undefined;
  #record: PeerRecord | undefined;
  #state: 'new' | 'starting' | 'started' | 'stopped' = 'new';
  #abort = new AbortController();
  #refreshTimer: NodeJS.Timeout | undefined;
  #expiryTimer: NodeJS.Timeout | undefined;
  #lastExpiryCheck = 0;
  readonly #sessions = new Set<MeshSession>();

  /**
   * @throws TypeError / RangeError for bad options (as the server, the
   *   registry and `createPeerRecord` would throw them).
   */
  constructor(options: MeshNodeOptions) {
    super();
    this.identity = options.identity;
    this.#options = options;
    this.#log = options.log ?? (() => {});
    this.#sources = [...(options.sources ?? [])];
    if (options.mdns) this.#sources.push(new MdnsSource(options.mdns === true ? {} : options.mdns));
    const names = this.#sources.map((s) => s.name);
    if (new Set(names).size !== names.length) throw new TypeError('"sources" expected distinct source names');
    const server = options.server;
    if (server?.allowAnyPeer && (server.allowedPeers !== undefined || server.trust !== undefined)) {
      throw new TypeError('"allowAnyPeer" contradicts "allowedPeers"/"trust"; give one or the other');
    }
    if (server && !server.allowAnyPeer && server.allowedPeers === undefined && server.trust === undefined) {
      throw new TypeError('refusing to accept unauthorised clients: give "allowedPeers", "trust", or "allowAnyPeer: true"');
    }
    if (options.registry instanceof PeerRegistry) {
      this.registry = options.registry;
      this.#ownsRegistry = false;
    } else {
      this.registry = new PeerRegistry({ selfNodeId: this.identity.nodeId, isTrusted: (id: string) => this.allowList?.has(id) ?? false, ...options.registry });
      this.#ownsRegistry = true;
    }
    this.#announce = options.announce === true ? {} : options.announce === false ? undefined : options.announce;
    const lifetime = this.#announce?.lifetimeMs ?? DEFAULT_RECORD_LIFETIME_MS;
    if (this.#announce) {
      if (!Number.isInteger(lifetime) || lifetime < 1000 || lifetime > MAX_RECORD_LIFETIME_MS) throw new RangeError(`"announce.lifetimeMs" expected 1,000..${MAX_RECORD_LIFETIME_MS}`);
      // A mistake in what we would announce is the caller's, now, not a failure at the first refresh.
      const a = this.#announce;
      encodePeerRecordBody(this.identity.publicKey, { seq: 0, issuedAtMs: 0, expiresAtMs: lifetime, addresses: a.publicUrls ?? [], protocolVersions: a.protocolVersions ?? [PROTOCOL_VERSION], name: a.name, service: a.service });
    }
  }

  /** The allowlist: the one given, else the server's (once started). */
  get allowList(): PeerAllowList | undefined {
    return this.#options.allowList ?? this.#server?.allowList;
  }

  /** The server, once started (when configured). */
  get server(): EncryptedWebSocketServer | undefined {
    return this.#server;
  }

  /** Where the server listens, once started. */
  get address(): AddressInfo | undefined {
    return this.#address;
  }

  /** Our record as we send it: the one we publish, or a valid one of ours in the registry (written by another process of this home). */
  get record(): PeerRecord | undefined {
    if (this.#record) return this.#record;
    const mine = this.registry.get(this.identity.nodeId)?.record;
    return mine && !mine.isExpired(Date.now()) ? mine : undefined;
  }

  /** Open encrypted sessions (incoming, and outgoing ones made by `connect`). */
  get sessions(): MeshSession[] {
    return [...this.#sessions];
  }

  /**
   * Listen (when configured), publish our record, start the sources.
   * @throws Error when called twice; whatever `listen` or a source's `start` throws (the node is then stopped).
   */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new Error('MeshNode already started');
    this.#state = 'starting';
    try {
      if (this.#options.server) await this.#listen(this.#options.server);
      if (this.#announce) this.#makeRecord();
      const context = this.#context();
      for (const source of this.#sources) {
        await source.start(context(source));
        if (this.#record) await this.#publishTo(source, this.#record);
      }
      this.#lastExpiryCheck = Date.now();
      this.#expiryTimer = setInterval(() => this.#checkExpiries(), this.#options.expiryCheckMs ?? DEFAULT_EXPIRY_CHECK_MS);
      this.#expiryTimer.unref();
      this.#state = 'started';
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Stop the sources, the timers and the server (closing its sessions); write the registry. Idempotent. */
  async stop(): Promise<void> {
    if (this.#state === 'stopped') return;
    const wasStarted = this.#state === 'started';
    this.#state = 'stopped';
    if (wasStarted && this.#announce && this.#record && (this.#announce.leaveOnStop ?? true)) await this.#leave(this.#record);
    this.#abort.abort();
    clearTimeout(this.#refreshTimer);
    clearInterval(this.#expiryTimer);
    for (const source of this.#sources) {
      try {
        await source.stop();
      } catch (err) {
        this.#log('warn', `discovery source ${source.name} failed to stop: ${(err as Error).message}`);
      }
    }
    await this.#server?.close();
    try {
      if (this.#ownsRegistry) this.registry.close();
      else this.registry.flush();
    } catch (err) {
      this.#log('warn', `peer registry not written: ${(err as Error).message}`, isMcpE2eError(err) ? { code: err.code } : {});
    }
  }

  /** Everything the registry knows, most recently seen first. */
  peers(): PeerInfo[] {
    return this.registry.list();
  }

  /**
   * A node id for `target` (src/identity/names.ts): a node id as typed (any
   * case, spaces trimmed), a name given here (a label on the allowlist), or
   * the fingerprint of an allowed node. The name a node gives itself in its
   * record is a claim: the message mentions who claims it, nothing follows it.
   * @throws McpE2eError `ERR_PEER_NOT_FOUND` (no such peer here, or several).
   */
  resolve(target: string): string {
    const claims = this.registry.list().flatMap((p) => (p.name !== undefined ? [{ nodeId: p.nodeId, name: p.name }] : []));
    return resolvePeerName(target, { allowed: this.allowList?.entries() ?? [], claims });
  }

  /**
   * Hand a record or hints to the node by hand (source `manual`), as a
   * discovery source would.
   */
  add(hint: DiscoveryHint, source: PeerSource = 'manual'): EmitResult {
    return this.#emit(hint, source);
  }

  /**
   * Block or unblock a node id (a person's act). Blocking closes its open sessions.
   */
  setBlocked(nodeId: string, blocked: boolean): void {
    this.registry.setBlocked(nodeId, blocked);
    if (blocked) this.#closeBlocked();
  }

  /**
   * Connect to `nodeId`, pinned to it (§13.7): the registry's addresses in
   * order, then the sources' lookups in parallel, one address at a time.
   * Resolves with the first transport whose `start` resolved.
   * @throws McpE2eError `ERR_INVALID_NODE_ID`; `ERR_PEER_BLOCKED`;
   *   `ERR_PEER_NOT_FOUND` when no address was known or found; otherwise the
   *   code of the first address that led to another or a refusing node
   *   (`ERR_PEER_KEY_CHANGED`, `ERR_HANDSHAKE_*`, `ERR_PEER_REJECTED`), else
   *   of the last attempt. The message lists every address tried and why it
   *   failed; `cause` is an AggregateError of the attempts' errors.
   */
  async connect(nodeId: string, options: MeshConnectOptions = {}): Promise<EncryptedWebSocketClientTransport> {
    const id = normalizeNodeId(nodeId);
    if (!id) throw new McpE2eError('ERR_INVALID_NODE_ID', `not a node id (64 hex digits): ${JSON.stringify(String(nodeId).slice(0, 80))}`);
    if (this.registry.isBlocked(id)) throw new McpE2eError('ERR_PEER_BLOCKED', `node ${fingerprintOf(id)} is blocked (mcp-e2e peers unblock ${id})`);
    const start = options.start ?? ((t: EncryptedWebSocketClientTransport) => t.start());
    const attempts: DialAttempt[] = [];
    const errors: unknown[] = [];
    const tried = new Set<string>();
    const signal = options.signal;
    const aborted = () => signal?.reason ?? new McpE2eError('ERR_CONNECTION_CLOSED', 'connect aborted');

    /** Dial every untried address the registry has now, one at a time; undefined when none works (or when aborted). */
    const tryAll = async (): Promise<EncryptedWebSocketClientTransport | undefined> => {
      for (;;) {
        if (signal?.aborted) return undefined;
        const url = this.registry.dialAddresses(id).find((u) => !tried.has(u));
        if (url === undefined) return undefined;
        tried.add(url);
        const t = await this.#dial(id, url, start, (err) => {
          const e = err instanceof McpE2eError ? err : new McpE2eError('ERR_CONNECT_FAILED', (err as Error)?.message ?? String(err), { cause: err });
          attempts.push({ url, code: e.code, message: e.message });
          errors.push(err);
        });
        if (t) return t;
      }
    };

    let found = await tryAll();
    const lookups = this.#sources.filter((s) => typeof s.lookup === 'function');
    if (!found && lookups.length > 0 && !signal?.aborted) found = await this.#lookUp(id, lookups, tryAll, signal, options.lookupTimeoutMs ?? this.#options.lookupTimeoutMs ?? DEFAULT_LOOKUP_TIMEOUT_MS);
    if (found) {
      if (!signal?.aborted) return found;
      await found.close();
    }
    if (signal?.aborted) throw aborted();
    const fp = fingerprintOf(id);
    if (attempts.length === 0) {
      throw new McpE2eError('ERR_PEER_NOT_FOUND', `no address known for node ${fp} (${id})${lookups.length ? ' and none found by discovery' : ''}; add its record or an address (mcp-e2e peers add)`);
    }
    const code = (attempts.find((a) => AUTH_FAILURES(a.code)) ?? attempts.at(-1)!).code;
    const list = attempts.map((a) => `${a.url} (${a.code}: ${a.message})`).join('; ');
    // A node of another protocol version answers without our subprotocol: say so when its record told us.
    const theirs = this.registry.get(id)?.record?.protocolVersions;
    const versions = theirs && !theirs.some((v) => SUPPORTED_VERSIONS.includes(v)) ? `; its record says it speaks protocol version ${theirs.join(', ')}, this node ${SUPPORTED_VERSIONS.join(', ')}` : '';
    throw new McpE2eError(code, `cannot connect to node ${fp}: tried ${list}${versions}`, { cause: new AggregateError(errors, 'every address failed') });
  }

  // -------------------------------------------------------------------------------------------

  /**
   * Ask every source's lookup for `nodeId` at once; dial what each answer
   * adds, as it comes, one address at a time (`tryAll` is chained). Ends at
   * the first working transport, when every lookup has answered and been
   * tried, or at the timeout (lookups are aborted then; what they still
   * deliver later is stored but not dialled).
   */
  #lookUp(
    nodeId: string,
    lookups: DiscoverySource[],
    tryAll: () => Promise<EncryptedWebSocketClientTransport | undefined>,
    signal: AbortSignal | undefined,
    timeoutMs: number,
  ): Promise<EncryptedWebSocketClientTransport | undefined> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new McpE2eError('ERR_HANDSHAKE_TIMEOUT', `lookups gave no working address within ${timeoutMs} ms`)), timeoutMs);
    const onAbort = () => controller.abort(signal!.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    let chain: Promise<EncryptedWebSocketClientTransport | undefined> = Promise.resolve(undefined);
    const dialNew = () =>
      (chain = chain
        .then((t) => t ?? (controller.signal.aborted ? undefined : tryAll()))
        .catch((err: Error) => {
          this.#log('warn', `connect: ${err.message}`);
          return undefined;
        }));
    return new Promise<EncryptedWebSocketClientTransport | undefined>((resolve) => {
      let pending = lookups.length;
      const finish = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        void chain.then(resolve);
      };
      controller.signal.addEventListener('abort', finish, { once: true });
      for (const source of lookups) {
        void (async () => {
          let hints: DiscoveryHint[] = [];
          try {
            const answer = await source.lookup!(nodeId, controller.signal);
            if (Array.isArray(answer)) hints = answer.slice(0, 16);
          } catch (err) {
            if (!controller.signal.aborted) this.#log('debug', `lookup by ${source.name} failed: ${(err as Error)?.message ?? String(err)}`);
          }
          for (const hint of hints) this.#emit(hint, source.name, nodeId);
          if (controller.signal.aborted) return;
          const t = await dialNew();
          if (t) controller.abort();
          else if (--pending === 0) finish();
        })();
      }
    });
  }

  /** One address: a transport pinned to `nodeId`, started; undefined (and `failed` called) when it fails. */
  async #dial(nodeId: string, url: string, start: (t: EncryptedWebSocketClientTransport) => Promise<void>, failed: (err: unknown) => void): Promise<EncryptedWebSocketClientTransport | undefined> {
    let t: EncryptedWebSocketClientTransport;
    try {
      t = new EncryptedWebSocketClientTransport(url, { ...this.#options.client, identity: this.identity, expectedPeer: nodeId });
    } catch (err) {
      failed(new McpE2eError('ERR_CONNECT_FAILED', `not a usable address: ${(err as Error).message}`, { cause: err }));
      this.registry.noteFailure(nodeId, url, 'ERR_CONNECT_FAILED');
      return undefined;
    }
    // Before start: the peer's record may arrive in the same read as the handshake's end.
    const session = this.#wrap(t, { direction: 'outgoing', url });
    try {
      await start(t);
      if (!t.peer || t.closed) throw new McpE2eError('ERR_CONNECTION_CLOSED', 'the connection closed as it opened');
    } catch (err) {
      await t.close().catch(() => {});
      failed(err);
      this.registry.noteFailure(nodeId, url, isMcpE2eError(err) ? err.code : 'ERR_CONNECT_FAILED');
      return undefined;
    }
    this.#opened(session, t.peer, { direction: 'outgoing', url });
    return t;
  }

  #wrap(transport: MeshTransport, info: { direction: 'incoming' | 'outgoing'; url?: string; remoteAddress?: string }): MeshSession {
    const session = new MeshSession(transport, info, (err) => this.#log('warn', `control message handler failed: ${err.message}`));
    session.handle(PEER_RECORD_MESSAGE, this.#recordHandler());
    return session;
  }

  /** A session is established with `peer`: registry, events, our record, the sources. */
  #opened(session: MeshSession, peer: PeerIdentity, info: { direction: 'incoming' | 'outgoing'; url?: string }): void {
    const noted = this.registry.noteHandshake(peer, info);
    if (noted.created) this.#event('peer:discovered', peer.nodeId, info.direction);
    if (noted.verified) this.#event('peer:verified', peer.nodeId, info.direction);
    this.#sessions.add(session);
    void session.done.then(() => this.#sessions.delete(session));
    const record = this.record;
    if (record) this.#sendRecord(session, record);
    for (const source of this.#sources) {
      try {
        source.onSession?.(session);
      } catch (err) {
        this.#log('warn', `discovery source ${source.name} failed on a session: ${(err as Error).message}`);
      }
    }
    this.emit('session', session);
  }

  #sendRecord(session: MeshSession, record: PeerRecord): void {
    session.send({ type: PEER_RECORD_MESSAGE, record: record.toHex() }).catch((err: Error) => this.#log('debug', `record not sent: ${err.message}`));
  }

  /** The handler of §13.6 for one session: rate-limited, verified, the session peer's own record only. */
  #recordHandler(): (message: ControlMessage, session: MeshSession) => void {
    let bucket: TokenBucket | undefined;
    let dropped = 0;
    return (message, session) => {
      const now = Date.now();
      bucket ??= new TokenBucket(SESSION_RECORD_BURST, SESSION_RECORD_INTERVAL_MS, now);
      if (!bucket.take(now)) {
        // Reported once per burst of excess, not once per message.
        if (dropped++ === 0) this.#log('warn', `peer ${session.peer.fingerprint} sends records faster than one per ${SESSION_RECORD_INTERVAL_MS} ms; dropping them`);
        return;
      }
      dropped = 0;
      let record: PeerRecord;
      try {
        if (Object.keys(message).length !== 2) throw new McpE2eError('ERR_RECORD_MALFORMED', 'peer record refused: a peer_record message has exactly "type" and "record"');
        record = verifyPeerRecord(recordBytesFromHex(message.record), { nowMs: now });
        if (record.nodeId !== session.peer.nodeId) {
          throw new McpE2eError('ERR_RECORD_WRONG_PEER', `peer record refused: ${session.peer.fingerprint} sent the record of ${fingerprintOf(record.nodeId)} as its own`);
        }
      } catch (err) {
        const e = err instanceof McpE2eError ? err : new McpE2eError('ERR_RECORD_MALFORMED', String(err));
        this.#refused({ accepted: false, code: e.code, message: e.message, nodeId: session.peer.nodeId }, 'session');
        return;
      }
      this.#outcome(this.registry.addRecord(record, 'session'), 'session');
    };
  }

  /** Record a registry outcome: events for changes, `record:refused` for refusals (replays are not news). */
  #outcome(o: RegistryOutcome, source: PeerSource): RegistryOutcome {
    if (o.accepted) {
      if (o.change === 'new') this.#event('peer:discovered', o.nodeId, source);
      else if (o.change === 'updated') this.#event('peer:updated', o.nodeId, source);
    } else if (o.code !== 'ERR_RECORD_REPLAYED') this.#refused(o, source);
    return o;
  }

  #refused(o: Extract<RegistryOutcome, { accepted: false }>, source: PeerSource): void {
    this.#log('debug', `${source}: ${o.message}`, { code: o.code, ...(o.nodeId ? { node_id: o.nodeId } : {}) });
    this.emit('record:refused', { code: o.code, message: o.message, source, nodeId: o.nodeId });
  }

  #event(name: 'peer:discovered' | 'peer:updated' | 'peer:verified' | 'peer:expired', nodeId: string, source: PeerSource): void {
    const peer = this.registry.get(nodeId);
    if (peer) this.emit(name, { nodeId, source, peer });
  }

  /** A finding of `source`, checked and stored. With `forNodeId` (a lookup), hints about other node ids are refused. */
  #emit(hint: DiscoveryHint, source: PeerSource, forNodeId?: string): EmitResult {
    const out: EmitResult = {};
    if (typeof hint !== 'object' || hint === null) return out;
    let nodeId = typeof hint.nodeId === 'string' ? normalizeNodeId(hint.nodeId) : undefined;
    if (hint.record !== undefined) {
      const bytes = hint.record instanceof Uint8Array ? hint.record : new Uint8Array(0);
      if (forNodeId) {
        // Checked before anything is stored: a lookup answers for the node id asked about, nothing else.
        let recordId: string | undefined;
        try {
          recordId = decodePeerRecord(bytes).nodeId;
        } catch {
          // Refused below with its own code.
        }
        if (recordId !== undefined && recordId !== forNodeId) {
          out.record = { accepted: false, code: 'ERR_RECORD_WRONG_PEER', message: `a lookup for ${fingerprintOf(forNodeId)} answered with the record of ${fingerprintOf(recordId)}` };
          this.#refused(out.record, source);
          return out;
        }
      }
      out.record = this.#outcome(this.registry.addRecordBytes(bytes, source), source);
      nodeId ??= out.record.nodeId;
    }
    if (hint.addresses !== undefined) {
      if (!nodeId || (forNodeId && nodeId !== forNodeId)) {
        out.addresses = { accepted: false, code: forNodeId ? 'ERR_RECORD_WRONG_PEER' : 'ERR_INVALID_NODE_ID', message: 'address hints without the node id they belong to' };
        this.#refused(out.addresses, source);
        return out;
      }
      const urls = Array.isArray(hint.addresses) ? hint.addresses : [];
      out.addresses = this.#outcome(this.registry.addHint(nodeId, urls, source, hint.ttlMs), source);
    }
    return out;
  }

  #context(): (source: DiscoverySource) => DiscoveryContext {
    const signal = this.#abort.signal;
    return (source) => ({
      nodeId: this.identity.nodeId,
      registry: this.registry,
      signal,
      emit: (hint) => this.#emit(hint, source.name),
      record: () => this.record,
      now: () => Date.now(),
      log: (level, message, fields) => this.#log(level, `${source.name}: ${message}`, fields),
      connect: (nodeId) => this.connect(nodeId),
    });
  }

  async #listen(options: MeshServerOptions): Promise<void> {
    const { port, host, onConnection, ...rest } = options;
    const registry = this.registry;
    const notBlocked: TrustPolicy = {
      verify(peer) {
        if (registry.isBlocked(peer.nodeId)) throw new McpE2eError('ERR_PEER_BLOCKED', `peer ${peer.fingerprint} is blocked`);
      },
    };
    const userTrust = rest.trust;
    const trust: TrustPolicy = userTrust ? { verify: (peer, ctx) => (notBlocked.verify(peer, ctx), userTrust.verify(peer, ctx)) } : notBlocked;
    const { allowAnyPeer: _any, ...withoutAny } = rest;
    this.#server = new EncryptedWebSocketServer({
      ...withoutAny,
      identity: this.identity,
      trust,
      onConnection: async (transport, peer) => {
        if (peer) {
          const session = this.#wrap(transport, { direction: 'incoming', ...(transport.remoteAddress ? { remoteAddress: transport.remoteAddress } : {}) });
          this.#opened(session, peer, { direction: 'incoming' });
        }
        await onConnection(transport, peer);
      },
    });
    this.#address = await this.#server.listen(port ?? 0, host ?? '127.0.0.1');
  }

  /** Make, store and (when started) publish a new record of ours; schedule the next. */
  #makeRecord(): PeerRecord {
    const a = this.#announce!;
    const lifetime = a.lifetimeMs ?? DEFAULT_RECORD_LIFETIME_MS;
    const now = Date.now();
    const previous = Math.max(this.#record?.seq ?? -1, this.registry.get(this.identity.nodeId)?.record?.seq ?? -1);
    const addresses = a.publicUrls ?? (this.#address ? listeningUrls(this.#address, this.#options.server?.path ?? '') : []);
    const record = createPeerRecord(this.identity, {
      // §13.1: the clock, or one more than the last record when the clock went back.
      seq: Math.max(now, previous + 1),
      issuedAtMs: now,
      expiresAtMs: now + lifetime,
      addresses,
      protocolVersions: a.protocolVersions ?? [PROTOCOL_VERSION],
      name: a.name,
      service: a.service,
    });
    this.#record = record;
    const o = this.registry.addRecord(record, 'manual');
    if (!o.accepted) this.#log('warn', `our own record was not stored: ${o.message}`, { code: o.code });
    try {
      // At once, not with the next batch: other processes of this home (`connect`) send it on their sessions.
      this.registry.flush();
    } catch (err) {
      this.#log('warn', `peer registry not written: ${(err as Error).message}`);
    }
    clearTimeout(this.#refreshTimer);
    this.#refreshTimer = setTimeout(() => this.#refresh(), a.refreshMs ?? Math.floor(lifetime / 2));
    this.#refreshTimer.unref();
    return record;
  }

  /** A new record: to the registry, the sources, and every open session (§13.6). */
  #refresh(): void {
    if (this.#state === 'stopped') return;
    const record = this.#makeRecord();
    for (const source of this.#sources) void this.#publishTo(source, record);
    for (const session of this.#sessions) this.#sendRecord(session, record);
  }

  /**
   * Publish a leaving record (PROTOCOL.md §14.7) in place of `current`: to
   * the registry, the sources (gossip pushes it at once) and every open
   * session, so that the mesh forgets us now rather than at expiry.
   */
  async #leave(current: PeerRecord): Promise<void> {
    const leaving = createLeavingRecord(this.identity, current, Date.now());
    this.#record = leaving;
    this.registry.addRecord(leaving, 'manual');
    for (const session of this.#sessions) this.#sendRecord(session, leaving);
    await Promise.all(this.#sources.map((source) => this.#publishTo(source, leaving)));
  }

  /** Make a new record now (e.g. after the addresses changed) and publish it. */
  republish(): PeerRecord | undefined {
    if (!this.#announce || this.#state !== 'started') return undefined;
    this.#refresh();
    return this.#record;
  }

  async #publishTo(source: DiscoverySource, record: PeerRecord): Promise<void> {
    try {
      await source.publish?.(record);
    } catch (err) {
      this.#log('warn', `discovery source ${source.name} failed to publish: ${(err as Error).message}`);
    }
  }

  /** Close the sessions of blocked peers; each reads why in our sealed CLOSE (4003), as at the handshake. */
  #closeBlocked(): void {
    for (const s of this.#sessions) {
      if (this.registry.isBlocked(s.peer.nodeId)) void s.close(new McpE2eError('ERR_PEER_BLOCKED', `peer ${s.peer.fingerprint} is blocked`));
    }
  }

  /** The periodic tick: pick up what other processes of the home wrote (a `peers block`, a `peers add`), then report expiries. */
  #checkExpiries(): void {
    const now = Date.now();
    let expired;
    try {
      this.registry.refresh();
      this.#closeBlocked();
      expired = this.registry.expiredBetween(this.#lastExpiryCheck, now);
    } catch (err) {
      this.#log('warn', `peer registry: ${(err as Error).message}`);
      return;
    }
    this.#lastExpiryCheck = now;
    for (const peer of expired) if (!peer.self) this.emit('peer:expired', { nodeId: peer.nodeId, source: peer.sources.at(-1) ?? 'manual', peer });
  }
}
