/**
 * Bounded retransmission of pushed records, after memberlist's
 * TransmitLimitedQueue: each record is handed out a limited number of times
 * (`limit`), least-sent first, and a newer record of a node replaces the
 * queued older one. Unlike memberlist, a record is never sent to a peer that
 * already had it from us or sent it to us: on a mesh of a few sessions per
 * node, repeats to one peer are pure waste.
 */
import type { PeerRecord } from '../record.js';

interface Queued {
  readonly record: PeerRecord;
  /** Times handed out. */
  transmits: number;
  /** Peers that have it (we sent it to them, or they sent it to us). */
  readonly peers: Set<string>;
  /** Insertion order: newer first among equal transmit counts. */
  readonly order: number;
}

export class TransmitQueue {
  readonly #byNode = new Map<string, Queued>();
  #order = 0;

  /** @param maxEntries Most queued records; beyond it the most-sent are dropped. */
  constructor(readonly maxEntries: number) {}

  get size(): number {
    return this.#byNode.size;
  }

  /** Queue `record` for pushing; `from` (the peer it came from) never gets it back. */
  add(record: PeerRecord, from: string | undefined): void {
    const old = this.#byNode.get(record.nodeId);
    if (old && old.record.seq >= record.seq) return;
    this.#byNode.set(record.nodeId, { record, transmits: 0, peers: new Set(from === undefined ? [] : [from]), order: this.#order++ });
    if (this.#byNode.size > this.maxEntries) {
      let worst: Queued | undefined;
      for (const q of this.#byNode.values()) if (!worst || q.transmits > worst.transmits || (q.transmits === worst.transmits && q.order < worst.order)) worst = q;
      this.#byNode.delete(worst!.record.nodeId);
    }
  }

  /** Note that `peer` has the record of `nodeId` at `seq` or newer (it sent it to us). */
  seenBy(nodeId: string, seq: number, peer: string): void {
    const q = this.#byNode.get(nodeId);
    if (q && q.record.seq <= seq) q.peers.add(peer);
  }

  /** Forget a record (it expired or was replaced in the store). */
  delete(nodeId: string): void {
    this.#byNode.delete(nodeId);
  }

  /**
   * Up to `max` records for `peer`, least-sent first, of at most `maxBytes`
   * bytes together (the first is always taken). Each counts one transmit; a
   * record that reached `limit` transmits, or that every peer in `peers` has,
   * leaves the queue; records left out wait for the next round.
   */
  take(peer: string, max: number, limit: number, peers: ReadonlySet<string>, maxBytes = Infinity): PeerRecord[] {
    const eligible: Queued[] = [];
    for (const q of this.#byNode.values()) if (!q.peers.has(peer)) eligible.push(q);
    eligible.sort((a, b) => a.transmits - b.transmits || b.order - a.order);
    const out: PeerRecord[] = [];
    let bytes = 0;
    for (const q of eligible.slice(0, max)) {
      bytes += q.record.bytes.length;
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(q.record);
      q.transmits++;
      q.peers.add(peer);
      if (q.transmits >= limit || [...peers].every((p) => q.peers.has(p))) this.#byNode.delete(q.record.nodeId);
    }
    return out;
  }
}
