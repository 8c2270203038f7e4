/**
 * The gossip driver (src/discovery/gossip/driver.ts) over in-memory session
 * pairs that carry JSON text like the control channel, with real timers and
 * short intervals: membership decides which sessions gossip, records reach
 * a node two hops away, a cut-off closes the session, a closed session is
 * let go, and what cannot be sent is counted, not buffered.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { GossipDriver, MAX_IN_FLIGHT_PER_SESSION, type GossipSession } from '../../../src/discovery/gossip/driver.js';
import { GOSSIP_TYPE } from '../../../src/discovery/gossip/protocol.js';
import type { PeerRecord } from '../../../src/discovery/record.js';
import { identityOf, recordOf } from './helpers.js';

const FAST = { gossipIntervalMs: 20, antiEntropyIntervalMs: 100 };

class FakeSession implements GossipSession {
  other!: FakeSession;
  closed = false;
  readonly handlers = new Map<string, (m: { type: string }) => void>();
  readonly done: Promise<void>;
  #resolve!: () => void;
  /** When set, sends never complete (a peer that stops reading). */
  stalled = false;
  constructor(readonly peer: { nodeId: string }) {
    this.done = new Promise((r) => (this.#resolve = r));
  }
  send(message: { type: string }): Promise<void> {
    if (this.closed) return Promise.reject(new Error('closed'));
    if (this.stalled) return new Promise(() => {});
    const text = JSON.stringify(message);
    setImmediate(() => !this.other.closed && this.other.handlers.get(message.type)?.(JSON.parse(text)));
    return Promise.resolve();
  }
  handle(type: string, handler: (m: { type: string }) => void): () => void {
    this.handlers.set(type, handler);
    return () => this.handlers.delete(type);
  }
  async close(): Promise<void> {
    for (const s of [this, this.other]) {
      if (s.closed) continue;
      s.closed = true;
      s.#resolve();
    }
  }
}

/** A session between a and b: returns [a's end (peer b), b's end (peer a)]. */
function pair(a: string, b: string): [FakeSession, FakeSession] {
  const x = new FakeSession({ nodeId: b });
  const y = new FakeSession({ nodeId: a });
  x.other = y;
  y.other = x;
  return [x, y];
}

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await sleep(10);
  }
}

const ids = [identityOf(50), identityOf(51), identityOf(52)];

function driver(i: number, isMember: (id: string) => boolean = () => true) {
  const learned = new Map<string, PeerRecord>();
  const d = new GossipDriver({ selfId: ids[i]!.nodeId, isMember, gossip: FAST, onRecord: (r) => learned.set(r.nodeId, r) });
  d.start();
  return { d, learned };
}

test('records reach a node two hops away; membership decides which sessions gossip', async () => {
  const a = driver(0);
  const b = driver(1);
  const c = driver(2, (id) => id !== ids[0]!.nodeId); // c does not gossip with a
  try {
    for (const [i, n] of [a, b, c].entries()) n.d.publish(recordOf(ids[i]!, 1, Date.now()));
    const [ab, ba] = pair(ids[0]!.nodeId, ids[1]!.nodeId);
    const [bc, cb] = pair(ids[1]!.nodeId, ids[2]!.nodeId);
    const [ac, ca] = pair(ids[0]!.nodeId, ids[2]!.nodeId);
    assert.ok(a.d.attach(ab) && b.d.attach(ba) && b.d.attach(bc) && c.d.attach(cb));
    assert.ok(a.d.attach(ac));
    assert.equal(c.d.attach(ca), false, 'not a member');
    await until(() => a.learned.has(ids[2]!.nodeId) && c.learned.has(ids[0]!.nodeId));
    assert.equal(c.d.status().refusedSessions, 1);
    assert.deepEqual(c.d.status().peers, [ids[1]!.nodeId]);
    // A new record of a's spreads to c by push, through b.
    a.d.publish(recordOf(ids[0]!, 2, Date.now()));
    await until(() => c.learned.get(ids[0]!.nodeId)?.seq === 2);
  } finally {
    for (const n of [a, b, c]) n.d.stop();
  }
});

test('a peer that leaves the membership during its session stops gossiping at the next round (an allowlist edit reaches live sessions)', async () => {
  let member = true;
  const a = driver(0, () => member);
  const b = driver(1);
  try {
    const [ab, ba] = pair(ids[0]!.nodeId, ids[1]!.nodeId);
    assert.ok(a.d.attach(ab) && b.d.attach(ba));
    b.d.publish(recordOf(ids[1]!, 1, Date.now()));
    await until(() => a.learned.has(ids[1]!.nodeId));
    member = false;
    await until(() => a.d.status().peers.length === 0);
    assert.equal(a.d.status().refusedSessions, 1);
    // What b sends now is not taken: its newer record never reaches a.
    const before = a.d.status().counters.messagesIn;
    b.d.publish(recordOf(ids[1]!, 2, Date.now()));
    await sleep(300);
    assert.equal(a.learned.get(ids[1]!.nodeId)?.seq, 1);
    assert.equal(a.d.status().counters.messagesIn, before);
    assert.equal(ab.closed, false, 'the session itself belongs to the mesh node');
  } finally {
    for (const n of [a, b]) n.d.stop();
  }
});

test('a peer sending forged records is cut off and its session closed; a closed session is let go', async () => {
  const a = driver(0);
  try {
    const [ab, ba] = pair(ids[0]!.nodeId, ids[1]!.nodeId);
    a.d.attach(ab);
    const hex = recordOf(ids[2]!, 1, Date.now()).toHex();
    const forged = hex.slice(0, -2) + (hex.endsWith('00') ? '01' : '00');
    for (let i = 0; i < 2; i++) void ba.send({ type: GOSSIP_TYPE.PUSH, records: [forged] } as { type: string });
    await until(() => ab.closed);
    assert.deepEqual(a.d.status().peers, []);
    assert.equal(a.d.status().counters.cutoffs, 1);
    // Banned: a new session of the same peer is closed at once.
    const [ab2] = pair(ids[0]!.nodeId, ids[1]!.nodeId);
    assert.equal(a.d.attach(ab2), false);
    await until(() => ab2.closed);
    // A session that closes by itself is let go.
    const [ac, ca] = pair(ids[0]!.nodeId, ids[2]!.nodeId);
    a.d.attach(ac);
    await ca.close();
    await until(() => a.d.status().peers.length === 0);
  } finally {
    a.d.stop();
  }
});

test('a peer that stops reading: sends beyond the in-flight bound are dropped and counted', async () => {
  const a = driver(0);
  try {
    const [ab] = pair(ids[0]!.nodeId, ids[1]!.nodeId);
    ab.stalled = true;
    a.d.attach(ab);
    // Each new record of ours, flushed at once, is one push to the only peer.
    for (let seq = 1; seq <= MAX_IN_FLIGHT_PER_SESSION + 10; seq++) {
      a.d.publish(recordOf(ids[0]!, seq, Date.now()));
      a.d.flush();
    }
    assert.ok(a.d.status().sendsDropped >= 10, `${a.d.status().sendsDropped} dropped`);
  } finally {
    a.d.stop();
  }
});
