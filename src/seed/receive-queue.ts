/**
 * The bounded receive queue behind the message API's `receive()` and the
 * message server's handler loop. It turns a transport's push callbacks
 * (`onmessage`, `onerror`, `onclose`) into pulls, in arrival order, and
 * keeps backpressure: when `capacity` messages wait, it pauses the
 * transport (`pauseReceiving()`: frames stay unread on the socket and the
 * peer's sends wait on TCP flow control) and resumes it once the consumer
 * has taken half of them. Nothing is dropped and nothing waits without
 * bound: at most `capacity` messages, plus those already decoded when the
 * pause took effect (the rest of one socket read).
 */
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { McpE2eError } from '../errors.js';
import type { WebSocketChannel } from '../transport/channel.js';
import { assertInteger } from '../util/assert.js';

/** Default of `maxQueuedMessages`: messages held for the consumer before the socket is paused. */
export const DEFAULT_MAX_QUEUED_MESSAGES = 16;
/** Largest accepted `maxQueuedMessages`. */
const MAX_QUEUED_MESSAGES_LIMIT = 1024;

/** Check a `maxQueuedMessages` option. @throws TypeError / RangeError. */
export function checkMaxQueuedMessages(value: unknown): number {
  if (value === undefined) return DEFAULT_MAX_QUEUED_MESSAGES;
  assertInteger(value, 1, MAX_QUEUED_MESSAGES_LIMIT, 'maxQueuedMessages');
  return value;
}

interface Waiter {
  resolve: (message: JSONRPCMessage) => void;
  reject: (err: Error) => void;
}

export class ReceiveQueue implements AsyncIterable<JSONRPCMessage> {
  readonly #transport: WebSocketChannel;
  readonly #capacity: number;
  readonly #resumeAt: number;
  #messages: JSONRPCMessage[] = [];
  #waiters: Waiter[] = [];
  #paused = false;
  /** Why no message will come any more, once that is so. */
  #end: Error | undefined;
  /** The end is orderly (a close without an error): iteration just stops. */
  #orderly = false;
  /** The latest error the transport reported: the reason of a close that follows it. */
  #lastError: Error | undefined;

  /**
   * Take over `transport`'s `onmessage`, `onerror` and `onclose`. Must be
   * called before the transport delivers messages (before `start()`).
   * @param capacity as checked by `checkMaxQueuedMessages`.
   * @param onError also told every error the transport reports (for logs).
   */
  constructor(transport: WebSocketChannel, capacity: number, onError?: (err: Error) => void) {
    this.#transport = transport;
    this.#capacity = capacity;
    this.#resumeAt = Math.floor(capacity / 2);
    transport.onmessage = (message) => this.#push(message);
    transport.onerror = (err) => {
      this.#lastError = err;
      onError?.(err);
    };
    transport.onclose = () => {
      const err = this.#lastError;
      this.#finish(err ?? new McpE2eError('ERR_CONNECTION_CLOSED', 'the connection is closed'), err === undefined);
    };
  }

  /** Messages waiting to be taken. */
  get queued(): number {
    return this.#messages.length;
  }

  /**
   * The next message, in arrival order; waits for one if none is queued.
   * Messages that arrived before the connection closed are still returned.
   * @throws McpE2eError `ERR_CONNECTION_CLOSED` once the connection is
   *   closed (orderly, or by `discard()`) and nothing is left, or the error
   *   that ended the connection (e.g. `ERR_FRAME_DECRYPT`, `ERR_PEER_REJECTED`).
   */
  next(): Promise<JSONRPCMessage> {
    const message = this.#messages.shift();
    if (message !== undefined) {
      if (this.#paused && this.#messages.length <= this.#resumeAt) {
        this.#paused = false;
        this.#transport.resumeReceiving();
      }
      return Promise.resolve(message);
    }
    if (this.#end) return Promise.reject(this.#end);
    return new Promise<JSONRPCMessage>((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** Every message until the connection closes; ends after an orderly close, throws the error that ended it otherwise. */
  async *[Symbol.asyncIterator](): AsyncGenerator<JSONRPCMessage, void, undefined> {
    for (;;) {
      let message: JSONRPCMessage;
      try {
        message = await this.next();
      } catch (err) {
        if (this.#orderly && err === this.#end) return;
        throw err;
      }
      yield message;
    }
  }

  /** The consumer closes: queued messages are dropped on purpose, and `next()` rejects with `ERR_CONNECTION_CLOSED` from now on. */
  discard(): void {
    this.#messages = [];
    this.#finish(new McpE2eError('ERR_CONNECTION_CLOSED', 'the connection was closed by close()'), true);
  }

  #push(message: JSONRPCMessage): void {
    if (this.#end) return; // discarded: the transport is closing and drops frames itself
    const waiter = this.#waiters.shift();
    if (waiter) {
      waiter.resolve(message);
      return;
    }
    this.#messages.push(message);
    if (!this.#paused && this.#messages.length >= this.#capacity) {
      this.#paused = true;
      this.#transport.pauseReceiving();
    }
  }

  #finish(reason: Error, orderly: boolean): void {
    if (this.#end) return;
    this.#end = reason;
    this.#orderly = orderly;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.reject(reason);
  }
}
