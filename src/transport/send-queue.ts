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
 */
import { WebSocket } from 'ws';
import { McpE2eError } from '../errors.js';
import type { WireFrame } from '../session/session.js';

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
  #queue: Pending[] = [];
  #queuedBytes = 0;
  /** Frames handed to ws whose write callback has not fired: the wake-ups we can count on. */
  #inFlight = 0;
  #failure: McpE2eError | undefined;

  constructor(ws: WebSocket, options: SendQueueOptions) {
    this.#ws = ws;
    this.#options = options;
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

  #pump(): void {
    const ws = this.#ws;
    while (this.#queue.length > 0) {
      if (ws.readyState !== WebSocket.OPEN) {
        this.fail(new McpE2eError('ERR_CONNECTION_CLOSED', 'the connection closed before the message was sent'));
        return;
      }
      // Wait for a write callback to wake us; if none is pending (the buffered
      // bytes are not ours), send anyway rather than stall forever.
      if (ws.bufferedAmount >= this.#options.highWaterMarkBytes && this.#inFlight > 0) return;
      const p = this.#queue.shift()!;
      this.#queuedBytes -= p.bytes;
      this.#inFlight++;
      ws.send(p.frame, { binary: typeof p.frame !== 'string' && !p.text }, (err) => {
        this.#inFlight--;
        if (err) this.fail(new McpE2eError('ERR_CONNECTION_CLOSED', `socket write failed: ${err.message}`, { cause: err }));
        else this.#pump();
      });
      p.resolve();
    }
  }
}
