/**
 * Range-based set reconciliation (src/discovery/gossip/reconcile.ts) between
 * real engines and stores: sets that agree settle in one message each way;
 * any difference (missing, older, one side empty) is found and pulled, in
 * both directions, with a cost that grows with the differences.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GossipEngine } from '../../../src/discovery/gossip/engine.js';
import { MemoryGossipStore } from '../../../src/discovery/gossip/store.js';
import { initialRanges, answerRanges } from '../../../src/discovery/gossip/reconcile.js';
import { createHash } from 'node:crypto';
import { decodeGossipMessage, fingerprint, MAX_RANGE_ENTRIES, MAX_SYNC_ENTRIES, MAX_SYNC_RANGES, rangeEntries, type SyncRange } from '../../../src/discovery/gossip/protocol.js';
import type { PeerRecord } from '../../../src/discovery/record.js';
import { identityOf, NOW, pump, recordOf, seeded } from './helpers.js';

const ids = Array.from({ length: 600 }, (_, i) => identityOf(i));
const v1 = ids.map((id) => recordOf(id, 1));
const v2 = ids.map((id) => recordOf(id, 2));
const A = identityOf(10_001).nodeId;
const B = identityOf(10_002).nodeId;

function engineWith(self: string, records: PeerRecord[], seed: number): GossipEngine {
  const store = new MemoryGossipStore();
  for (const r of records) store.put(r);
  return new GossipEngine(self, NOW, { store, random: seeded(seed) });
}

function fpOf(e: GossipEngine): string {
  const s = e.store.summary('');
  return fingerprint(s.sum, s.count);
}

/** A and B connected; A starts an exchange (addPeer does); run it and the pulls to the end. */
function reconcile(a: GossipEngine, b: GossipEngine) {
  const engines = new Map([
    [A, a],
    [B, b],
  ]);
  b.addPeer(A, NOW); // B's own exchange is not started: A's addPeer below runs first in the pump
  const r = pump(engines, A, a.addPeer(B, NOW), NOW);
  // Each side also runs the exchange it started, until both rest.
  let rounds = 0;
  let messages = r.messages;
  let bytes = r.bytes;
  while (fpOf(a) !== fpOf(b) && rounds++ < 20) {
    const t = NOW + rounds * 60_000;
    for (const [self, e] of engines) {
      const s = pump(engines, self, e.tick(t), t);
      messages += s.messages;
      bytes += s.bytes;
    }
  }
  return { messages, bytes, rounds };
}

test('two nodes that agree learn it in one small message each way', () => {
  const a = engineWith(A, v1, 1);
  const b = engineWith(B, v1, 2);
  const r = reconcile(a, b);
  assert.equal(r.messages, 2);
  assert.ok(r.bytes < 200, `${r.bytes} bytes`);
  assert.equal(a.counters.exchangesCompleted, 1);
});

test('differences in both directions are found and pulled: missing, older, and newer records', () => {
  const rnd = seeded(7);
  const ra: PeerRecord[] = [];
  const rb: PeerRecord[] = [];
  ids.forEach((_, i) => {
    const x = rnd();
    if (x < 0.01) ra.push(v1[i]!); // only A
    else if (x < 0.02) rb.push(v1[i]!); // only B
    else if (x < 0.03) (ra.push(v2[i]!), rb.push(v1[i]!)); // A newer
    else if (x < 0.04) (ra.push(v1[i]!), rb.push(v2[i]!)); // B newer
    else (ra.push(v1[i]!), rb.push(v1[i]!));
  });
  const a = engineWith(A, ra, 3);
  const b = engineWith(B, rb, 4);
  assert.notEqual(fpOf(a), fpOf(b));
  const r = reconcile(a, b);
  assert.equal(fpOf(a), fpOf(b));
  assert.equal(a.store.size, 600);
  for (const [i, id] of ids.entries()) {
    const want = ra.concat(rb).filter((x) => x.nodeId === id.nodeId).reduce((m, x) => Math.max(m, x.seq), 0);
    assert.equal(a.store.get(id.nodeId)!.seq, want, `record ${i} at A`);
    assert.equal(b.store.get(id.nodeId)!.seq, want, `record ${i} at B`);
  }
  assert.equal(r.rounds, 0, 'settled by the first exchange');
});

