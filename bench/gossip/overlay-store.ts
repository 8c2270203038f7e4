/**
 * The simulator's record store: thousands of simulated nodes share one base
 * (the latest record of every node id, in a Fenwick tree of item-hash sums
 * and counts over a fixed sorted universe of node ids), and each node holds
 * only where it differs from the base (`delta`: an older record, or none).
 * 10,000 nodes x 10,000 records would be 10^8 entries held one by one; here
 * it is 10,000 shared entries plus the records still on their way.
 *
 * A node whose differences are many (a node that has just joined and holds
 * next to nothing) keeps a `MemoryGossipStore` of its own instead, the real
 * node's store, until it has caught up.
 *
 * Every answer (`get`, `summary`, `entries`) is the one a `MemoryGossipStore`
 * holding the same records gives: test/discovery/gossip/overlay-store.test.ts
 * checks this on random sets. The engine cannot tell the difference, so
 * what runs on it is the real gossip code.
 */
import type { PeerRecord } from '../../src/discovery/record.js';
import { addItems, prefixBounds, subtractItems, type Entry } from '../../src/discovery/gossip/protocol.js';
import { lowerBound, MemoryGossipStore, recordItemHash, type GossipStore, type RangeSummary } from '../../src/discovery/gossip/store.js';

/** The latest record of every node id, shared by all overlays. */
export class SharedBase {
  /** Sorted universe of every node id the simulation will ever use. */
  readonly ids: readonly string[];
  readonly #index = new Map<string, number>();
  readonly #records: Array<PeerRecord | undefined>;
  readonly #count: Int32Array;
  readonly #sum: bigint[];
  /** Overlays to tell before a base entry changes. */
  readonly overlays = new Set<OverlayStore>();
  #size = 0;

  constructor(universe: readonly string[]) {
    this.ids = [...universe].sort();
    this.ids.forEach((id, i) => this.#index.set(id, i));
    this.#records = new Array(this.ids.length).fill(undefined);
    this.#count = new Int32Array(this.ids.length + 1);
    this.#sum = new Array<bigint>(this.ids.length + 1).fill(0n);
  }

  get size(): number {
    return this.#size;
  }

  indexOf(nodeId: string): number | undefined {
    return this.#index.get(nodeId);
  }

  get(nodeId: string): PeerRecord | undefined {
    const i = this.#index.get(nodeId);
    return i === undefined ? undefined : this.#records[i];
  }

  at(i: number): PeerRecord | undefined {
    return this.#records[i];
  }

  /**
   * Make `record` (or none) the latest of its node id. Every overlay that
   * held the old base entry keeps it, as its own difference.
   */
  set(nodeId: string, record: PeerRecord | undefined): void {
    const i = this.#index.get(nodeId);
    if (i === undefined) throw new RangeError('node id outside the universe');
    const old = this.#records[i];
    if (old === record) return;
    for (const o of this.overlays) o.pinBeforeBaseChange(nodeId, old);
    this.#add(i, old, -1);
    this.#records[i] = record;
    this.#add(i, record, 1);
  }

  /** Count and sum over the universe indices [from, to). */
  range(from: number, to: number): RangeSummary {
    const [c1, s1] = this.#prefix(to);
    const [c0, s0] = this.#prefix(from);
    return { count: c1 - c0, sum: subtractItems(s1, s0) };
  }

  /** Universe index range of the ids under `prefix`. */
  indexRange(prefix: string): [from: number, to: number] {
    const [lo, hi] = prefixBounds(prefix);
    return [lowerBound(this.ids, lo), hi === undefined ? this.ids.length : lowerBound(this.ids, hi)];
  }

  #add(i: number, record: PeerRecord | undefined, sign: 1 | -1): void {
    if (!record) return;
    this.#size += sign;
    const h = recordItemHash(record);
    for (let k = i + 1; k <= this.ids.length; k += k & -k) {
      this.#count[k]! += sign;
      this.#sum[k] = sign > 0 ? addItems(this.#sum[k]!, h) : subtractItems(this.#sum[k]!, h);
    }
  }

  #prefix(n: number): [number, bigint] {
    let c = 0;
    let s = 0n;
    for (let k = n; k > 0; k -= k & -k) {
      c += this.#count[k]!;
      s = addItems(s, this.#sum[k]!);
    }
    return [c, s];
  }
}

/** Differences above this make an overlay switch to a store of its own. */
const MAX_DELTA = 1024;
/** A store of its own switches back to the overlay once it differs from the base in at most this many ids. */
const REJOIN_DELTA = 256;

/** One simulated node's store: the shared base, and where this node differs from it. */
export class OverlayStore implements GossipStore {
  /** Node id -> this node's record (null: none) where it differs from the base. */
  #delta = new Map<string, PeerRecord | null>();
  /** When set, the node's records are all here and the base is not used. */
  #own: MemoryGossipStore | undefined;

