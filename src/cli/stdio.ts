/**
 * Newline-delimited JSON-RPC over a byte stream (the MCP stdio framing), with
 * a hard limit on the line length: the SDK's own stdio buffer has none.
 */
import { StringDecoder } from 'node:string_decoder';

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
      if (line.trim()) this.#onLine(line);
    }
    if (this.#discarding) return;
    this.#pending += text;
    if (this.#pending.length > this.#maxLineBytes) {
      this.#onOversize(this.#pending.length);
      this.#pending = '';
      this.#discarding = true;
    }
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
