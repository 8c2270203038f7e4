/**
 * MCP client transport over an mcp-e2e WebSocket (PROTOCOL.md §3): connect,
 * negotiate the subprotocol, run the handshake as initiator, check the
 * server's identity against the trust policy, and only then report the
 * transport started. Fits the MCP SDK's `Transport` (v1 and, structurally, v2).
 *
 * With `enableEncryption: false` it speaks exactly what the SDK's own
 * `WebSocketClientTransport` speaks (subprotocol `mcp`, one JSON-RPC text
 * frame per message), with backpressure and size limits added.
 */
import { WebSocket } from 'ws';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { McpE2eError } from '../errors.js';
import { Handshake } from '../handshake/handshake.js';
import { NodeIdentity, type PeerIdentity } from '../identity/identity.js';
import { allowAnyPeer, normalizeEndpoint, pinnedPeer, type TrustPolicy } from '../identity/trust.js';
import { checkFramings, MAX_HANDSHAKE_MESSAGE_BYTES, SUBPROTOCOL_ENCRYPTED, type Framing } from '../protocol.js';
import { WebSocketChannel } from './channel.js';
import { asMcpE2eError, closeWithError } from './closing.js';
import { CONNECTION_LIMIT_NAMES, DEFAULT_CLIENT_KEEPALIVE_INTERVAL_MS, MAX_FRAGMENTS_PER_MESSAGE, PRE_AUTH_MAX_FRAGMENTS, resolveConnectionLimits, type ConnectionLimits } from './limits.js';
import { checkNegotiated, subprotocolFor, type ConnectionMode } from './subprotocol.js';
import { assertKnownOptions } from '../util/assert.js';

/** Options of `EncryptedWebSocketClientTransport`. Limits: see `ConnectionLimits`. */
export interface EncryptedWebSocketClientTransportOptions extends ConnectionLimits {
  /** Our identity. Required when encryption is enabled. */
  identity?: NodeIdentity;
  /** Accept only the server with this node id (pinning). Exclusive with `trust` and `allowAnyPeer`. */
  expectedPeer?: string;
  /** Trust policy for the server, e.g. a `KnownPeersStore` (trust on first use, keyed by `host:port`). Exclusive with `expectedPeer` and `allowAnyPeer`. */
  trust?: TrustPolicy;
  /** Accept any server that completes the handshake. Needed, explicitly, when neither `expectedPeer` nor `trust` is given. */
  allowAnyPeer?: boolean;
  /** Default true. False speaks plain MCP (subprotocol `mcp`) with no identity, no encryption, no trust checks. */
  enableEncryption?: boolean;
  /** Ask for an Ed25519 signature on every frame. Default true. */
  signatures?: boolean;
  /** Acceptable framings, most preferred first. Default `['binary', 'json']`. */
  framings?: Framing[];
  /** Extra HTTP headers for the upgrade request. */
  headers?: Record<string, string>;
}

const CLIENT_OPTION_NAMES = {
  ...CONNECTION_LIMIT_NAMES,
  identity: true,
  expectedPeer: true,
  trust: true,
  allowAnyPeer: true,
  enableEncryption: true,
  signatures: true,
  framings: true,
  headers: true,
} as const satisfies Record<keyof EncryptedWebSocketClientTransportOptions, true>;

/**
 * The client end of an mcp-e2e connection, usable as an MCP SDK transport:
 * `await client.connect(new EncryptedWebSocketClientTransport(url, { identity, expectedPeer }))`.
 *
 * Note: `sessionId` stays undefined on purpose: the SDK's `Client.connect()`
 * skips `initialize` when a transport already has one (it takes that as a
 * reconnection). The mcp-e2e session id is `e2eSessionId`.
 *
 * A server that refuses our identity can only say so after the handshake
 * (the client's identity travels in the last message): `start()` has then
 * resolved, and the refusal arrives sealed as `onerror` with
 * `ERR_PEER_REJECTED` (`fromPeer`; or `ERR_LIMIT_REACHED` when our key has too
 * many connections open) followed by `onclose`; pending requests (e.g.
 * `initialize`) fail.
 */
export class EncryptedWebSocketClientTransport extends WebSocketChannel implements Transport {
  /** The server URL (`ws:` or `wss:`). */
  readonly url: URL;
  /** `encrypted` or `plaintext`, fixed by the options. */
  readonly mode: ConnectionMode;
  /** Always undefined; see the class note. */
  sessionId?: string;

  readonly #identity: NodeIdentity | undefined;
  readonly #trust: TrustPolicy | undefined;
  readonly #signatures: boolean;
  readonly #framings: Framing[];
  readonly #headers: Record<string, string> | undefined;
  #started = false;

