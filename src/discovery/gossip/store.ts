/**
 * The record set a gossip engine reconciles (PROTOCOL.md §14.3): at most one
 * record per node id, and for any node-id prefix the count and the sum of
 * the item hashes, from which the fingerprint is made.
 *
 * `GossipStore` is the interface the engine uses; `MemoryGossipStore` is a
 * node's store. The simulator has a store of its own that shares one sorted
 * base between thousands of simulated nodes (bench/gossip/overlay-store.ts);
 * a test checks that both give identical fingerprints for the same sets.
 */
import type { PeerRecord } from '../record.js';
import { addItems, itemHash, prefixBounds, subtractItems, type Entry } from './protocol.js';

/** Count and item-hash sum of the records under a prefix. */
export interface RangeSummary {
  readonly count: number;
  readonly sum: bigint;
}

/** What the gossip engine needs of a record set. */
export interface GossipStore {
  /** Records held (expired ones included until `expire` removes them). */
  readonly size: number;
  get(nodeId: string): PeerRecord | undefined;
  /** Insert, or replace the record of the same node id (the engine has ordered them, §13.5). */
  put(record: PeerRecord): void;
  delete(nodeId: string): void;
  /** Count and sum of the records whose node id starts with `prefix`. */
  summary(prefix: string): RangeSummary;
  /** (node id, seq) of the records under `prefix`, in node id order. Called for small ranges only. */
  entries(prefix: string): Entry[];
  /** Remove the records that have expired at `nowMs`; returns them. */
  expire(nowMs: number): PeerRecord[];
  /** Every record held, in no particular order. */
  records(): IterableIterator<PeerRecord>;
}

const hashes = new WeakMap<PeerRecord, bigint>();

/**
 * The item hash of a record (§14.3), computed once per record object. Records
 * are immutable, so one object passed to many stores (the simulator's) is
 * hashed once.
 */
export function recordItemHash(record: PeerRecord): bigint {
  let h = hashes.get(record);
  if (h === undefined) {
    h = itemHash(record.nodeId, record.seq);
    hashes.set(record, h);
  }
  return h;
}

/** First index in sorted `ids` whose value is >= `key` (ids.length when none). */
export function lowerBound(ids: readonly string[], key: string): number {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ids[mid]! < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Index range [from, to) of the ids under `prefix` in sorted `ids`. */
export function prefixIndexRange(ids: readonly string[], prefix: string): [from: number, to: number] {
  const [lo, hi] = prefixBounds(prefix);
  return [lowerBound(ids, lo), hi === undefined ? ids.length : lowerBound(ids, hi)];
}

/**
 * A node's record set in memory: a map by node id, the ids in sorted order,
 * and prefix sums of the item hashes rebuilt lazily after changes (one
 * rebuild, O(n), serves every range of a reconciliation message: 10,000
 * records take about 2 ms).
 */
export class MemoryGossipStore implements GossipStore {
  readonly #byId = new Map<string, PeerRecord>();
  #ids: string[] = [];
  /** #prefix[i] = sum of the item hashes of #ids[0 .. i-1]; undefined when stale. */
  #prefix: bigint[] | undefined;
  #nextExpiry = Infinity;

  get size(): number {
    return this.#byId.size;
  }

  get(nodeId: string): PeerRecord | undefined {
    return this.#byId.get(nodeId);
  }

  put(record: PeerRecord): void {
    if (!this.#byId.has(record.nodeId)) this.#ids.splice(lowerBound(this.#ids, record.nodeId), 0, record.nodeId);
    this.#byId.set(record.nodeId, record);
    this.#prefix = undefined;
    if (record.expiresAtMs < this.#nextExpiry) this.#nextExpiry = record.expiresAtMs;
  }

  delete(nodeId: string): void {
    if (!this.#byId.delete(nodeId)) return;
    this.#ids.splice(lowerBound(this.#ids, nodeId), 1);
    this.#prefix = undefined;
  }

  summary(prefix: string): RangeSummary {
    const [from, to] = prefixIndexRange(this.#ids, prefix);
    const sums = this.#sums();
    return { count: to - from, sum: subtractItems(sums[to]!, sums[from]!) };
  }

  entries(prefix: string): Entry[] {
    const [from, to] = prefixIndexRange(this.#ids, prefix);
    return this.#ids.slice(from, to).map((id) => [id, this.#byId.get(id)!.seq] as const);
  }

  expire(nowMs: number): PeerRecord[] {
    if (nowMs < this.#nextExpiry) return [];
    const gone: PeerRecord[] = [];
    let next = Infinity;
    for (const r of this.#byId.values()) {
      if (r.isExpired(nowMs)) gone.push(r);
      else if (r.expiresAtMs < next) next = r.expiresAtMs;
    }
    for (const r of gone) this.delete(r.nodeId);
    this.#nextExpiry = next;
    return gone;
  }

  records(): IterableIterator<PeerRecord> {
    return this.#byId.values();
  }

  #sums(): bigint[] {
    if (this.#prefix) return this.#prefix;
    const sums = new Array<bigint>(this.#ids.length + 1);
    let s = 0n;
    sums[0] = s;
    this.#ids.forEach((id, i) => {
      s = addItems(s, recordItemHash(this.#byId.get(id)!));
      sums[i + 1] = s;
    });
    this.#prefix = sums;
    return sums;
  }
}
