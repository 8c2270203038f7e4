/**
 * Outgoing frames with backpressure. The SDK's v1 WebSocket transport writes
 * without looking at the socket, so a fast producer grows memory without
 * bound. Here a frame is handed to `ws` only while the socket buffers less
 * than the high-water mark; the rest wait in a bounded queue, and `send()`
 * resolves when its frame has been handed to the socket.
 *
 * The room check happens before the frame is built: a sealed frame consumes a
 * session counter, so a frame refused after sealing would leave a gap the
 * peer treats as a dropped frame.
 *
 * Write coalescing: the first frame of an event-loop turn corks the socket
 * and a `process.nextTick` uncorks it, so all frames sent in one turn (e.g.
 * the replies to every request of one received TCP chunk, delivered one per
 * microtask) leave in one `writev` instead of one write each. A turn that
 * sends more than COALESCE_FLUSH_BYTES flushes every time that much has
 * gathered: the peer can start on the first replies while we seal the rest
 * (one write for the whole turn would make the two ends take turns instead
 * of working in parallel). Frames keep their order (corking only delays the
 * flush) and backpressure is unchanged: corked bytes count in
 * `ws.bufferedAmount`, and their write callbacks fire after the flush.
 */
import { WebSocket } from 'ws';
import { McpE2eError } from '../errors.js';
import type { WireFrame } from '../session/session.js';
import { socketOf, type CorkableSocket } from './ws-internals.js';

/** Shared by every send that went straight to the socket. */
const RESOLVED: Promise<void> = Promise.resolve();
const BINARY_FRAME = Object.freeze({ binary: true });
const TEXT_FRAME = Object.freeze({ binary: false });
/**
 * Flush a corked socket once this many frame bytes have gathered (see the
 * header). Measured with 64 pipelined 1 KB and 100 B requests on 2 cores:
 * 4 KiB gave the most messages per second; 16 KiB and more let the two ends
 * fall into taking turns, and 1.5 KiB saved too few writes.
 */
export const COALESCE_FLUSH_BYTES = 4 * 1024;

interface Pending {
  frame: WireFrame;
  /** Send as a text frame even though `frame` is a Buffer (plaintext MCP). */
  text: boolean;
  bytes: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

export interface SendQueueOptions {
  /** Frames wait while `ws.bufferedAmount` is at least this (bytes). */
  highWaterMarkBytes: number;
  /** Most bytes waiting in the queue; a frame is always accepted when the queue is empty. */
  maxBufferBytes: number;
}

export class SendQueue {
  readonly #ws: WebSocket;
  readonly #options: SendQueueOptions;
  readonly #socket: CorkableSocket | undefined;
  #corked = false;
  /** Frame bytes written since the socket was corked. */
  #corkedBytes = 0;
  #uncorkScheduled = false;
  #queue: Pending[] = [];
  #queuedBytes = 0;
  /** Frames handed to ws whose write callback has not fired: the wake-ups we can count on. */
  #inFlight = 0;
  #failure: McpE2eError | undefined;

  constructor(ws: WebSocket, options: SendQueueOptions) {
    this.#ws = ws;
    this.#options = options;
    this.#socket = socketOf(ws);
  }

  /** Bytes of frames waiting behind the high-water mark. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /**
   * Build a frame with `build` (only once there is room for about
   * `estimatedBytes`) and send it in order.
   * @param text send a Buffer as a text frame (plaintext MCP); strings are always text.
   * @returns resolves when the frame is handed to the socket.
   * @throws McpE2eError `ERR_SEND_BUFFER_FULL` (nothing was built; the
   *   connection stays open), the failure the queue was closed with, or what
   *   `build` throws.
   */
  push(estimatedBytes: number, build: () => WireFrame, text = false): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#queue.length > 0 && this.#queuedBytes + estimatedBytes > this.#options.maxBufferBytes) {
      return Promise.reject(
        new McpE2eError(
          'ERR_SEND_BUFFER_FULL',
          `send buffer full: ${this.#queuedBytes} bytes queued, limit ${this.#options.maxBufferBytes} bytes; wait for earlier sends to resolve`,
        ),
      );
    }
    let frame: WireFrame;
    try {
      frame = build();
    } catch (err) {
      return Promise.reject(err);
    }
    // The common case: nothing waits and there is room, so the frame goes
    // to the socket now, with no Promise or queue entry of its own.
    if (this.#queue.length === 0 && this.#ws.readyState === WebSocket.OPEN && this.#hasRoom()) {
      this.#write(frame, text);
      return RESOLVED;
    }
    // JSON-framed sessions produce ASCII strings, so length is the byte count.
    const bytes = frame.length;
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ frame, text, bytes, resolve, reject });
      this.#queuedBytes += bytes;
      this.#pump();
    });
  }

  /** Reject everything queued and every later push with `err`. Idempotent. */
  fail(err: McpE2eError): void {
    if (!this.#failure) this.#failure = err;
    const queue = this.#queue;
    this.#queue = [];
    this.#queuedBytes = 0;
    for (const p of queue) p.reject(this.#failure);
  }

  /**
   * Below the high-water mark; or above it with no write callback of ours
   * pending (the buffered bytes are not ours), where we send anyway rather
   * than stall forever.
   */
  #hasRoom(): boolean {
    return this.#ws.bufferedAmount < this.#options.highWaterMarkBytes || this.#inFlight === 0;
  }

  #pump(): void {
    const ws = this.#ws;
    while (this.#queue.length > 0) {
      if (ws.readyState !== WebSocket.OPEN) {
        this.fail(new McpE2eError('ERR_CONNECTION_CLOSED', 'the connection closed before the message was sent'));
        return;
      }
      // Wait for a write callback to wake us.
      if (!this.#hasRoom()) return;
      const p = this.#queue.shift()!;
      this.#queuedBytes -= p.bytes;
      this.#write(p.frame, p.text);
      p.resolve();
    }
  }

  #write(frame: WireFrame, text: boolean): void {
    const socket = this.#socket;
    if (!this.#corked && socket) {
      this.#corked = true;
      socket.cork();
      if (!this.#uncorkScheduled) {
        this.#uncorkScheduled = true;
        process.nextTick(this.#endOfTurn);
      }
    }
    this.#inFlight++;
    this.#ws.send(frame, typeof frame !== 'string' && !text ? BINARY_FRAME : TEXT_FRAME, this.#onWritten);
    if (this.#corked) {
      this.#corkedBytes += frame.length;
      if (this.#corkedBytes >= COALESCE_FLUSH_BYTES) this.#flush();
    }
  }

  /** Write out every frame gathered since the cork, in one write. */
  #flush(): void {
    this.#corked = false;
    this.#corkedBytes = 0;
    this.#socket!.uncork();
  }

  #endOfTurn = (): void => {
    this.#uncorkScheduled = false;
    if (this.#corked) this.#flush();
  };

  #onWritten = (err?: Error | null): void => {
    this.#inFlight--;
    if (err) this.fail(new McpE2eError('ERR_CONNECTION_CLOSED', `socket write failed: ${err.message}`, { cause: err }));
    else if (this.#queue.length > 0) this.#pump();
  };
}