  /**
   * @param url `ws://` or `wss://` URL of the server.
   * @throws TypeError for an unknown option (named in the message), a
   *   non-WebSocket URL, a missing identity, or (encrypted
   *   mode) no way, or more than one way, to authenticate the server: give
   *   exactly one of `expectedPeer`, `trust`, or `allowAnyPeer: true`.
   * @throws RangeError for out-of-range limits or bad `framings`.
   * @throws McpE2eError `ERR_INVALID_NODE_ID` for a malformed `expectedPeer`.
   */
  constructor(url: string | URL, options: EncryptedWebSocketClientTransportOptions = {}) {
    assertKnownOptions(options, CLIENT_OPTION_NAMES, 'EncryptedWebSocketClientTransport');
    super(resolveConnectionLimits(options, DEFAULT_CLIENT_KEEPALIVE_INTERVAL_MS));
    this.url = new URL(url);
    if (this.url.protocol !== 'ws:' && this.url.protocol !== 'wss:') {
      throw new TypeError(`"url" expected a ws: or wss: URL, got ${this.url.protocol}`);
    }
    this.mode = options.enableEncryption === false ? 'plaintext' : 'encrypted';
    this.#signatures = options.signatures ?? true;
    this.#framings = checkFramings(options.framings);
    this.#headers = options.headers;
    if (this.mode === 'plaintext') {
      if (options.expectedPeer !== undefined || options.trust !== undefined) {
        throw new TypeError('"expectedPeer" and "trust" need encryption; a plaintext connection authenticates nobody');
      }
      return;
    }
    if (!(options.identity instanceof NodeIdentity)) throw new TypeError('"identity" expected a NodeIdentity (required for encryption)');
    this.#identity = options.identity;
    // A pin and a trust policy (or either and "accept any") say different
    // things; picking one silently would leave the caller's other intent unmet.
    const ways = [
      options.expectedPeer !== undefined && '"expectedPeer"',
      options.trust !== undefined && '"trust"',
      options.allowAnyPeer === true && '"allowAnyPeer: true"',
    ].filter((way) => way !== false);
    if (ways.length > 1) throw new TypeError(`give one way to authenticate the server, not ${ways.join(' and ')}`);
    if (options.expectedPeer !== undefined) this.#trust = pinnedPeer(options.expectedPeer);
    else if (options.trust !== undefined) this.#trust = options.trust;
    else if (options.allowAnyPeer === true) this.#trust = allowAnyPeer();
    else {
      throw new TypeError('refusing to connect without a way to authenticate the server: give "expectedPeer", "trust", or "allowAnyPeer: true"');
    }
  }

  /** `host:port` of the server, the key of endpoint-based trust (`KnownPeersStore`), normalised by `normalizeEndpoint`. */
  get endpoint(): string {
    const port = this.url.port || (this.url.protocol === 'wss:' ? '443' : '80');
    const endpoint = `${this.url.hostname}:${port}`;
    return normalizeEndpoint(endpoint) ?? endpoint;
  }

