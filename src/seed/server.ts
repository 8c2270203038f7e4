/**
 * The seed's server API (SEED.md, "Server-Side Usage"), in TypeScript:
 *
 *   const server = new EncryptedMessageServer(identity, { messageHandler: handleMessage, enableEncryption: true, allowAnyPeer: true });
 *   await server.start('localhost', 8000);
 *
 * A thin adapter over `EncryptedWebSocketServer`, which does admission,
 * handshake, trust and the per-client sessions. Each connection's messages
 * go to the handler one at a time, in order; a handler's return value is
 * sent back as the reply. While a handler runs, later messages wait in a
 * bounded queue, and beyond it on the client's side of the socket
 * (backpressure: the client's sends wait, nothing is dropped).
 */
import type { AddressInfo } from 'node:net';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { isMcpE2eError } from '../errors.js';
import { NodeIdentity, type PeerIdentity } from '../identity/identity.js';
import { EncryptedWebSocketServer, type ConnectionInfo, type EncryptedWebSocketServerOptions } from '../transport/server.js';
import type { EncryptedWebSocketServerTransport } from '../transport/server-transport.js';
import { internalErrorResponse, requestId, toJsonRpcMessage, type OutgoingMessage } from './message.js';
import { checkMaxQueuedMessages, ReceiveQueue } from './receive-queue.js';

/**
 * Handles one message of one client. `peer` is the client's verified
 * identity (undefined on a plaintext connection). What it returns (a JSON-RPC
 * message or its JSON text), if anything, is sent to that client as the reply.
 * If it throws (or returns something that is not JSON-RPC, or a reply too
 * large to send), the error goes to `onError` and a request is answered with
 * JSON-RPC error -32603 "Internal error" (the detail is not sent).
 */
export type MessageHandler = (
  message: JSONRPCMessage,
  peer: PeerIdentity | undefined,
) => OutgoingMessage | undefined | void | Promise<OutgoingMessage | undefined | void>;

/**
 * Options of `EncryptedMessageServer`: those of `EncryptedWebSocketServer`
 * (`enableEncryption`, default true: encrypted sessions only, `false`:
 * plaintext MCP only, `allowPlaintext` for both; who may connect:
 * `allowedPeers`, `trust` or `allowAnyPeer`; `onError`, limits, ...), the
 * identity being the first argument and `messageHandler` taking the place of
 * `onConnection`.
 */
export interface EncryptedMessageServerOptions extends Omit<EncryptedWebSocketServerOptions, 'identity' | 'onConnection'> {
  /** Called with every message of every client; see `MessageHandler`. */
  messageHandler: MessageHandler;
  /**
   * Per connection: most messages waiting for the handler before the socket
   * is paused. Default 16, at most 1024.
   */
  maxQueuedMessages?: number;
}

/**
 * A server with the seed's shape: a message handler instead of an MCP
 * server per connection, `start(host, port)` / `stop()`. For the MCP SDK's
 * `McpServer`, use `EncryptedWebSocketServer` instead.
 */
export class EncryptedMessageServer {
  readonly #server: EncryptedWebSocketServer;
  readonly #handler: MessageHandler;
  readonly #capacity: number;
  readonly #onError: ((error: Error, info: ConnectionInfo) => void) | undefined;

