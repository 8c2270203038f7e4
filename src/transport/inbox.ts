/**
 * The single consumer of a socket's 'message' events. A connection changes
 * hands twice: the handshake driver reads the handshake messages, then the
 * channel reads session frames, possibly only after the application calls
 * `start()`. `ws` emits messages synchronously, several per TCP chunk, so a
 * frame arriving between two owners would be lost with plain listeners. The
 * inbox queues frames while nobody holds it, pauses the socket when the queue
 * reaches its cap (flow control, not an error), and replays the queue in
 * order to the next handler.
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
  #queue: Array<{ data: Buffer; isBinary: boolean }> = [];
  #handler: FrameHandler | undefined;
  #paused = false;

  constructor(ws: WebSocket, maxQueued: number) {
    this.#ws = ws;
    this.#maxQueued = maxQueued;
    ws.on('message', (data, isBinary) => this.#push(toBuffer(data), isBinary));
  }

  /** Number of frames waiting for a handler. */
  get queued(): number {
    return this.#queue.length;
  }

  /**
   * Hand the inbox to `handler` (queued frames are delivered first, in
   * order), or take it back with `undefined` so later frames queue. A
   * handler may call this from inside itself; delivery stops at once.
   */
  setHandler(handler: FrameHandler | undefined): void {
    this.#handler = handler;
    while (this.#queue.length > 0 && this.#handler === handler && handler) {
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
    this.#queue = [];
  }

  #push(data: Buffer, isBinary: boolean): void {
    if (this.#handler && this.#queue.length === 0) {
      this.#handler(data, isBinary);
      return;
    }
    this.#queue.push({ data, isBinary });
    // Frames already read from the socket still arrive after pause(); the
    // queue exceeds the cap by at most those.
    if (this.#queue.length >= this.#maxQueued && !this.#paused) {
      this.#paused = true;
      this.#ws.pause();
    }
  }
}