  /** @param empty Start with no record (a joining node) instead of the whole base. */
  constructor(readonly base: SharedBase, empty = false) {
    base.overlays.add(this);
    if (empty) this.#own = new MemoryGossipStore();
  }

  /** Stop following the base (the node is gone). */
  detach(): void {
    this.base.overlays.delete(this);
  }

  /** True while the node keeps a store of its own. */
  get standalone(): boolean {
    return this.#own !== undefined;
  }

  /** How many ids this node differs from the base in (for the figures). */
  get deltaSize(): number {
    return this.#own ? -1 : this.#delta.size;
  }

  get size(): number {
    if (this.#own) return this.#own.size;
    let n = this.base.size;
    for (const [id, mine] of this.#delta) n += (mine ? 1 : 0) - (this.base.get(id) ? 1 : 0);
    return n;
  }

  get(nodeId: string): PeerRecord | undefined {
    if (this.#own) return this.#own.get(nodeId);
    const d = this.#delta.get(nodeId);
    if (d !== undefined) return d ?? undefined;
    return this.base.get(nodeId);
  }

  put(record: PeerRecord): void {
    if (this.#own) return this.#own.put(record);
    this.#setDelta(record.nodeId, record);
  }

  delete(nodeId: string): void {
    if (this.#own) return this.#own.delete(nodeId);
    if (this.get(nodeId)) this.#setDelta(nodeId, null);
  }

  summary(prefix: string): RangeSummary {
    if (this.#own) return this.#own.summary(prefix);
    const b = this.base.range(...this.base.indexRange(prefix));
    let count = b.count;
    let sum = b.sum;
    for (const [id, mine] of this.#delta) {
      if (!id.startsWith(prefix)) continue;
      const theirs = this.base.get(id);
      if (theirs) {
        count--;
        sum = subtractItems(sum, recordItemHash(theirs));
      }
      if (mine) {
        count++;
        sum = addItems(sum, recordItemHash(mine));
      }
    }
    return { count, sum };
  }

  entries(prefix: string): Entry[] {
    if (this.#own) return this.#own.entries(prefix);
    const [from, to] = this.base.indexRange(prefix);
    const out: Entry[] = [];
    for (let i = from; i < to; i++) {
      const r = this.get(this.base.ids[i]!);
      if (r) out.push([r.nodeId, r.seq]);
    }
    return out;
  }

  /**
   * Records this node holds apart from the base that expired. Base records
   * never expire in a run: a simulated run is minutes long, records live an
   * hour (expiry is tested with real processes instead).
   */
  expire(nowMs: number): PeerRecord[] {
    if (this.#own) return this.#own.expire(nowMs);
    const gone: PeerRecord[] = [];
    for (const [, r] of this.#delta) if (r && r.isExpired(nowMs)) gone.push(r);
    for (const r of gone) this.delete(r.nodeId);
    return gone;
  }

  *records(): IterableIterator<PeerRecord> {
    if (this.#own) return yield* this.#own.records();
    for (let i = 0; i < this.base.ids.length; i++) {
      const r = this.get(this.base.ids[i]!);
      if (r) yield r;
    }
  }

  /** Called by the base before its entry for `nodeId` changes from `old`: keep what we hold. */
  pinBeforeBaseChange(nodeId: string, old: PeerRecord | undefined): void {
    if (this.#own || this.#delta.has(nodeId)) return;
    this.#delta.set(nodeId, old ?? null);
    this.#checkDelta();
  }

  /** A store of its own rejoins the shared base once it is close to it (call now and then). */
  maybeRejoin(): void {
    const own = this.#own;
    if (!own || Math.abs(own.size - this.base.size) > REJOIN_DELTA) return;
    const delta = new Map<string, PeerRecord | null>();
    for (const r of own.records()) if (this.base.get(r.nodeId) !== r) delta.set(r.nodeId, r);
    if (delta.size > REJOIN_DELTA) return;
    for (let i = 0; i < this.base.ids.length; i++) {
      const id = this.base.ids[i]!;
      if (this.base.at(i) && !own.get(id)) delta.set(id, null);
      if (delta.size > REJOIN_DELTA) return;
    }
    this.#delta = delta;
    this.#own = undefined;
  }

  #setDelta(nodeId: string, mine: PeerRecord | null): void {
    if ((this.base.get(nodeId) ?? null) === mine) this.#delta.delete(nodeId);
    else this.#delta.set(nodeId, mine);
    this.#checkDelta();
  }

  #checkDelta(): void {
    if (this.#delta.size <= MAX_DELTA) return;
    const own = new MemoryGossipStore();
    for (const r of this.records()) own.put(r);
    this.#own = own;
    this.#delta.clear();
  }
}