  /**
   * @param identity the server's identity; required unless `enableEncryption` is false (then unused).
   * @throws TypeError for an unknown option (named), a missing `messageHandler`,
   *   `identity` or `onConnection` given as options, and everything
   *   `EncryptedWebSocketServer` refuses (no way to authorise clients, ...).
   * @throws RangeError for out-of-range limits or `maxQueuedMessages`.
   */
  constructor(identity: NodeIdentity | undefined, options: EncryptedMessageServerOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError('EncryptedMessageServer expected an options object');
    for (const name of ['identity', 'onConnection'] as const) {
      if (name in options) throw new TypeError(`EncryptedMessageServer: "${name}" is not an option (the identity is the first argument, messages go to "messageHandler")`);
    }
    const { messageHandler, maxQueuedMessages, ...serverOptions } = options;
    if (typeof messageHandler !== 'function') throw new TypeError('"messageHandler" expected a function');
    if (identity !== undefined && !(identity instanceof NodeIdentity)) throw new TypeError('"identity" expected a NodeIdentity');
    this.#handler = messageHandler;
    this.#capacity = checkMaxQueuedMessages(maxQueuedMessages);
    this.#onError = serverOptions.onError;
    this.#server = new EncryptedWebSocketServer({
      ...serverOptions,
      ...(identity ? { identity } : {}),
      onConnection: (transport, peer) => this.#accept(transport, peer),
    });
  }

  /** Clients connected now (authenticated, or plaintext). */
  get connections(): number {
    return this.#server.connections.length;
  }

  /** The address the server listens on, once started. */
  address(): AddressInfo | undefined {
    return this.#server.address();
  }

  /**
   * Listen on `host:port`.
   * @param host Default `127.0.0.1` (loopback only; `0.0.0.0` or `::` serves the network).
   * @param port TCP port; 0 picks a free one. Default 0.
   * @returns the bound address.
   * @throws Error when already started or stopped, or when binding fails.
   */
  start(host = '127.0.0.1', port = 0): Promise<AddressInfo> {
    return this.#server.listen(port, host);
  }

  /** Stop accepting and close every connection (code 1000). Resolves when all are closed. Idempotent. */
  stop(): Promise<void> {
    return this.#server.close();
  }

  #report(error: unknown, info: ConnectionInfo): void {
    try {
      this.#onError?.(error instanceof Error ? error : new Error(String(error)), info);
    } catch {
      // A failing error hook must not take the connection down.
    }
  }

  async #accept(transport: EncryptedWebSocketServerTransport, peer: PeerIdentity | undefined): Promise<void> {
    const info: ConnectionInfo = { remoteAddress: transport.remoteAddress, ...(peer ? { peer } : {}) };
    const queue = new ReceiveQueue(transport, this.#capacity, (err) => this.#report(err, info));
    await transport.start();
    void this.#serve(transport, queue, peer, info);
  }

  /** Hand each message to the handler in turn and send its reply; ends with the connection. */
  async #serve(transport: EncryptedWebSocketServerTransport, queue: ReceiveQueue, peer: PeerIdentity | undefined, info: ConnectionInfo): Promise<void> {
    try {
      for await (const message of queue) {
        let reply: JSONRPCMessage | undefined;
        try {
          const returned = await this.#handler(message, peer);
          if (returned !== undefined) reply = toJsonRpcMessage(returned);
        } catch (err) {
          this.#report(err, info);
          reply = this.#failure(message);
        }
        if (reply !== undefined) await this.#send(transport, message, reply, info);
      }
    } catch {
      // The connection ended with an error; the transport reported it (onError).
    }
  }

  /** The reply to `message` when handling it failed: an error response for a request, nothing for the rest. */
  #failure(message: JSONRPCMessage): JSONRPCMessage | undefined {
    const id = requestId(message);
    return id === undefined ? undefined : internalErrorResponse(id);
  }

  async #send(transport: EncryptedWebSocketServerTransport, message: JSONRPCMessage, reply: JSONRPCMessage, info: ConnectionInfo): Promise<void> {
    try {
      await transport.send(reply);
    } catch (err) {
      // A closed connection ends the loop by itself. Anything else (a reply
      // above maxMessageBytes) leaves the connection open: the client must
      // still get an answer, or it would wait for ever.
      if (isMcpE2eError(err, 'ERR_CONNECTION_CLOSED')) return;
      this.#report(err, info);
      const fallback = this.#failure(message);
      if (fallback) await transport.send(fallback).catch((e: unknown) => this.#report(e, info));
    }
  }
}
