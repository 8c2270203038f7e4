/**
 * Outgoing messages, packed into frames, with backpressure.
 *
 * Records of several messages (PROTOCOL.md §6.5): every message sent in one
 * event-loop turn joins the open batch, and the batch is sealed into one
 * frame (one AEAD operation, one signature, one WebSocket message) at the
 * end of the turn (`process.nextTick`, before any I/O: no wait is added for
 * a lone message), or as soon as it holds `frameTargetBytes` or
 * `maxMessagesPerFrame` messages, so the peer can start on the first ones
 * while later ones are still being produced. A message larger than the
 * target goes alone. Plaintext MCP packs one message per frame.
 *
 * Backpressure: a message joins the batch only while the socket (plus the
 * open batch) holds less than the high-water mark; otherwise it waits in a
 * bounded queue, and `push()` resolves when it has joined a frame. Waiting
 * messages are not sealed yet: a sealed frame consumes a session counter,
 * so a message refused after sealing would leave a gap the peer takes for a
 * dropped record.
 *
 * Write coalescing: the first frame of a turn corks the socket and the end
 * of the turn uncorks it, so every frame of a turn leaves in one `writev`; a
 * turn that writes more than COALESCE_FLUSH_BYTES flushes each time that
 * much has gathered (one write for a whole busy turn would make the two ends
 * take turns instead of working in parallel). Corked bytes count in
 * `ws.bufferedAmount`, and their write callbacks fire after the flush.
 */
import { WebSocket } from 'ws';
import { McpE2eError } from '../errors.js';
import type { WireFrame } from '../session/session.js';
import type { MessageContentType } from '../protocol.js';
import { socketOf, type CorkableSocket } from './ws-internals.js';

/** Shared by every push that joined a batch at once. */
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
/**
 * Default `frameTargetBytes` of encrypted sessions: a batch is sealed once
 * its messages reach this size (TLS's largest record). Every record costs one
 * AEAD set-up and, in signed sessions, one signature and one verification,
 * so fuller records are cheaper per message. Measured with 64 pipelined 1 KB
 * requests, the same run for each (`node dist/bench/run.js --modes
 * ws,e2e-binary-signed,e2e-binary,e2e-json-signed --figures throughput,rtt
 * --sizes 1KB --reps 2`): × plain ws, binary + sig 0.30x (4 KiB), 0.34x
 * (8 KiB), 0.63x (16 KiB), 0.75x (32 KiB); binary 0.84x, 0.78x, 1.13x, 1.17x;
 * the round trip of a lone message unchanged (it never waits for a batch).
 * 32 KiB gains little more and makes a receiver wait for more bytes before
 * the first message of a record.
 */
export const RECORD_TARGET_BYTES = 16 * 1024;

/** One message to send. */
export interface OutgoingMessage {
  /** The JSON text. */
  text: string;
  contentType: MessageContentType;
  /** Its UTF-8 size (exact up to `frameTargetBytes`; above, an estimate used for accounting only). */
  bytes: number;
}

/** Packs messages into one frame (seals a record, or writes a plaintext text frame). May throw. */
export type FramePacker = (messages: readonly OutgoingMessage[]) => WireFrame;

export interface SendQueueOptions {
  /** Messages wait while the socket and the open batch hold at least this (bytes). */
  highWaterMarkBytes: number;
  /** Most bytes waiting behind the high-water mark; a message is always accepted when none waits. */
  maxBufferBytes: number;
  /** Most messages per frame. 1 for plaintext MCP. */
  maxMessagesPerFrame: number;
  /** A batch is packed once it holds this many bytes (messages and their per-message overhead). */
  frameTargetBytes: number;
  /** Bytes a frame adds per message (5 for a record's entry header, 0 for plaintext). */
  perMessageOverheadBytes: number;
}

