/**
 * The seed's client API (SEED.md, "Client-Side Usage"), in TypeScript:
 *
 *   const transport = new EncryptedWebSocketTransport(url, identity, { enableEncryption: true, expectedPeer });
 *   await transport.connect();
 *   await transport.send('{"jsonrpc": "2.0", "id": 1, "method": "test"}');
 *   const response = await transport.receive();
 *
 * A thin adapter over `EncryptedWebSocketClientTransport` (the MCP SDK
 * transport, which does all the protocol work): `receive()` pulls from a
 * bounded queue that pauses the socket when the caller is behind.
 */
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { McpE2eError } from '../errors.js';
import type { NodeIdentity, PeerIdentity } from '../identity/identity.js';
import type { Framing } from '../protocol.js';
import { EncryptedWebSocketClientTransport, type EncryptedWebSocketClientTransportOptions } from '../transport/client.js';
import type { ConnectionMode } from '../transport/subprotocol.js';
import { toJsonRpcMessage, type OutgoingMessage } from './message.js';
import { checkMaxQueuedMessages, ReceiveQueue } from './receive-queue.js';

function notConnected(): McpE2eError {
  return new McpE2eError('ERR_CONNECTION_CLOSED', 'not connected: call connect() first');
}

/**
 * Options of `EncryptedWebSocketTransport`: those of
 * `EncryptedWebSocketClientTransport` (`enableEncryption`, default true; a
 * way to authenticate the server: `expectedPeer`, `trust` or `allowAnyPeer`;
 * `signatures`, `framings`, limits), the identity being the second argument,
 * plus the receive queue's bound.
 */
export interface EncryptedWebSocketTransportOptions extends Omit<EncryptedWebSocketClientTransportOptions, 'identity'> {
  /**
   * Most messages held for `receive()` before the socket is paused (the
   * server's sends then wait). Memory held is at most this many messages of
   * up to `maxMessageBytes` each. Default 16, at most 1024.
   */
  maxQueuedMessages?: number;
}

/**
 * A client connection with the seed's shape: `connect()`, `send()`,
 * `receive()` (or `for await (const message of transport)`), `close()`.
 * Errors are `McpE2eError`s with today's codes. For the MCP SDK's `Client`,
 * use `EncryptedWebSocketClientTransport` instead.
 *
 * A server that refuses our identity can only say so after the handshake:
 * `connect()` has then resolved, and `receive()` rejects with `ERR_PEER_REJECTED`.
 */
export class EncryptedWebSocketTransport implements AsyncIterable<JSONRPCMessage> {
  readonly #transport: EncryptedWebSocketClientTransport;
  readonly #queue: ReceiveQueue;
  #connecting = false;

  /**
   * @param url `ws://` or `wss://` URL of the server.
   * @param identity our identity; required unless `enableEncryption` is false (then unused).
   * @throws TypeError for an unknown option (named), `identity` given as an
   *   option, and everything `EncryptedWebSocketClientTransport` refuses
   *   (no way to authenticate the server, a non-WebSocket URL, ...).
   * @throws RangeError for out-of-range limits or `maxQueuedMessages`.
   * @throws McpE2eError `ERR_INVALID_NODE_ID` for a malformed `expectedPeer`.
   */
  constructor(url: string | URL, identity: NodeIdentity | undefined, options: EncryptedWebSocketTransportOptions = {}) {
    if (typeof options !== 'object' || options === null) throw new TypeError('EncryptedWebSocketTransport expected an options object');
    if ('identity' in options) throw new TypeError('"identity" is the second argument of EncryptedWebSocketTransport, not an option');
    const { maxQueuedMessages, ...transportOptions } = options;
    const capacity = checkMaxQueuedMessages(maxQueuedMessages);
    this.#transport = new EncryptedWebSocketClientTransport(url, identity === undefined ? transportOptions : { ...transportOptions, identity });
    this.#queue = new ReceiveQueue(this.#transport, capacity);
  }

  /** The server URL. */
  get url(): URL {
    return this.#transport.url;
  }

  /** `encrypted` or `plaintext`, fixed by `enableEncryption`. */
  get mode(): ConnectionMode {
    return this.#transport.mode;
  }

  /** True once an encrypted session is established. */
  get encrypted(): boolean {
    return this.#transport.encrypted;
  }

  /** The server's verified identity (encrypted mode, after `connect()`). */
  get peer(): PeerIdentity | undefined {
    return this.#transport.peer;
  }

  /** The mcp-e2e session id (32 hex digits), unique per connection; undefined in plaintext mode. */
  get e2eSessionId(): string | undefined {
    return this.#transport.e2eSessionId;
  }

  /** Framing and per-message signatures negotiated by the handshake (encrypted mode). */
  get negotiated(): { framing: Framing; signatures: boolean } | undefined {
    return this.#transport.negotiated;
  }

  /** Messages received and waiting for `receive()`. */
  get queued(): number {
    return this.#queue.queued;
  }

  /** True once the connection is closed. */
  get closed(): boolean {
    return this.#transport.closed;
  }

  /**
   * Connect, and (encrypted mode) run the handshake and check the server's
   * identity. Resolves when messages can flow.
   * @throws Error when called twice.
   * @throws McpE2eError as `EncryptedWebSocketClientTransport.start()`:
   *   `ERR_CONNECT_FAILED`, `ERR_SUBPROTOCOL`, `ERR_HANDSHAKE_*`,
   *   `ERR_PEER_KEY_CHANGED`, `ERR_PLAINTEXT_REFUSED`, ...
   */
  async connect(): Promise<void> {
    if (this.#connecting) throw new Error('EncryptedWebSocketTransport: connect() was already called');
    this.#connecting = true;
    await this.#transport.start();
  }

  /**
   * Send one JSON-RPC 2.0 message, given as an object or as its JSON text.
   * Resolves when it is handed to the socket (waiting while the socket is
   * above its high-water mark).
   * @throws TypeError (as a rejection) when `message` is not a JSON-RPC 2.0 message.
   * @throws McpE2eError `ERR_CONNECTION_CLOSED` (not connected, or closed),
   *   `ERR_FRAME_TOO_LARGE`, `ERR_SEND_BUFFER_FULL` (the connection stays open for both).
   */
  async send(message: OutgoingMessage): Promise<void> {
    await this.#transport.send(toJsonRpcMessage(message));
  }

  /**
   * The next message from the server, in order; waits for one. Messages that
   * arrived before the server closed are still returned.
   * @throws McpE2eError `ERR_CONNECTION_CLOSED` before `connect()`, after
   *   `close()`, and after an orderly close once every message was taken;
   *   otherwise the error that ended the connection (`ERR_PEER_REJECTED`,
   *   `ERR_FRAME_DECRYPT`, `ERR_IDLE_TIMEOUT`, ...).
   */
  receive(): Promise<JSONRPCMessage> {
    if (!this.#connecting) return Promise.reject(notConnected());
    return this.#queue.next();
  }

  /** Every message until the connection closes, as `receive()` gives them; an orderly close ends the loop. */
  async *[Symbol.asyncIterator](): AsyncGenerator<JSONRPCMessage, void, undefined> {
    if (!this.#connecting) throw notConnected();
    yield* this.#queue;
  }

  /**
   * Close the connection (code 1000) after everything `send()` accepted has
   * gone out. Messages not yet taken with `receive()` are dropped; pending
   * and later `receive()`s reject with `ERR_CONNECTION_CLOSED`. Idempotent.
   */
  async close(): Promise<void> {
    this.#queue.discard();
    await this.#transport.close();
  }
}
