/**
 * A virtual clock and an in-memory network for the gossip simulator (after
 * memberlist's MockNetwork): events run in time order from one heap;
 * messages travel as JSON text (serialised by the sender, parsed again for
 * the receiver, as the control channel does), each with a latency, a loss
 * probability, and the order of its link kept (a session is one ordered
 * stream). Nothing here knows about gossip.
 */

/** A seeded uniform [0, 1) generator (mulberry32). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Event {
  readonly at: number;
  readonly seq: number;
  readonly run: () => void;
}

/** Events by time (ties in the order they were scheduled). */
export class Clock {
  #heap: Event[] = [];
  #seq = 0;
  now: number;

  constructor(startMs: number) {
    this.now = startMs;
  }

  at(timeMs: number, run: () => void): void {
    const e = { at: Math.max(timeMs, this.now), seq: this.#seq++, run };
    const h = this.#heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  /** Run every event up to and including `timeMs`, then set the clock to it. */
  runUntil(timeMs: number): void {
    const h = this.#heap;
    while (h.length > 0 && h[0]!.at <= timeMs) {
      const e = h[0]!;
      const last = h.pop()!;
      if (h.length > 0) {
        h[0] = last;
        let i = 0;
        for (;;) {
          const l = 2 * i + 1;
          const r = l + 1;
          let m = i;
          if (l < h.length && before(h[l]!, h[m]!)) m = l;
          if (r < h.length && before(h[r]!, h[m]!)) m = r;
          if (m === i) break;
          [h[i], h[m]] = [h[m]!, h[i]!];
          i = m;
        }
      }
      this.now = e.at;
      e.run();
    }
    this.now = timeMs;
  }
}

const before = (a: Event, b: Event): boolean => a.at < b.at || (a.at === b.at && a.seq < b.seq);

/**
 * Bytes a control message costs on the wire beyond its JSON text, with the
 * binary framing of PROTOCOL.md §6.2: frame header 14, content type 1,
 * AES-GCM tag 16, WebSocket header 2..4 (4 counted).
 */
export const FRAME_OVERHEAD_BYTES = 35;
/** Link keys: from * LINK + to (fewer than 2^20 nodes). */
const LINK = 2 ** 20;

/** Loss, latency and byte counts of the simulated network. */
export class Network {
  /** Probability that a message is lost. */
  loss = 0;
  /** One-way latency, uniform in [min, max], ms. */
  latencyMs: [number, number] = [10, 50];
  /** Messages and bytes sent, by sender index. */
  readonly bytes: Float64Array;
  readonly messages: Float64Array;
  readonly bytesByType = new Map<string, number>();
  /** Last delivery time per directed link (from * 2^20 + to), to keep each link in order. */
  readonly #lastDelivery = new Map<number, number>();

  constructor(readonly clock: Clock, readonly random: () => number, nodes: number) {
    this.bytes = new Float64Array(nodes);
    this.messages = new Float64Array(nodes);
  }

  latency(): number {
    const [lo, hi] = this.latencyMs;
    return lo + (hi - lo) * this.random();
  }

  /**
   * Send `message` from node `from` to node `to`; `deliver` gets the parsed
   * copy, unless the message is lost or `isOpen` says the link closed meanwhile.
   */
  send(from: number, to: number, message: { type: string }, isOpen: () => boolean, deliver: (value: unknown) => void): void {
    const text = JSON.stringify(message);
    const size = Buffer.byteLength(text) + FRAME_OVERHEAD_BYTES;
    this.bytes[from]! += size;
    this.messages[from]! += 1;
    this.bytesByType.set(message.type, (this.bytesByType.get(message.type) ?? 0) + size);
    if (this.loss > 0 && this.random() < this.loss) return;
    const link = from * LINK + to;
    const at = Math.max(this.clock.now + this.latency(), this.#lastDelivery.get(link) ?? 0);
    this.#lastDelivery.set(link, at);
    this.clock.at(at, () => {
      if (isOpen()) deliver(JSON.parse(text));
    });
  }

  /** Forget the order state of a closed link. */
  closeLink(a: number, b: number): void {
    this.#lastDelivery.delete(a * LINK + b);
    this.#lastDelivery.delete(b * LINK + a);
  }

  resetCounts(): void {
    this.bytes.fill(0);
    this.messages.fill(0);
    this.bytesByType.clear();
  }
}