interface Waiting {
  message: OutgoingMessage;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class SendQueue {
  readonly #ws: WebSocket;
  readonly #options: SendQueueOptions;
  readonly #pack: FramePacker;
  readonly #socket: CorkableSocket | undefined;
  /** Accepted messages, packed at the end of the turn (or when full). */
  #batch: OutgoingMessage[] = [];
  #batchBytes = 0;
  #corked = false;
  /** Frame bytes written since the socket was corked. */
  #corkedBytes = 0;
  #turnScheduled = false;
  #waiting: Waiting[] = [];
  #waitingBytes = 0;
  /** Frames handed to ws whose write callback has not fired: the wake-ups we can count on. */
  #inFlight = 0;
  #failure: McpE2eError | (() => McpE2eError) | undefined;

  constructor(ws: WebSocket, options: SendQueueOptions, pack: FramePacker) {
    this.#ws = ws;
    this.#options = options;
    this.#pack = pack;
    this.#socket = socketOf(ws);
  }

  /** Bytes of messages waiting behind the high-water mark. */
  get queuedBytes(): number {
    return this.#waitingBytes;
  }

  /**
   * Send `message` in order.
   * @returns resolves when the message has joined a frame (at once while
   *   the socket has room).
   * @throws McpE2eError `ERR_SEND_BUFFER_FULL` (nothing was queued; the
   *   connection stays open), or the failure the queue was closed with.
   */
  push(message: OutgoingMessage): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failureError());
    if (this.#waiting.length === 0 && this.#hasRoom()) {
      this.#join(message);
      return RESOLVED;
    }
    if (this.#waiting.length > 0 && this.#waitingBytes + message.bytes > this.#options.maxBufferBytes) {
      return Promise.reject(
        new McpE2eError(
          'ERR_SEND_BUFFER_FULL',
          `send buffer full: ${this.#waitingBytes} bytes queued, limit ${this.#options.maxBufferBytes} bytes; wait for earlier sends to resolve`,
        ),
      );
    }
    return new Promise<void>((resolve, reject) => {
      this.#waiting.push({ message, resolve, reject });
      this.#waitingBytes += message.bytes;
    });
  }

  /** Pack the open batch now (e.g. before a close). */
  packNow(): void {
    if (this.#batch.length > 0 && !this.#failure) this.#packBatch();
  }

  /**
   * Reject everything waiting, drop the open batch, and reject every later
   * push with `err`. Idempotent. `err` may be a function that builds the
   * error: it is called only if a push is ever rejected with it (every
   * connection ends through here, and an Error costs a stack trace).
   */
  fail(err: McpE2eError | (() => McpE2eError)): void {
    if (!this.#failure) this.#failure = err;
    const waiting = this.#waiting;
    this.#waiting = [];
    this.#waitingBytes = 0;
    this.#batch = [];
    this.#batchBytes = 0;
    if (waiting.length > 0) {
      const e = this.#failureError();
      for (const w of waiting) w.reject(e);
    }
  }

  #failureError(): McpE2eError {
    if (typeof this.#failure === 'function') this.#failure = this.#failure();
    return this.#failure!;
  }

  /**
   * Below the high-water mark; or above it with no write callback of ours
   * pending (the buffered bytes are not ours), where we send anyway rather
   * than stall forever.
   */
  #hasRoom(): boolean {
    return this.#ws.bufferedAmount + this.#batchBytes < this.#options.highWaterMarkBytes || (this.#inFlight === 0 && this.#batch.length === 0);
  }

  #join(message: OutgoingMessage): void {
    const { frameTargetBytes, maxMessagesPerFrame, perMessageOverheadBytes } = this.#options;
    const bytes = message.bytes + perMessageOverheadBytes;
    // A message that would take the batch past the target goes in the next
    // frame (alone, if it is that large): pack what is open first. So a frame
    // of several messages never exceeds the target.
    if (this.#batch.length > 0 && this.#batchBytes + bytes > frameTargetBytes) this.#packBatch();
    this.#batch.push(message);
    this.#batchBytes += bytes;
    if (this.#batchBytes >= frameTargetBytes || this.#batch.length >= maxMessagesPerFrame) this.#packBatch();
    else this.#scheduleEndOfTurn();
  }

  #packBatch(): void {
    const batch = this.#batch;
    this.#batch = [];
    this.#batchBytes = 0;
    if (this.#ws.readyState !== WebSocket.OPEN) {
      this.fail(new McpE2eError('ERR_CONNECTION_CLOSED', 'the connection closed before the message was sent'));
      return;
    }
    let frame: WireFrame;
    try {
      frame = this.#pack(batch);
    } catch (err) {
      // The packer reports its own failure (and fails the connection); the batch is lost with it.
      this.fail(err instanceof McpE2eError ? err : new McpE2eError('ERR_CONNECTION_CLOSED', `cannot send: ${(err as Error).message}`, { cause: err }));
      return;
    }
    this.#write(frame);
  }

  #pump(): void {
    while (this.#waiting.length > 0 && !this.#failure) {
      if (this.#ws.readyState !== WebSocket.OPEN) {
        this.fail(new McpE2eError('ERR_CONNECTION_CLOSED', 'the connection closed before the message was sent'));
        return;
      }
      // Wait for a write callback to wake us.
      if (!this.#hasRoom()) return;
      const w = this.#waiting.shift()!;
      this.#waitingBytes -= w.message.bytes;
      this.#join(w.message);
      w.resolve();
    }
  }

  #write(frame: WireFrame): void {
    const socket = this.#socket;
    if (!this.#corked && socket) {
      this.#corked = true;
      socket.cork();
      this.#scheduleEndOfTurn();
    }
    this.#inFlight++;
    this.#ws.send(frame, typeof frame === 'string' ? TEXT_FRAME : BINARY_FRAME, this.#onWritten);
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

  #scheduleEndOfTurn(): void {
    if (this.#turnScheduled) return;
    this.#turnScheduled = true;
    process.nextTick(this.#endOfTurn);
  }

  #endOfTurn = (): void => {
    if (this.#batch.length > 0 && !this.#failure) this.#packBatch();
    this.#turnScheduled = false;
    if (this.#corked) this.#flush();
  };

  #onWritten = (err?: Error | null): void => {
    this.#inFlight--;
    if (err) this.fail(new McpE2eError('ERR_CONNECTION_CLOSED', `socket write failed: ${err.message}`, { cause: err }));
    else if (this.#waiting.length > 0) this.#pump();
  };
}
