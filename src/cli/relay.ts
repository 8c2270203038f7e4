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
import type { Readable, Writable } from 'node:stream';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

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
  readonly #source: Pick<Readable, 'pause' | 'resume'>;
  readonly #onFailure: (err: Error, channel: RelayChannel) => void;
  /** The latest send that found the queue blocked; the source resumes when it settles. */
  #last: Promise<void> | undefined;

  /** @param onFailure a send was refused or failed: the message is lost, so the caller ends the connection. */
  constructor(source: Pick<Readable, 'pause' | 'resume'>, onFailure: (err: Error, channel: RelayChannel) => void) {
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
