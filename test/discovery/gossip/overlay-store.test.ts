/**
 * The simulator's overlay store (bench/gossip/overlay-store.ts) answers
 * exactly as the real node's store (MemoryGossipStore) holding the same
 * records: same records, sizes, entries and fingerprints for every prefix,
 * through random puts, deletes, base changes, the switch to a store of its
 * own and back. This is what lets the simulator claim the real code's
 * figures.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryGossipStore, type GossipStore } from '../../../src/discovery/gossip/store.js';
import { fingerprint } from '../../../src/discovery/gossip/protocol.js';
import type { PeerRecord } from '../../../src/discovery/record.js';
import { OverlayStore, SharedBase } from '../../../bench/gossip/overlay-store.js';
import { identityOf, recordOf, seeded } from './helpers.js';

const COUNT = 300;
const identities = Array.from({ length: COUNT }, (_, i) => identityOf(2000 + i));
const versions = identities.map((id) => [1, 2, 3].map((seq) => recordOf(id, seq)));
const prefixes = ['', ...'0123456789abcdef'.split(''), ...Array.from({ length: 40 }, (_, i) => (i * 37).toString(16).padStart(2, '0')), 'a1b', 'ff', 'fff'];

function assertSame(overlay: GossipStore, real: GossipStore, what: string): void {
  assert.equal(overlay.size, real.size, `${what}: size`);
  for (const p of prefixes) {
    const a = overlay.summary(p);
    const b = real.summary(p);
    assert.equal(fingerprint(a.sum, a.count), fingerprint(b.sum, b.count), `${what}: fingerprint of "${p}"`);
    assert.equal(a.count, b.count, `${what}: count of "${p}"`);
    if (b.count <= 40) assert.deepEqual(overlay.entries(p), real.entries(p), `${what}: entries of "${p}"`);
  }
  for (const id of identities) assert.equal(overlay.get(id.nodeId), real.get(id.nodeId), `${what}: record of ${id.nodeId.slice(0, 8)}`);
}

test('overlays on a shared base give the real store\'s answers through random changes', () => {
  const rnd = seeded(11);
  const base = new SharedBase(identities.map((i) => i.nodeId));
  // The base: version 1 of most node ids.
  for (let i = 0; i < COUNT; i++) if (rnd() < 0.8) base.set(identities[i]!.nodeId, versions[i]![0]);
  const nodes = Array.from({ length: 4 }, (_, k) => {
    const empty = k === 3;
    const overlay = new OverlayStore(base, empty);
    const real = new MemoryGossipStore();
    if (!empty) for (let i = 0; i < COUNT; i++) if (base.get(identities[i]!.nodeId)) real.put(base.get(identities[i]!.nodeId)!);
    return { overlay, real };
  });
  for (const [k, n] of nodes.entries()) assertSame(n.overlay, n.real, `node ${k} at start`);

  for (let step = 0; step < 3000; step++) {
    const i = Math.floor(rnd() * COUNT);
    const id = identities[i]!.nodeId;
    const x = rnd();
    if (x < 0.1) {
      // The latest record of a node changes in the base (someone published): nobody's view changes.
      const next: PeerRecord | undefined = rnd() < 0.9 ? versions[i]![Math.floor(rnd() * 3)] : undefined;
      base.set(id, next);
    } else {
      const n = nodes[Math.floor(rnd() * nodes.length)]!;
      if (x < 0.8) {
        const r = versions[i]![Math.floor(rnd() * 3)]!;
        n.overlay.put(r);
        n.real.put(r);
      } else {
        n.overlay.delete(id);
        n.real.delete(id);
      }
    }
    if (step % 97 === 0) for (const n of nodes) n.overlay.maybeRejoin();
    if (step % 250 === 0) for (const [k, n] of nodes.entries()) assertSame(n.overlay, n.real, `node ${k} after step ${step}`);
  }
  for (const [k, n] of nodes.entries()) assertSame(n.overlay, n.real, `node ${k} at the end`);
});

test('a node that joins empty keeps a store of its own, and rejoins the base once it has caught up', () => {
  const base = new SharedBase(identities.map((i) => i.nodeId));
  for (let i = 0; i < COUNT; i++) base.set(identities[i]!.nodeId, versions[i]![0]);
  const overlay = new OverlayStore(base, true);
  assert.equal(overlay.size, 0);
  assert.ok(overlay.standalone);
  for (let i = 0; i < COUNT - 10; i++) overlay.put(versions[i]![0]!);
  overlay.maybeRejoin();
  assert.ok(!overlay.standalone, 'rejoined with 10 records missing');
  assert.equal(overlay.deltaSize, 10);
  assert.equal(overlay.size, COUNT - 10);
  const real = new MemoryGossipStore();
  for (let i = 0; i < COUNT - 10; i++) real.put(versions[i]![0]!);
  assertSame(overlay, real, 'after rejoining');
});
