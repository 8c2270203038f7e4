/**
 * Accepts mcp-e2e connections: admission control, subprotocol choice,
 * handshake, trust decision, then one `EncryptedWebSocketServerTransport`
 * per client handed to `onConnection`. Each connection has its own session
 * and its own transport; a failure of one never touches another.
 *
 * Defence against unauthenticated load, in order of arrival:
 * - TCP accept (servers started with `listen()`): at most `maxConnections +
 *   maxPendingHandshakes` sockets; at most `maxConnectionsPerAddress` from one
 *   source address (more get an immediate HTTP 429, nothing of theirs is
 *   read); the HTTP request head is at most MAX_UPGRADE_HEADER_BYTES (Node's
 *   parser answers 431 beyond); the HTTP upgrade must arrive within
 *   `upgradeTimeoutMs`, and the socket is destroyed at accept +
 *   `upgradeTimeoutMs` + `handshakeTimeoutMs` (15 s by default) unless
 *   authenticated by then, whatever stage it is stuck in.
 * - Per address (an IPv6 address counts as its /64; admission.ts): an
 *   address out of handshake tokens (`handshakeBurstPerAddress`, then
 *   `handshakeRatePerAddress` per second) gets HTTP 429 at accept; at the
 *   upgrade, an `Origin` header not in `allowedOrigins` (a web page) gets
 *   403, an address with `maxPendingHandshakesPerAddress` pending gets 429,
 *   and the upgrade takes a token. All before any cryptography.
 * - Upgrade: the mode is chosen from the subprotocol before any message is
 *   read; over `maxConnections`, the connection is closed at once with 1013
 *   `ERR_LIMIT_REACHED`; over `maxPendingHandshakes`, the oldest pending
 *   handshake of the address holding the most is evicted (1013) to make room.
 * - Handshake: step 1 must arrive within `handshakeStep1TimeoutMs`; `ws`
 *   accepts messages of at most MAX_HANDSHAKE_MESSAGE_BYTES (larger frames
 *   are refused by their header, close 1009, nothing buffered) until the
 *   peer is authenticated and admitted; an authenticated node id may hold at
 *   most `maxConnectionsPerPeer` connections.
 * - Afterwards: every change of the allowlist revalidates the open sessions.
 */
import { createServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { McpE2eError } from '../errors.js';
import { Handshake } from '../handshake/handshake.js';
import { NodeIdentity, type PeerIdentity } from '../identity/identity.js';
import { PeerAllowList, type TrustPolicy } from '../identity/trust.js';
import { checkFramings, MAX_HANDSHAKE_MESSAGE_BYTES, type Framing } from '../protocol.js';
import { addressKey, PendingTable, RateLimiter } from './admission.js';
import { asMcpE2eError, closeWithError } from './closing.js';
import { CLOSE_GRACE_MS, MAX_UPGRADE_HEADER_BYTES, PRE_AUTH_MAX_FRAGMENTS, resolveServerLimits, type ResolvedServerLimits, type ServerLimits } from './limits.js';
import { EncryptedWebSocketServerTransport } from './server-transport.js';
import { modeOfServerConnection, selectSubprotocol, type ServedModes } from './subprotocol.js';
import { assertKnownOptions } from '../util/assert.js';

/** Where a connection-level failure happened, for `onError`. */
export interface ConnectionInfo {
  remoteAddress: string | undefined;
  /** The client's TCP port (tells connections from one address apart in logs). */
  remotePort?: number | undefined;
  /** The authenticated peer, when the failure came after the handshake. */
  peer?: PeerIdentity;
}

/** Options of `EncryptedWebSocketServer`. */
export interface EncryptedWebSocketServerOptions {
  /** The server's identity. Required unless `enableEncryption` is false. */
  identity?: NodeIdentity;
  /**
   * `true` (the default): serve only encrypted, authenticated sessions
   * (subprotocol `mcp-e2e.v2`). `false`: serve only plain MCP (subprotocol
   * `mcp`, the seed's plaintext mode, for peers that do not speak mcp-e2e):
   * nobody is authenticated, so `allowedPeers` and `trust` are refused and
   * `identity` is not needed. An encrypting client is refused with 1008
   * `ERR_SUBPROTOCOL`, never served in clear. To serve both, keep it true and
   * set `allowPlaintext`.
   */
  enableEncryption?: boolean;
  /** Accept every client that completes the handshake. Without it, `allowedPeers` or `trust` is required. */
  allowAnyPeer?: boolean;
  /**
   * Node ids allowed to connect. Pass a `PeerAllowList` to change it at run
   * time (`set()`, `reload()`): every handshake consults the current list,
   * and every change closes the open sessions of peers no longer on it.
   * An array is wrapped into a new list, available as `server.allowList`.
   */
  allowedPeers?: Iterable<string> | PeerAllowList;
  /** Another trust policy. With `allowedPeers` too, a client must pass both. */
  trust?: TrustPolicy;
  /**
   * Serve plain MCP (subprotocol `mcp`, no encryption, nobody authenticated)
   * beside encrypted sessions. Default false. Refused with `enableEncryption:
   * false`, which already serves plaintext only.
   */
  allowPlaintext?: boolean;
  /** Require a signature on every frame even when the client does not ask. Default false (the client decides). */
  signatures?: boolean;
  /** Acceptable framings, most preferred first. Default `['binary', 'json']`. */
  framings?: Framing[];
  /** Accept upgrades only on this path (e.g. `/mcp`). Default: any path. */
  path?: string;
  /**
   * Origins (`scheme://host[:port]`, as browsers send them) whose upgrades
   * are accepted. Browsers apply no same-origin rule to WebSockets, so any
   * web page the operator visits could otherwise reach a server on
   * localhost; an upgrade that carries an `Origin` header not listed here is
   * refused with HTTP 403 (`ERR_ORIGIN_REFUSED`). Non-browser clients send no
   * `Origin` and are not affected. Default: none.
   */
  allowedOrigins?: string[];
  /** Limits; every one has a safe default (see `ServerLimits`). */
  limits?: ServerLimits;
  /**
   * Called with each authenticated (or, if allowed, plaintext) connection and
   * the client's verified identity (undefined in plaintext mode). Typically
   * creates an `McpServer` and `connect()`s it. A rejection closes the connection.
   */
  onConnection: (transport: EncryptedWebSocketServerTransport, peer: PeerIdentity | undefined) => void | Promise<void>;
  /**
   * Connection-level failures (refused handshakes, refused peers, limits,
   * timeouts, a failing `onConnection`), with the local detail. The peer saw
   * only a close code and the error code. Default: ignore.
   */
  onError?: (error: Error, info: ConnectionInfo) => void;
}

const SERVER_OPTION_NAMES = {
  identity: true,
  enableEncryption: true,
  allowAnyPeer: true,
  allowedPeers: true,
  trust: true,
  allowPlaintext: true,
  signatures: true,
  framings: true,
  path: true,
  allowedOrigins: true,
  limits: true,
  onConnection: true,
  onError: true,
} as const satisfies Record<keyof EncryptedWebSocketServerOptions, true>;

/**
 * What the server holds for one counted socket until it closes, all released
 * by the socket's single 'close' listener (one shared function for every
 * socket: a listener, closure and `once` wrapper per concern cost ~1 KiB per
 * idle connection).
 */
interface TrackedSocket {
  /** The admission bucket counted in `#perAddress`. */
  address: string;
  /** When we saw the accept (`listen()`); undefined for `attach()`. */
  acceptedAt: number | undefined;
  /** Destroys the socket unless authenticated by then; undefined once authenticated. */
  deadline: NodeJS.Timeout | undefined;
  /** The node id counted in `#perPeer`, once the peer is admitted. */
  peer: string | undefined;
  /** The connection in `#connections`, once admitted. */
  transport: EncryptedWebSocketServerTransport | undefined;
}

/**
 * An origin in the form browsers send (`scheme://host[:port]`, lowercase,
 * default port omitted), or undefined when `text` is not one (`null`, a path).
 * @throws TypeError for a configured origin (`strict`) that is not one.
 */
function normalizeOrigin(text: string, strict = false): string | undefined {
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    url = undefined;
  }
  if (!url || url.origin === 'null' || (url.pathname !== '/' && url.pathname !== '') || url.search || url.hash || url.username) {
    if (strict) throw new TypeError(`"allowedOrigins" expected origins like https://example.com, got ${JSON.stringify(text)}`);
    return undefined;
  }
  return url.origin;
}

/** One less in a count; the entry goes at zero. */
function decrement(counts: Map<string, number>, key: string): void {
  const left = (counts.get(key) ?? 1) - 1;
  if (left > 0) counts.set(key, left);
  else counts.delete(key);
}

