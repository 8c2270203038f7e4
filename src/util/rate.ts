/**
 * A token bucket: at most `burst` events at once, then `perIntervalMs` one
 * event per interval. Used wherever a peer's messages cost us work (records
 * on a session; later gossip), so that an authenticated but hostile peer
 * costs a bounded amount.
 */
export class TokenBucket {
  #tokens: number;
  #last: number;

  /**
   * @param burst tokens when full (events allowed at once).
   * @param intervalMs one token comes back per this many ms.
   * @param now the clock at creation, ms.
   * @throws RangeError for a burst below 1 or an interval below 1 ms.
   */
  constructor(readonly burst: number, readonly intervalMs: number, now: number) {
    if (!(burst >= 1) || !(intervalMs >= 1)) throw new RangeError('"burst" and "intervalMs" expected numbers >= 1');
    this.#tokens = burst;
    this.#last = now;
  }

  /** Take `n` tokens (default one) at time `now` (ms); false, taking none, when fewer are left. */
  take(now: number, n = 1): boolean {
    if (!this.has(now, n)) return false;
    this.#tokens -= n;
    return true;
  }

  /**
   * True when `n` tokens (default one) are left at time `now` (ms); takes
   * none. For work whose cost is known only after it is done: check before,
   * `take` after.
   */
  has(now: number, n = 1): boolean {
    const elapsed = Math.max(0, now - this.#last);
    this.#tokens = Math.min(this.burst, this.#tokens + elapsed / this.intervalMs);
    this.#last = Math.max(this.#last, now);
    return this.#tokens >= n;
  }
}
