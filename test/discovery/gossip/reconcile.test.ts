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
import { fingerprint, MAX_SYNC_ENTRIES, MAX_SYNC_RANGES, rangeEntries } from '../../../src/discovery/gossip/protocol.js';
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