function httpReject(socket: Duplex, status: number, text: string): void {
  if (socket.writable) socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  socket.destroy();
}

export { addressKey } from './admission.js';

/** A connection in the handshake: its admission bucket and how to evict it. */
interface PendingHandshake {
  transport: EncryptedWebSocketServerTransport;
  abort: AbortController;
}

/**
 * A WebSocket server for MCP over mcp-e2e. Start it with `listen()` or
 * `attach()` to an existing HTTP(S) server; stop it with `close()`.
 */
export class EncryptedWebSocketServer {
  /** The effective limits (defaults applied). */
  readonly limits: ResolvedServerLimits;
  /** The allowlist in force, when `allowedPeers` was given. */
  readonly allowList: PeerAllowList | undefined;
  readonly #identity: NodeIdentity | undefined;
  readonly #served: ServedModes;
  readonly #policies: TrustPolicy[];
  readonly #options: EncryptedWebSocketServerOptions;
  readonly #framings: Framing[];
  readonly #wss: WebSocketServer;
  #http: HttpServer | undefined;
  #owned = false;
  #closing = false;
  #closed: Promise<void> | undefined;
  readonly #connections = new Set<EncryptedWebSocketServerTransport>();
  /** Connections in the handshake, by admission bucket (see admission.ts). */
  readonly #pending = new PendingTable<PendingHandshake>();
  /** Handshake starts per admission bucket. */
  readonly #starts: RateLimiter;
  /** Authenticated connections per node id (see `maxConnectionsPerPeer`). */
  readonly #perPeer = new Map<string, number>();
  readonly #origins: ReadonlySet<string>;
  /** Connections closed by revalidation, still closing (counted and reported once). */
  readonly #revoked = new WeakSet<EncryptedWebSocketServerTransport>();
  /** Stops revalidating on allowlist changes (close()). */
  #unsubscribe: (() => void) | undefined;
  /** Counted sockets (every socket past the accept checks), until they close. */
  readonly #sockets = new Map<Socket, TrackedSocket>();
  /** The 'close' listener of every tracked socket (`this` is the socket). */
  readonly #onSocketClose: (this: Socket) => void;
  /** Open sockets per source address (see `maxConnectionsPerAddress`). */
  readonly #perAddress = new Map<string, number>();
  /** Sockets refused at accept: answered with 429, never upgraded. */
  readonly #refused = new WeakSet<Socket>();

