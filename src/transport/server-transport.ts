/**
 * The server end of one connection, as an MCP SDK transport. Created by
 * `EncryptedWebSocketServer` for each client, already authenticated when the
 * application receives it; pass it to a fresh `McpServer`/`Server`
 * (`await server.connect(transport)`). Every message handed to the SDK
 * carries the peer's identity in `extra.authInfo`, so tool handlers can see
 * who is calling.
 */
import type { IncomingMessage } from 'node:http';
import type { WebSocket } from 'ws';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import type { MessageExtraInfo } from '@modelcontextprotocol/sdk/types.js';
import { McpE2eError } from '../errors.js';
import type { Handshake } from '../handshake/handshake.js';
import type { NodeIdentity, PeerIdentity } from '../identity/identity.js';
import { secureRandom } from '../crypto/primitives.js';
import { WebSocketChannel } from './channel.js';
import type { ResolvedConnectionLimits } from './limits.js';
import type { ConnectionMode } from './subprotocol.js';

/** What `extra.authInfo.extra` holds on an encrypted connection. Public data only. */
export interface McpE2eAuthExtra {
  /** The caller's verified identity (node id, public key, fingerprint). */
  peer: PeerIdentity;
  /** The mcp-e2e session id, 32 hex digits. */
  e2eSessionId: string;
  framing: 'json' | 'binary';
  signatures: boolean;
}

/** Read the mcp-e2e caller identity from a request handler's `extra` (undefined on plaintext connections). */
export function peerFromAuthInfo(authInfo: AuthInfo | undefined): PeerIdentity | undefined {
  const extra = authInfo?.extra as Partial<McpE2eAuthExtra> | undefined;
  return extra?.peer;
}

/** Server-side transport of one client connection. Created only by `EncryptedWebSocketServer`. */
export class EncryptedWebSocketServerTransport extends WebSocketChannel implements Transport {
  /** `encrypted` or `plaintext` (only when the server allows plaintext). */
  readonly mode: ConnectionMode;
  /** The client's IP address as seen by the socket. */
  readonly remoteAddress: string | undefined;
  /**
   * The SDK's session id for this connection: the mcp-e2e session id (32 hex
   * digits) when encrypted, else a random one. Handlers see it as `extra.sessionId`.
   */
  sessionId?: string;

  readonly #headers: IncomingMessage['headers'];
  readonly #ws: WebSocket;
  #extra: MessageExtraInfo | undefined;
  #started = false;

  /** @internal Use `EncryptedWebSocketServer`. */
  constructor(ws: WebSocket, request: IncomingMessage, mode: ConnectionMode, limits: ResolvedConnectionLimits) {
    super(limits);
    this.mode = mode;
    this.remoteAddress = request.socket.remoteAddress;
    this.#headers = request.headers;
    this.#ws = ws;
    this.adoptSocket(ws);
  }

  /** @internal Run the responder handshake (encrypted mode; `handshake` and `identity` are ignored in plaintext mode). The server calls this once. */
  async accept(
    handshake: Handshake | undefined,
    identity: NodeIdentity | undefined,
    verifyPeer: (peer: PeerIdentity) => void,
    admission: { step1TimeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<void> {
    if (this.mode === 'encrypted') {
      if (!handshake || !identity) throw new TypeError('"handshake" and "identity" expected a responder Handshake and its identity in encrypted mode');
      await this.secure(handshake, identity, verifyPeer, this.limits.handshakeTimeoutMs, {
        ...(admission.step1TimeoutMs !== undefined ? { firstMessageTimeoutMs: admission.step1TimeoutMs } : {}),
        ...(admission.signal ? { signal: admission.signal } : {}),
      });
    } else {
      this.openPlaintext();
    }
    this.sessionId = this.e2eSessionId ?? secureRandom(16).toString('hex');
  }

  /**
   * Begin delivering messages to `onmessage`. Messages the client sent
   * before this wait (the socket is paused when too many wait).
   * @throws Error when called twice.
   * @throws McpE2eError `ERR_CONNECTION_CLOSED` when the client is already gone.
   */
  async start(): Promise<void> {
    if (this.#started) {
      throw new Error('EncryptedWebSocketServerTransport already started! If using Server class, note that connect() calls start() automatically.');
    }
    this.#started = true;
    if (this.closed) throw new McpE2eError('ERR_CONNECTION_CLOSED', 'the client disconnected before start()');
    this.deliver();
  }

  /** Built for the first message delivered (an idle connection need not hold it), then shared by all. */
  protected override messageExtra(): MessageExtraInfo | undefined {
    return (this.#extra ??= this.#buildExtra());
  }

  #buildExtra(): MessageExtraInfo {
    const requestInfo = { headers: this.#headers };
    const peer = this.peer;
    const negotiated = this.negotiated;
    if (!peer || !negotiated) return { requestInfo };
    const extra: McpE2eAuthExtra = { peer, e2eSessionId: this.e2eSessionId!, ...negotiated };
    // The SDK's AuthInfo is shaped for OAuth. We authenticate by key, not by
    // bearer token: `token` stays empty (never put a secret here; handlers
    // may log it), `clientId` is the node id, and no scopes are implied.
    const authInfo: AuthInfo = { token: '', clientId: peer.nodeId, scopes: [], extra: extra as unknown as Record<string, unknown> };
    return { requestInfo, authInfo };
  }

  /** @internal The underlying socket, for the server's bookkeeping. */
  get socket(): WebSocket {
    return this.#ws;
  }
}
