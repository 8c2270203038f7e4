/**
 * Backpressure for the two relays (`serve`: connection ↔ child process;
 * `connect`: MCP host's stdio ↔ connection), in both directions: nothing
 * buffers without bound, and a message is delivered or the connection fails
 * loudly, never dropped.
 *
 * - Stream → connection: while the connection's sends wait for the socket
 *   (`sendBlocked`), the source stream is paused; it resumes once the last
 *   waiting send has been handed to the socket. A send that fails all the
 *   same (too large, buffer full) is handed to `onFailure`, which ends the
 *   connection.
 * - Connection → stream: when the stream's `write()` returns false, the
 *   connection stops receiving (`pauseReceiving`: the socket is not read,
 *   the peer's TCP window closes) until the stream's `'drain'`.
 */
import type { Writable } from 'node:stream';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

/** A JSON-RPC message as the relays see it: an object, checked no further than they need. */
export type Message = Record<string, unknown>;

/**
 * JSON-RPC error code of the responses the relays make up themselves (a
 * request lost with a link, a server process that died, a connection
 * refused): the implementation-defined server error range.
 */
export const RELAY_ERROR_CODE = -32000;

const hasId = (m: Message) => typeof m.id === 'string' || typeof m.id === 'number';
export const isRequest = (m: Message) => typeof m.method === 'string' && hasId(m);
export const isResponse = (m: Message) => m.method === undefined && hasId(m) && ('result' in m || 'error' in m);
/** Map key of a JSON-RPC id (1 and "1" are different ids). */
export const idKey = (m: Message) => JSON.stringify(m.id);

/** A JSON-RPC error response to request `id` from the relay itself; `message` is one line a person can act on. */
export function relayError(id: unknown, message: string): Message {
  return { jsonrpc: '2.0', id, error: { code: RELAY_ERROR_CODE, message } };
}

/**
 * Requests relayed one way and not yet answered the other way. A relay
 * answers each of them itself when the side that should have answered is
 * gone, so that no MCP client waits for an answer that cannot come.
 */
export class PendingRequests {
  readonly #ids = new Map<string, unknown>();

  /** Note `message` if it is a request. */
  sent(message: Message): void {
    if (isRequest(message)) this.#ids.set(idKey(message), message.id);
  }

  /** Forget the request `message` answers, if it is a response. @returns whether it answered a pending request. */
  answered(message: Message): boolean {
    return isResponse(message) && this.#ids.delete(idKey(message));
  }

  get size(): number {
    return this.#ids.size;
  }

  /** The ids of every pending request, forgotten from now on. */
  take(): unknown[] {
    const ids = [...this.#ids.values()];
    this.#ids.clear();
    return ids;
  }
}

/** What the relays need of a transport (client and server transports both have it). */
export interface RelayChannel {
  send(message: JSONRPCMessage): Promise<void>;
  close(): Promise<void>;
  readonly closed: boolean;
  readonly sendBlocked: boolean;
  readonly receivingPaused: boolean;
  pauseReceiving(): void;
  resumeReceiving(): void;
}

/** Sends from one source stream, pausing it while sends wait. */
export class PacedSender {
  readonly #source: { pause(): unknown; resume(): unknown };
  readonly #onFailure: (err: Error, channel: RelayChannel) => void;
  /** The latest send that found the queue blocked; the source resumes when it settles. */
  #last: Promise<void> | undefined;

  /** @param onFailure a send was refused or failed: the message is lost, so the caller ends the connection. */
  constructor(source: { pause(): unknown; resume(): unknown }, onFailure: (err: Error, channel: RelayChannel) => void) {
    this.#source = source;
    this.#onFailure = onFailure;
  }

  send(channel: RelayChannel, message: unknown): void {
    const sent = channel.send(message as JSONRPCMessage);
    sent.catch((err: Error) => this.#onFailure(err, channel));
    if (!channel.sendBlocked) return;
    this.#source.pause();
    const mine = sent.then(
      () => {},
      () => {},
    );
    this.#last = mine;
    void mine.then(() => {
      // Sends are FIFO: once the latest blocked one is out, so is every earlier one.
      if (this.#last !== mine) return;
      this.#last = undefined;
      this.#source.resume();
    });
  }
}

/** Write `message` as one JSON line to `out`; if `out` is full, `channel` stops receiving until it drains. */
export function writeLine(out: Writable, message: unknown, channel: RelayChannel): void {
  if (out.write(JSON.stringify(message) + '\n')) return;
  // Already paused: a 'drain' listener is waiting.
  if (channel.receivingPaused) return;
  channel.pauseReceiving();
  out.once('drain', () => channel.resumeReceiving());
}