  /**
   * @throws TypeError for an unknown option (named in the message, also
   *   inside `limits`), a missing identity (encrypted) or `onConnection`, or
   *   when no client could ever be authorised (none of `allowAnyPeer`,
   *   `allowedPeers`, `trust`), or when `allowAnyPeer` is combined with a list
   *   or policy, or (`enableEncryption: false`) with `allowedPeers`, `trust` or
   *   `allowPlaintext`.
   * @throws RangeError for out-of-range limits or bad `framings`.
   * @throws McpE2eError `ERR_INVALID_NODE_ID` for a malformed allowlist entry.
   */
  constructor(options: EncryptedWebSocketServerOptions) {
    if (options instanceof NodeIdentity) {
      throw new TypeError('EncryptedWebSocketServer takes one options object ({ identity, onConnection, ... }); for the (identity, { messageHandler }) shape use EncryptedMessageServer');
    }
    assertKnownOptions(options, SERVER_OPTION_NAMES, 'EncryptedWebSocketServer');
    if (typeof options.onConnection !== 'function') throw new TypeError('"onConnection" expected a function');
    this.#options = options;
    const server = this;
    this.#onSocketClose = function (this: Socket): void {
      server.#release(this);
    };
    this.limits = resolveServerLimits(options.limits);
    this.#framings = checkFramings(options.framings);
    const encrypted = options.enableEncryption !== false;
    if (options.identity !== undefined || encrypted) {
      if (!(options.identity instanceof NodeIdentity)) throw new TypeError(`"identity" expected a NodeIdentity${encrypted ? ' (required for encryption)' : ''}`);
    }
    this.#identity = options.identity;
    this.#served = { encrypted, plaintext: !encrypted || options.allowPlaintext === true };
    const policies: TrustPolicy[] = [];
    if (!encrypted) {
      if (options.allowedPeers !== undefined || options.trust !== undefined) {
        throw new TypeError('"allowedPeers" and "trust" need encryption; a plaintext server authenticates nobody');
      }
      if (options.allowPlaintext === true) {
        throw new TypeError('"allowPlaintext" serves plaintext beside encryption; with "enableEncryption: false" the server serves plaintext only');
      }
    } else {
      if (options.allowedPeers !== undefined) {
        this.allowList = options.allowedPeers instanceof PeerAllowList ? options.allowedPeers : new PeerAllowList(options.allowedPeers);
        policies.push(this.allowList);
      }
      if (options.trust !== undefined) policies.push(options.trust);
      if (options.allowAnyPeer === true) {
        if (policies.length > 0) throw new TypeError('"allowAnyPeer" contradicts "allowedPeers"/"trust"; give one or the other');
      } else if (policies.length === 0) {
        throw new TypeError('refusing to accept unauthorised clients: give "allowedPeers", "trust", or "allowAnyPeer: true"');
      }
    }
    this.#policies = policies;
    this.#starts = new RateLimiter(this.limits.handshakeRatePerAddress, this.limits.handshakeBurstPerAddress);
    this.#origins = new Set((options.allowedOrigins ?? []).map((o) => normalizeOrigin(o, true)!));
    // Every change of the allowlist (set(), a reload, even one that failed
    // and only removed peers) is applied to the open connections at once.
    this.#unsubscribe = this.allowList?.onChange(() => this.revalidatePeers());
    this.#wss = new WebSocketServer({
      noServer: true,
      // Until a client is authenticated, nothing larger than a handshake message is read.
      maxPayload: MAX_HANDSHAKE_MESSAGE_BYTES,
      maxFragments: PRE_AUTH_MAX_FRAGMENTS,
      // Text is checked where it is used, in order with everything else:
      // strict decoders for handshake messages and envelopes, a fatal UTF-8
      // decoder for MCP payloads (json-rpc.ts). ws's own check would close
      // with 1007 out of turn, dropping valid frames queued before the bad one.
      skipUTF8Validation: true,
      perMessageDeflate: false,
      clientTracking: false,
      handleProtocols: (offered) => selectSubprotocol(offered, this.#served),
    });
  }

  /** Connections that completed the handshake and are still open. */
  get connections(): EncryptedWebSocketServerTransport[] {
    return [...this.#connections];
  }

  /** Connections currently in the handshake. */
  get pendingHandshakes(): number {
    return this.#pending.size;
  }

  /** Open sockets per source address, any stage (a copy; for monitoring and tests). */
  get connectionsPerAddress(): Map<string, number> {
    return new Map(this.#perAddress);
  }

  /** The address the server listens on (`listen()` only). */
  address(): AddressInfo | undefined {
    const a = this.#http?.address();
    return a && typeof a === 'object' ? a : undefined;
  }

  /**
   * Listen on `host:port` with a server of our own. Plain HTTP requests get
   * 426 Upgrade Required.
   * @param port TCP port; 0 picks a free one. Default 0.
   * @param host Default `127.0.0.1` (loopback only; pass `0.0.0.0` or `::` to serve the network).
   * @returns the bound address.
   * @throws Error when already listening or attached, or when binding fails.
   */
  async listen(port = 0, host = '127.0.0.1'): Promise<AddressInfo> {
    this.#checkIdle();
    const server = createServer({ maxHeaderSize: MAX_UPGRADE_HEADER_BYTES });
    this.#http = server;
    this.#owned = true;
    // net.Server drops sockets beyond this at accept, before any parsing.
    server.maxConnections = this.limits.maxConnections + this.limits.maxPendingHandshakes;
    server.on('connection', (socket: Socket) => this.#onTcpConnection(socket));
    server.on('request', (req, res) => {
      if (this.#refused.has(req.socket)) {
        req.socket.destroy();
        return;
      }
      res.writeHead(426, { Connection: 'close', Upgrade: 'websocket', 'Content-Type': 'text/plain' });
      res.end('mcp-e2e: WebSocket upgrade required\n');
    });
    server.on('upgrade', this.#onUpgrade);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return this.address()!;
  }

  /**
   * Serve WebSocket upgrades of an existing HTTP or HTTPS server (its other
   * requests are left alone). A stalled upgrade request is then that server's
   * to time out (`headersTimeout`); from the upgrade on, our limits apply.
   * @throws Error when already listening or attached.
   */
  attach(server: HttpServer): void {
    this.#checkIdle();
    this.#http = server;
    this.#owned = false;
    server.on('upgrade', this.#onUpgrade);
  }

  /**
   * Re-check every open encrypted connection against the current trust
   * policies; connections that no longer pass are closed with 4003
   * `ERR_PEER_REJECTED`. Runs by itself after every change of `allowList`
   * (`set()`, `reload()`); call it after changing another policy.
   * @returns how many connections were closed.
   */
  revalidatePeers(): number {
    let closed = 0;
    for (const t of this.#connections) {
      if (!t.peer || this.#revoked.has(t)) continue;
      try {
        this.#verifyPeer(t.peer);
      } catch (err) {
        const e = asMcpE2eError(err, 'ERR_PEER_REJECTED');
        this.#report(e, { remoteAddress: t.remoteAddress, peer: t.peer });
        this.#revoked.add(t);
        t.terminate(e);
        closed++;
      }
    }
    return closed;
  }

  /**
   * Stop accepting, close every connection (code 1000) and, for `listen()`,
   * the HTTP server. Resolves when all are closed. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closed) return this.#closed;
    this.#closing = true;
    this.#unsubscribe?.();
    this.#closed = (async () => {
      const http = this.#http;
      if (http && !this.#owned) http.off('upgrade', this.#onUpgrade);
      const stopped = http && this.#owned ? new Promise<void>((resolve) => http.close(() => resolve())) : Promise.resolve();
      for (const [socket, tracked] of this.#sockets) {
        if (tracked.deadline === undefined) continue;
        clearTimeout(tracked.deadline);
        tracked.deadline = undefined;
        socket.destroy();
      }
      await Promise.all([...[...this.#pending.entries()].map((p) => p.transport), ...this.#connections].map((t) => t.close()));
      if (http && this.#owned) http.closeAllConnections();
      await stopped;
    })();
    return this.#closed;
  }

  #checkIdle(): void {
    if (this.#http) throw new Error('EncryptedWebSocketServer is already listening or attached');
    if (this.#closing) throw new Error('EncryptedWebSocketServer is closed');
  }

  #report(error: Error, info: ConnectionInfo): void {
    try {
      this.#options.onError?.(error, info);
    } catch {
      // A failing error hook must not take other connections down.
    }
  }

  #verifyPeer(peer: PeerIdentity): void {
    for (const policy of this.#policies) policy.verify(peer);
  }

  /**
   * Count `socket` against its address until it closes.
   * @returns false (nothing counted) when the address is at its limit.
   */
  #claimAddress(socket: Socket): boolean {
    if (this.#sockets.has(socket)) return true;
    if (socket.destroyed) return false;
    const key = addressKey(socket.remoteAddress);
    const n = this.#perAddress.get(key) ?? 0;
    if (n >= this.limits.maxConnectionsPerAddress) return false;
    this.#perAddress.set(key, n + 1);
    this.#sockets.set(socket, { address: key, acceptedAt: undefined, deadline: undefined, peer: undefined, transport: undefined });
    socket.on('close', this.#onSocketClose);
    return true;
  }

  /** `socket` closed: release everything counted for it. */
  #release(socket: Socket): void {
    const tracked = this.#sockets.get(socket);
    if (!tracked) return;
    this.#sockets.delete(socket);
    clearTimeout(tracked.deadline);
    decrement(this.#perAddress, tracked.address);
    if (tracked.peer !== undefined) decrement(this.#perPeer, tracked.peer);
    if (tracked.transport) this.#connections.delete(tracked.transport);
  }

  /**
   * Count an authenticated peer against `maxConnectionsPerPeer` until its
   * socket closes (called inside the trust decision, so two handshakes of
   * one peer finishing together cannot both slip under the limit).
   * @throws McpE2eError `ERR_LIMIT_REACHED`, or `ERR_CONNECTION_CLOSED` when
   *   the socket has closed already (and been released).
   */
  #claimPeer(peer: PeerIdentity, socket: Socket): void {
    const tracked = this.#sockets.get(socket);
    // Released already: nothing would ever give the slot back.
    if (!tracked) throw new McpE2eError('ERR_CONNECTION_CLOSED', 'the connection closed during the handshake');
    const n = this.#perPeer.get(peer.nodeId) ?? 0;
    if (n >= this.limits.maxConnectionsPerPeer) {
      throw new McpE2eError('ERR_LIMIT_REACHED', `connection refused: peer ${peer.fingerprint} already has ${n} connections open (maxConnectionsPerPeer)`);
    }
    this.#perPeer.set(peer.nodeId, n + 1);
    tracked.peer = peer.nodeId;
  }

  #rateRefusal(info: ConnectionInfo): void {
    this.#report(new McpE2eError('ERR_LIMIT_REACHED', `connection refused: more than ${this.limits.handshakeRatePerAddress} handshakes per second from this address`), info);
  }

  #addressRefusal(socket: Socket): McpE2eError {
    const err = new McpE2eError('ERR_LIMIT_REACHED', `connection refused: ${this.limits.maxConnectionsPerAddress} connections already open from this address`);
    this.#report(err, { remoteAddress: socket.remoteAddress });
    return err;
  }

  #onTcpConnection(socket: Socket): void {
    if (this.#closing) {
      socket.destroy();
      return;
    }
    // An address over its connection limit, or out of handshake tokens (it
    // could only be refused at the upgrade), is answered at once, before
    // reading a byte: the request head is never parsed for it (the upgrade
    // and request handlers drop refused sockets).
    const outOfTokens = !this.#starts.available(addressKey(socket.remoteAddress), Date.now());
    if (outOfTokens || !this.#claimAddress(socket)) {
      this.#refused.add(socket);
      if (outOfTokens) this.#rateRefusal({ remoteAddress: socket.remoteAddress, remotePort: socket.remotePort });
      else this.#addressRefusal(socket);
      socket.on('error', () => {});
      socket.end('HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      const timer = setTimeout(() => socket.destroy(), Math.min(CLOSE_GRACE_MS, this.limits.upgradeTimeoutMs));
      timer.unref();
      socket.once('close', () => clearTimeout(timer));
      return;
    }
    const tracked = this.#sockets.get(socket)!;
    tracked.acceptedAt = Date.now();
    tracked.deadline = this.#destroyAfter(socket, this.limits.upgradeTimeoutMs);
  }

  #destroyAfter(socket: Socket, ms: number): NodeJS.Timeout {
    const timer = setTimeout(() => socket.destroy(), ms);
    timer.unref();
    return timer;
  }

  /** From the upgrade on, the socket lives until accept + upgrade + handshake timeouts at most. */
  #armHandshakeDeadline(socket: Socket): void {
    // Counted by #claimAddress before (at the accept, or for attach() in #onUpgrade).
    const tracked = this.#sockets.get(socket)!;
    clearTimeout(tracked.deadline);
    const { upgradeTimeoutMs, handshakeTimeoutMs } = this.limits;
    // For attach(), we never saw the accept: allow the handshake plus the close grace.
    const remaining = tracked.acceptedAt !== undefined ? tracked.acceptedAt + upgradeTimeoutMs + handshakeTimeoutMs - Date.now() : handshakeTimeoutMs + CLOSE_GRACE_MS;
    tracked.deadline = this.#destroyAfter(socket, Math.max(1, remaining));
  }

  /** The socket is authenticated: no deadline any more. */
  #authenticated(socket: Socket): void {
    const tracked = this.#sockets.get(socket);
    if (!tracked) return;
    clearTimeout(tracked.deadline);
    tracked.deadline = undefined;
  }

  #onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    if (this.#refused.has(req.socket)) {
      socket.destroy();
      return;
    }
    const path = this.#options.path;
    if (path !== undefined) {
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      if ((q === -1 ? url : url.slice(0, q)) !== path) {
        // Another upgrade listener of an attached server may own that path.
        if (this.#owned) httpReject(socket, 404, 'Not Found');
        return;
      }
    }
    if (this.#closing) {
      httpReject(socket, 503, 'Service Unavailable');
      return;
    }
    const info: ConnectionInfo = { remoteAddress: req.socket.remoteAddress, remotePort: req.socket.remotePort };
    const origin = req.headers.origin;
    if (origin !== undefined && !this.#origins.has(normalizeOrigin(origin) ?? '')) {
      this.#report(new McpE2eError('ERR_ORIGIN_REFUSED', `upgrade refused: Origin ${JSON.stringify(origin.slice(0, 200))} is not allowed (a web page; see allowedOrigins)`), info);
      httpReject(socket, 403, 'Forbidden');
      return;
    }
    // attach(): we never saw the accept, so the address is counted from here.
    if (!this.#claimAddress(req.socket)) {
      this.#addressRefusal(req.socket);
      httpReject(socket, 429, 'Too Many Requests');
      return;
    }
    // Cheap refusals before the upgrade: an HTTP 429 costs no cryptography.
    const key = addressKey(req.socket.remoteAddress);
    const perAddress = Math.min(this.limits.maxPendingHandshakesPerAddress, this.limits.maxPendingHandshakes);
    if (this.#pending.countOf(key) >= perAddress) {
      this.#report(new McpE2eError('ERR_LIMIT_REACHED', `upgrade refused: ${perAddress} handshakes already pending from this address`), info);
      httpReject(socket, 429, 'Too Many Requests');
      return;
    }
    if (!this.#starts.take(key, Date.now())) {
      this.#rateRefusal(info);
      httpReject(socket, 429, 'Too Many Requests');
      return;
    }
    this.#armHandshakeDeadline(req.socket);
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#onWebSocket(ws, req));
  };

  #onWebSocket(ws: WebSocket, req: IncomingMessage): void {
    const info: ConnectionInfo = { remoteAddress: req.socket.remoteAddress, remotePort: req.socket.remotePort };
    const refuse = (err: McpE2eError): void => {
      ws.on('error', () => {});
      this.#report(err, info);
      closeWithError(ws, err);
    };
    let mode;
    try {
      mode = modeOfServerConnection(ws.protocol, this.#served);
    } catch (err) {
      refuse(asMcpE2eError(err, 'ERR_SUBPROTOCOL'));
      return;
    }
    const { maxConnections, maxPendingHandshakes } = this.limits;
    // Counted as after an eviction (below), which frees a pending slot.
    if (this.#connections.size + Math.min(this.#pending.size, maxPendingHandshakes - 1) >= maxConnections) {
      refuse(new McpE2eError('ERR_LIMIT_REACHED', `connection refused: ${this.#connections.size} connections, ${this.#pending.size} handshakes in progress`));
      return;
    }
    if (this.#pending.size >= maxPendingHandshakes) {
      // Make room rather than refuse every newcomer: whoever holds the most
      // slots loses its oldest (see admission.ts).
      const victim = this.#pending.victim()!;
      // Out of the table now, not when its handshake has unwound: a second
      // newcomer in the same turn must pick another one.
      this.#pending.delete(victim);
      victim.abort.abort(new McpE2eError('ERR_LIMIT_REACHED', `handshake evicted: ${maxPendingHandshakes} handshakes pending, room made for a newcomer`));
    }
    const transport = new EncryptedWebSocketServerTransport(ws, req, mode, this.limits);
    void this.#admit(transport, req.socket, info);
  }

  async #admit(transport: EncryptedWebSocketServerTransport, socket: Socket, info: ConnectionInfo): Promise<void> {
    const pending: PendingHandshake = { transport, abort: new AbortController() };
    this.#pending.add(pending, addressKey(socket.remoteAddress));
    try {
      const handshake = transport.mode === 'encrypted'
        ? new Handshake('responder', this.#identity!, { signatures: this.#options.signatures ?? false, framings: this.#framings })
        : undefined;
      const verify = (peer: PeerIdentity): void => {
        this.#verifyPeer(peer);
        this.#claimPeer(peer, socket);
      };
      await transport.accept(handshake, this.#identity, verify, { step1TimeoutMs: this.limits.handshakeStep1TimeoutMs, signal: pending.abort.signal });
    } catch (err) {
      this.#report(asMcpE2eError(err, 'ERR_HANDSHAKE_MALFORMED'), info);
      return;
    } finally {
      this.#pending.delete(pending);
    }
    this.#authenticated(socket);
    const tracked = this.#sockets.get(socket);
    // No entry: the socket closed already (its WebSocket may not have noticed yet).
    if (this.#closing || transport.closed || !tracked) {
      await transport.close();
      return;
    }
    this.#connections.add(transport);
    tracked.transport = transport;
    try {
      await this.#options.onConnection(transport, transport.peer);
    } catch (err) {
      this.#report(err instanceof Error ? err : new Error(String(err)), { ...info, ...(transport.peer ? { peer: transport.peer } : {}) });
      await transport.close();
    }
  }
}
