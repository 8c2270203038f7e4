/**
 * Admission control of unauthenticated connections, the parts that are pure
 * bookkeeping (no sockets, a clock passed in): which bucket an address
 * counts in, a token bucket per bucket on handshake starts, and the table
 * of pending handshakes that picks whom to evict when it is full. The server
 * (server.ts) applies them; they are apart so that each rule can be read
 * and tested on its own.
 *
 * - Buckets: an IPv4 address is its own bucket (IPv4-mapped IPv6 counts as
 *   IPv4); an IPv6 address counts in its /64, the smallest prefix one
 *   subscriber usually gets, so that an attacker cannot take 2^64 buckets.
 * - Rate: each bucket may start `burst` handshakes at once, then `rate` per
 *   second. The map of buckets is bounded: a full bucket is forgotten (it is
 *   the same as a new one), and beyond MAX_RATE_BUCKETS the oldest goes.
 * - Pending table: at most `perBucket` pending handshakes per bucket; when
 *   the whole table is full, a newcomer is admitted by evicting the oldest
 *   pending handshake of the bucket that holds the most, so that addresses
 *   holding many slots lose them first, and an honest client (one pending
 *   handshake, a few milliseconds old) is the last to go.
 */
import { ipv6Groups, mappedIPv4 } from '../util/ip.js';

/** The rate map never holds more buckets than this (each is a few dozen bytes). */
export const MAX_RATE_BUCKETS = 16_384;

/**
 * The admission bucket of a source address: IPv4 addresses as they are
 * (IPv4-mapped IPv6 as its IPv4 address), IPv6 addresses as their /64
 * (`2001:db8:0:1::/64`). Used by every per-address limit.
 */
export function addressKey(address: string | undefined): string {
  if (address === undefined) return '';
  const groups = ipv6Groups(address);
  if (!groups) return address;
  const v4 = mappedIPv4(address);
  if (v4) return v4;
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(':')}::/64`;
}

/** Token buckets per admission bucket: `burst` at once, refilled at `ratePerSecond`. */
export class RateLimiter {
  readonly #rate: number;
  readonly #burst: number;
  readonly #maxBuckets: number;
  /** tokens left and the time they were counted (ms); insertion order = age. */
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(ratePerSecond: number, burst: number, maxBuckets = MAX_RATE_BUCKETS) {
    this.#rate = ratePerSecond;
    this.#burst = burst;
    this.#maxBuckets = maxBuckets;
  }

  /** Buckets currently remembered (for tests and monitoring). */
  get size(): number {
    return this.#buckets.size;
  }

  /** Whether `key` has a token at time `now` (ms), without taking it. */
  available(key: string, now: number): boolean {
    const b = this.#buckets.get(key);
    return !b || b.tokens + ((now - b.at) * this.#rate) / 1000 >= 1;
  }

  /** Take one token for `key` at time `now` (ms). @returns false when the bucket is empty. */
  take(key: string, now: number): boolean {
    const b = this.#buckets.get(key);
    let tokens = this.#burst;
    if (b) {
      tokens = Math.min(this.#burst, b.tokens + ((now - b.at) * this.#rate) / 1000);
      this.#buckets.delete(key);
    }
    if (tokens < 1) {
      this.#buckets.set(key, { tokens, at: now });
      return false;
    }
    this.#buckets.set(key, { tokens: tokens - 1, at: now });
    if (this.#buckets.size > this.#maxBuckets) this.#sweep(now);
    return true;
  }

  /** Forget full buckets; if none is full, the oldest (it gets a fresh burst, as after a long pause). */
  #sweep(now: number): void {
    for (const [key, b] of this.#buckets) {
      if (b.tokens + ((now - b.at) * this.#rate) / 1000 >= this.#burst) this.#buckets.delete(key);
    }
    while (this.#buckets.size > this.#maxBuckets) this.#buckets.delete(this.#buckets.keys().next().value!);
  }
}

/** The pending handshakes, by admission bucket, oldest first. */
export class PendingTable<T> {
  readonly #byKey = new Map<string, Set<T>>();
  /** Each item's bucket and arrival number (the age among buckets of equal size). */
  readonly #keyOf = new Map<T, { key: string; seq: number }>();
  #seq = 0;

  get size(): number {
    return this.#keyOf.size;
  }

  /** Pending handshakes of one bucket. */
  countOf(key: string): number {
    return this.#byKey.get(key)?.size ?? 0;
  }

  entries(): IterableIterator<T> {
    return this.#keyOf.keys();
  }

  add(item: T, key: string): void {
    let set = this.#byKey.get(key);
    if (!set) this.#byKey.set(key, (set = new Set()));
    set.add(item);
    this.#keyOf.set(item, { key, seq: this.#seq++ });
  }

  delete(item: T): void {
    const key = this.#keyOf.get(item)?.key;
    if (key === undefined) return;
    this.#keyOf.delete(item);
    const set = this.#byKey.get(key)!;
    set.delete(item);
    if (set.size === 0) this.#byKey.delete(key);
  }

  /** The one to evict for a newcomer: the oldest pending handshake of the bucket holding the most (of several such buckets, the oldest of all). */
  victim(): T | undefined {
    let best: T | undefined;
    let bestSize = 0;
    let bestSeq = 0;
    for (const set of this.#byKey.values()) {
      const oldest = set.values().next().value as T;
      const seq = this.#keyOf.get(oldest)!.seq;
      if (set.size > bestSize || (set.size === bestSize && seq < bestSeq)) {
        best = oldest;
        bestSize = set.size;
        bestSeq = seq;
      }
    }
    return best;
  }
}
