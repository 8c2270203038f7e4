/**
 * One encrypted session as the mesh sees it: the authenticated peer, and the
 * control channel (PROTOCOL.md §6.5, §13.6) split by message `type`, so
 * that the record exchange, gossip and later protocols each handle their own
 * kinds on one session without seeing the others' or the MCP messages.
 *
 * Control messages are hints: one that is not an object with a short string
 * `type`, or whose type nobody handles, is counted and dropped, and the
 * session stays up. A handler that throws is reported; the session stays up.
 */
import type { McpE2eError } from '../errors.js';
import type { PeerIdentity } from '../identity/identity.js';
import type { EncryptedWebSocketClientTransport } from '../transport/client.js';
import type { EncryptedWebSocketServerTransport } from '../transport/server-transport.js';

/** A control message: a JSON object with a `type`. */
export interface ControlMessage {
  type: string;
  [member: string]: unknown;
}

/** Longest `type` of a control message, characters. */
export const MAX_CONTROL_TYPE_LENGTH = 64;

export type MeshTransport = EncryptedWebSocketClientTransport | EncryptedWebSocketServerTransport;

/** Counters of a session's control channel. */
export interface ControlCounters {
  /** Messages handed to a handler. */
  handled: number;
  /** Not an object with a string `type` of at most 64 characters. */
  malformed: number;
  /** A `type` nobody handles (a newer protocol, or gossip not enabled). */
  unknown: number;
}

export class MeshSession {
  readonly direction: 'incoming' | 'outgoing';
  /** The address dialled (outgoing sessions). */
  readonly url: string | undefined;
  /** The peer's IP address (incoming sessions). */
  readonly remoteAddress: string | undefined;
  /** Resolves when the session is closed. */
  readonly done: Promise<void>;
  readonly counters: ControlCounters = { handled: 0, malformed: 0, unknown: 0 };
  readonly #transport: MeshTransport;
  readonly #handlers = new Map<string, (message: ControlMessage, session: MeshSession) => void>();
  readonly #onError: (error: Error) => void;

  /**
   * @internal The mesh node wraps each transport before its messages flow
   * (before `start()` on the client side), so no control message is missed.
   */
  constructor(transport: MeshTransport, info: { direction: 'incoming' | 'outgoing'; url?: string; remoteAddress?: string }, onError: (error: Error) => void) {
    this.#transport = transport;
    this.direction = info.direction;
    this.url = info.url;
    this.remoteAddress = info.remoteAddress;
    this.#onError = onError;
    this.done = transport.whenClosed();
    transport.oncontrol = (value) => this.#route(value);
  }

  /** The authenticated peer (defined once the handshake is done, which is when the node shows the session to anyone). */
  get peer(): PeerIdentity {
    return this.#transport.peer!;
  }

  get closed(): boolean {
    return this.#transport.closed;
  }

  /** The mcp-e2e session id (32 hex digits). */
  get sessionId(): string | undefined {
    return this.#transport.e2eSessionId;
  }

  /**
   * Send one control message.
   * @throws McpE2eError as `sendControl` (`ERR_CONNECTION_CLOSED`, `ERR_FRAME_TOO_LARGE`, `ERR_SEND_BUFFER_FULL`).
   */
  send(message: ControlMessage): Promise<void> {
    return this.#transport.sendControl(message);
  }

  /**
   * Handle the control messages of `type`. One handler per type.
   * @returns a function that removes the handler.
   * @throws Error when `type` already has a handler.
   */
  handle(type: string, handler: (message: ControlMessage, session: MeshSession) => void): () => void {
    if (this.#handlers.has(type)) throw new Error(`control messages of type ${JSON.stringify(type)} already have a handler`);
    this.#handlers.set(type, handler);
    return () => {
      if (this.#handlers.get(type) === handler) this.#handlers.delete(type);
    };
  }

  /**
   * End the session: normally (close code 1000), or with `err`, whose code
   * the peer reads in our sealed CLOSE (e.g. `ERR_GOSSIP_CUT_OFF`, 4003).
   */
  close(err?: McpE2eError): Promise<void> {
    if (!err) return this.#transport.close();
    this.#transport.terminate(err);
    return this.done;
  }

  #route(value: unknown): void {
    const type = typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as { type?: unknown }).type : undefined;
    if (typeof type !== 'string' || type.length > MAX_CONTROL_TYPE_LENGTH) {
      this.counters.malformed++;
      return;
    }
    const handler = this.#handlers.get(type);
    if (!handler) {
      this.counters.unknown++;
      return;
    }
    this.counters.handled++;
    try {
      handler(value as ControlMessage, this);
    } catch (err) {
      this.#onError(err instanceof Error ? err : new Error(String(err)));
    }
  }
}
