/**
 * A token bucket on a caller's clock (no timers): `capacity` tokens, refilled
 * at `perSecond`. Used per peer for gossip messages and pushed records
 * (PROTOCOL.md §14.6).
 */
export class TokenBucket {
  #tokens: number;
  #at: number;

  /**
   * @param capacity Largest burst, tokens (> 0).
   * @param perSecond Refill rate, tokens per second (>= 0).
   * @param nowMs The clock at creation, ms; the bucket starts full.
   */
  constructor(readonly capacity: number, readonly perSecond: number, nowMs: number) {
    if (!(capacity > 0) || !(perSecond >= 0)) throw new RangeError('"capacity" expected > 0 and "perSecond" >= 0');
    this.#tokens = capacity;
    this.#at = nowMs;
  }

  /** Take `n` tokens at `nowMs` if there are that many (then true); otherwise take none (false). */
  take(n: number, nowMs: number): boolean {
    if (nowMs > this.#at) {
      this.#tokens = Math.min(this.capacity, this.#tokens + ((nowMs - this.#at) / 1000) * this.perSecond);
      this.#at = nowMs;
    }
    if (this.#tokens < n) return false;
    this.#tokens -= n;
    return true;
  }
}