  /**
   * Connect, negotiate, handshake and check the server's identity. Resolves
   * when MCP messages can flow. The whole of it must finish within
   * `handshakeTimeoutMs` (default 10 s).
   * @throws Error when called twice.
   * @throws McpE2eError `ERR_CONNECT_FAILED`, `ERR_SUBPROTOCOL` (at once,
   *   when the server selects another subprotocol or none, or encrypting,
   *   refuses the upgrade with HTTP 400: not an mcp-e2e endpoint),
   *   `ERR_HANDSHAKE_*` (including `ERR_HANDSHAKE_TIMEOUT`), `ERR_PEER_REJECTED`
   *   and `ERR_PEER_KEY_CHANGED` (our trust policy refused the server),
   *   `ERR_LIMIT_REACHED` (turned away before the handshake: HTTP 429 or close
   *   1013; retryable), `ERR_CONNECTION_CLOSED` (the server closed; what its
   *   close frame claimed is `peerCode`). The error also goes to `onerror`,
   *   and the socket is closed (`onclose` has fired) by the time the promise
   *   rejects.
   */
  async start(): Promise<void> {
    if (this.#started) {
      throw new Error('EncryptedWebSocketClientTransport already started! If using Client class, note that connect() calls start() automatically.');
    }
    this.#started = true;
    if (this.closeRequested || this.closed) throw new McpE2eError('ERR_CONNECTION_CLOSED', 'the transport was closed before start()');
    const deadline = Date.now() + this.limits.handshakeTimeoutMs;
    const subprotocol = subprotocolFor(this.mode);
    const ws = new WebSocket(this.url, [subprotocol], {
      // Until the server is authenticated, nothing larger than a handshake message is accepted.
      maxPayload: this.mode === 'encrypted' ? MAX_HANDSHAKE_MESSAGE_BYTES : this.limits.maxMessageBytes,
      maxFragments: this.mode === 'encrypted' ? PRE_AUTH_MAX_FRAGMENTS : MAX_FRAGMENTS_PER_MESSAGE,
      // UTF-8 is checked where text is used, in order (see server.ts).
      skipUTF8Validation: true,
      // Compressing ciphertext gains nothing; compressing secrets next to attacker data leaks (CRIME).
      perMessageDeflate: false,
      followRedirects: false,
      ...(this.#headers ? { headers: this.#headers } : {}),
    });
    this.adoptSocket(ws);
    try {
      await this.#opened(ws, deadline);
      checkNegotiated(this.mode, ws.protocol);
      if (this.mode === 'encrypted') {
        const endpoint = this.endpoint;
        const trust = this.#trust!;
        await this.secure(
          new Handshake('initiator', this.#identity!, { signatures: this.#signatures, framings: this.#framings }),
          this.#identity!,
          (peer: PeerIdentity) => trust.verify(peer, { endpoint }),
          Math.max(1, deadline - Date.now()),
        );
      } else {
        this.openPlaintext();
      }
    } catch (err) {
      const e = asMcpE2eError(err, 'ERR_CONNECT_FAILED');
      closeWithError(ws, e);
      this.report(e);
      // Settle only once the socket is gone (at most CLOSE_GRACE_MS), so a
      // caller that sees the rejection also sees `closed` and `onclose`.
      await this.whenClosed();
      throw e;
    }
    this.deliver();
  }

  /** Wait for the upgrade; map every way it can fail to a code. */
  #opened(ws: WebSocket, deadline: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const done = (err?: McpE2eError): void => {
        clearTimeout(timer);
        ws.off('open', onOpen);
        ws.off('error', onError);
        ws.off('close', onClose);
        if (err) reject(err);
        else resolve();
      };
      const onOpen = (): void => done();
      const onError = (err: Error): void => {
        // ws refuses a missing or different subprotocol itself, before 'open'.
        if (this.closeRequested) {
          done(new McpE2eError('ERR_CONNECTION_CLOSED', 'the transport was closed while connecting', { cause: err }));
          return;
        }
        done(this.#upgradeError(err));
      };
      const onClose = (): void => done(new McpE2eError('ERR_CONNECTION_CLOSED', 'the transport was closed while connecting'));
      const timer = setTimeout(() => {
        ws.terminate();
        done(new McpE2eError('ERR_HANDSHAKE_TIMEOUT', `no connection to ${this.url.origin} within ${this.limits.handshakeTimeoutMs} ms`));
      }, Math.max(1, deadline - Date.now()));
      ws.on('open', onOpen);
      ws.on('error', onError);
      ws.on('close', onClose);
    });
  }

  /**
   * The error for a failed upgrade (ws's message says how it failed). Asking
   * for encryption, a server that selects no subprotocol or another one, or
   * refuses the upgrade with HTTP 400 (what a `ws` server answers at a path
   * it does not serve), is no mcp-e2e endpoint: said at once, rather than
   * left to a handshake that cannot succeed (PROTOCOL.md §3.1).
   */
  #upgradeError(err: Error): McpE2eError {
    // Never the URL's user info: it may hold a credential.
    const where = `${this.url.origin}${this.url.pathname === '/' ? '' : this.url.pathname}`;
    const opts = { cause: err };
    const subprotocol = /subprotocol/i.test(err.message);
    if (this.mode === 'encrypted' && subprotocol) {
      // An mcp-e2e server of another version answers so too (PROTOCOL.md §3.1), and is named second.
      return new McpE2eError('ERR_SUBPROTOCOL', `${where} is a plain MCP WebSocket server (it did not select the ${SUBPROTOCOL_ENCRYPTED} subprotocol), or an mcp-e2e server of another protocol version`, opts);
    }
    if (this.mode === 'encrypted' && /server response: 400\b/.test(err.message)) {
      return new McpE2eError('ERR_SUBPROTOCOL', `${where} is not an mcp-e2e endpoint: it refused the WebSocket upgrade with HTTP 400, as a plain MCP WebSocket server does at a path it does not serve`, opts);
    }
    // A server at a limit answers the upgrade with HTTP 429: what happened to our attempt (PROTOCOL.md §9.1).
    const code = subprotocol ? 'ERR_SUBPROTOCOL' : /server response: 429\b/.test(err.message) ? 'ERR_LIMIT_REACHED' : 'ERR_CONNECT_FAILED';
    return new McpE2eError(code, `cannot connect to ${this.url.origin}: ${err.message}`, opts);
  }
}