test('a node with nothing learns all 600 records from one peer', () => {
  const a = engineWith(A, [], 5);
  const b = engineWith(B, v1, 6);
  const r = reconcile(a, b);
  assert.equal(a.store.size, 600);
  assert.equal(fpOf(a), fpOf(b));
  assert.ok(r.rounds <= 2, `${r.rounds} extra rounds`);
});

test('cost grows with the differences, not with the set', () => {
  const costs: number[] = [];
  for (const diffs of [1, 4, 16]) {
    const a = engineWith(A, v1, 8);
    const b = engineWith(B, v1.slice(diffs), 9);
    const r = reconcile(a, b);
    assert.equal(fpOf(a), fpOf(b));
    // Sync messages only: the pulled records themselves are not reconciliation cost.
    costs.push(r.bytes - diffs * (v1[0]!.bytes.length * 2 + 20));
  }
  assert.ok(costs[0]! < 3000, `one difference among 600 costs ${costs[0]} bytes`);
  assert.ok(costs[2]! < 16 * costs[0]!, `16 differences cost ${costs[2]}, one ${costs[0]}`);
});

test('an answer never exceeds the message limits, however many ranges differ', () => {
  const big = new MemoryGossipStore();
  for (const r of v1) big.put(r);
  const empty = new MemoryGossipStore();
  // 256 empty-list ranges from a peer that has nothing: we hold ~2.3 items under each.
  const prefixes = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
  const answer = answerRanges(big, prefixes.map((p) => ({ p, ids: [] })));
  assert.ok(answer.ranges.length <= MAX_SYNC_RANGES);
  assert.ok(answer.ranges.reduce((n, r) => n + rangeEntries(r).length, 0) <= MAX_SYNC_ENTRIES);
  assert.deepEqual(initialRanges(empty), [{ p: '', ids: [] }]);
});

test('an answer stays within 64 KiB of JSON (a control message, PROTOCOL.md §6.9) even when a hostile initiator asks for the longest one', () => {
  // Records as the store sees them: ids spread over the whole space, the largest seq (16 digits).
  const n = 16_384;
  const store = new MemoryGossipStore();
  const held: string[] = [];
  for (let i = 0; i < n; i++) {
    const nodeId = createHash('sha256').update(`reconcile size ${i}`).digest('hex');
    held.push(nodeId);
    store.put({ nodeId, seq: Number.MAX_SAFE_INTEGER, expiresAtMs: Infinity, isExpired: () => false } as unknown as PeerRecord);
  }
  held.sort();
  // Empty lists over two-digit prefixes holding at most 64 records (each answered with one
  // `have` list), until the entries are used up, then whole node ids with a wrong fingerprint
  // (each echoed with its 64-digit prefix): about the longest answer the §14.2 limits allow.
  const incoming: SyncRange[] = [];
  const under = new Map<string, number>();
  for (const id of held) under.set(id.slice(0, 2), (under.get(id.slice(0, 2)) ?? 0) + 1);
  let entries = 0;
  for (const [p, count] of [...under].sort()) {
    if (entries + MAX_RANGE_ENTRIES > MAX_SYNC_ENTRIES) break;
    if (count > MAX_RANGE_ENTRIES) continue;
    incoming.push({ p, ids: [] });
    entries += count;
  }
  // After the lists in range order, so that the lists take the entries first.
  const last = incoming.at(-1)!.p;
  for (const id of held) if (id.slice(0, 2) > last && incoming.length < MAX_SYNC_RANGES) incoming.push({ p: id, fp: '0'.repeat(32) });
  const message = { type: 'gossip_sync', x: 0xffffffff, n: 15, ranges: answerRanges(store, incoming).ranges };
  const size = Buffer.byteLength(JSON.stringify(message));
  assert.ok(size <= 65_536, `an answer of ${size} bytes`);
  assert.ok(size > 40_000, `the case reaches near the limit (${size} bytes)`);
  assert.doesNotThrow(() => decodeGossipMessage(JSON.parse(JSON.stringify(message))));
  // An honest catch-up of an empty node from this store also fits, message by message.
  let ranges = initialRanges(new MemoryGossipStore());
  for (let k = 1; k < 16 && ranges.length > 0; k++) {
    ranges = answerRanges(k % 2 ? store : new MemoryGossipStore(), ranges).ranges;
    assert.ok(Buffer.byteLength(JSON.stringify({ type: 'gossip_sync', x: 0xffffffff, n: k, ranges })) <= 65_536);
  }
});
