/**
 * Newline-delimited JSON-RPC over a byte stream (the MCP stdio framing), with
 * a hard limit on the line length: the SDK's own stdio buffer has none.
 */
import { StringDecoder } from 'node:string_decoder';
import { isRequest, relayError } from './relay.js';

export class LineSplitter {
  readonly #maxLineBytes: number;
  readonly #onLine: (line: string) => void;
  readonly #onOversize: (bytes: number) => void;
  readonly #decoder = new StringDecoder('utf8');
  #pending = '';
  #discarding = false;

  /**
   * @param maxLineBytes longest line accepted; a longer line is dropped whole and reported once.
   */
  constructor(maxLineBytes: number, onLine: (line: string) => void, onOversize: (bytes: number) => void) {
    this.#maxLineBytes = maxLineBytes;
    this.#onLine = onLine;
    this.#onOversize = onOversize;
  }

  push(chunk: Buffer): void {
    let text = this.#decoder.write(chunk);
    for (;;) {
      const nl = text.indexOf('\n');
      if (nl < 0) break;
      const piece = text.slice(0, nl);
      text = text.slice(nl + 1);
      if (this.#discarding) {
        this.#discarding = false;
        continue;
      }
      const line = (this.#pending + piece).replace(/\r$/, '');
      this.#pending = '';
      // A line whose end came in this chunk is checked here too, not only a line still open.
      const bytes = this.#bytesOver(line);
      if (bytes !== undefined) this.#onOversize(bytes);
      else if (line.trim()) this.#onLine(line);
    }
    if (this.#discarding) return;
    this.#pending += text;
    const bytes = this.#bytesOver(this.#pending);
    if (bytes !== undefined) {
      this.#onOversize(bytes);
      this.#pending = '';
      this.#discarding = true;
    }
  }

  /** The UTF-8 size of `text` when it is above the limit, else undefined (counted only when it may be). */
  #bytesOver(text: string): number | undefined {
    if (text.length * 3 <= this.#maxLineBytes) return undefined;
    const bytes = Buffer.byteLength(text, 'utf8');
    return bytes > this.#maxLineBytes ? bytes : undefined;
  }
}

/** Parse one line as a JSON object, or return undefined. */
export function parseJsonLine(line: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(line);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Longest stdin line read while answering a start-up failure (an `initialize` is small). */
const STARTUP_LINE_BYTES = 1024 * 1024;

/**
 * When `mcp-e2e connect` cannot start (a usage error, a bad config file, no
 * identity), the MCP client that launched it would see only "connection
 * closed", and desktop apps hide stderr. So answer the client's first
 * request (its `initialize`) with `message` as a JSON-RPC error, then stop:
 * at the first request, at the end of stdin, or after `timeoutMs`. Nothing is
 * read from a terminal (a person typing sees stderr).
 */
export function answerStartupFailure(message: string, timeoutMs = 3000): Promise<void> {
  const stdin = process.stdin;
  if (stdin.isTTY) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      stdin.off('data', onData).off('end', done).off('error', done);
      stdin.pause();
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    let answered = false;
    const lines = new LineSplitter(STARTUP_LINE_BYTES, (line) => {
      const msg = parseJsonLine(line);
      if (answered || !msg || !isRequest(msg)) return;
      answered = true;
      process.stdout.write(JSON.stringify(relayError(msg.id, message)) + '\n', done);
    }, () => {});
    const onData = (chunk: Buffer) => lines.push(chunk);
    stdin.on('data', onData).once('end', done).once('error', done);
  });
}
