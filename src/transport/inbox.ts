/**
 * The single consumer of a socket's 'message' events. A connection changes
 * hands twice: the handshake driver reads the handshake messages, then the
 * channel reads session frames, possibly only after the application calls
 * `start()`. `ws` emits messages synchronously, several per TCP chunk, so a
 * frame arriving between two owners would be lost with plain listeners. The
 * inbox queues frames while nobody holds it, pauses the socket when the queue
 * reaches its cap (flow control, not an error), and replays the queue in
 * order to the next handler. Its owner routes the socket's 'message' events
 * to `receive()` (from a listener shared by all its connections: one of our
 * own would add a closure and a context to every connection).
 */
import type { WebSocket, RawData } from 'ws';

/** Receives one WebSocket message: its bytes, and whether it came in a binary frame. */
export type FrameHandler = (data: Buffer, isBinary: boolean) => void;

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

export class Inbox {
  readonly #ws: WebSocket;
  readonly #maxQueued: number;
  /** Frames waiting for a handler; made by the first frame that has to wait. */
  #queue: Array<{ data: Buffer; isBinary: boolean }> | undefined;
  #handler: FrameHandler | undefined;
  #paused = false;

  /** `ws` is paused and resumed for flow control; its messages must all go to `receive()`. */
  constructor(ws: WebSocket, maxQueued: number) {
    this.#ws = ws;
    this.#maxQueued = maxQueued;
  }

  /** Number of frames waiting for a handler. */
  get queued(): number {
    return this.#queue?.length ?? 0;
  }

  /** One 'message' event of the socket. */
  receive(data: RawData, isBinary: boolean): void {
    this.#push(toBuffer(data), isBinary);
  }

  /**
   * Hand the inbox to `handler` (queued frames are delivered first, in
   * order), or take it back with `undefined` so later frames queue. A
   * handler may call this from inside itself; delivery stops at once.
   */
  setHandler(handler: FrameHandler | undefined): void {
    this.#handler = handler;
    // Re-read each time: a handler may clear() the queue or hand the inbox on.
    while (this.#queue && this.#queue.length > 0 && this.#handler === handler && handler) {
      const frame = this.#queue.shift()!;
      handler(frame.data, frame.isBinary);
    }
    if (this.#handler && this.#paused) {
      this.#paused = false;
      this.#ws.resume();
    }
  }

  /** Drop queued frames (the connection is going away). */
  clear(): void {
    this.#queue = undefined;
  }

  #push(data: Buffer, isBinary: boolean): void {
    if (this.#handler && !this.#queue?.length) {
      this.#handler(data, isBinary);
      return;
    }
    const queue = (this.#queue ??= []);
    queue.push({ data, isBinary });
    // Frames already read from the socket still arrive after pause(); the
    // queue exceeds the cap by at most those.
    if (queue.length >= this.#maxQueued && !this.#paused) {
      this.#paused = true;
      this.#ws.pause();
    }
  }
}
