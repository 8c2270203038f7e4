/**
 * The gossip engine against a hostile mesh member (src/discovery/gossip/
 * engine.ts): forged, wrongly-labelled, replayed, stale, expired, oversize
 * and unasked-for records are refused with their codes, scored, reported
 * once per interval and end in a cut-off; an honest node's record is never
 * replaced by an older one; pushes are bounded; leaving records.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { GossipEngine, DEFAULT_GOSSIP, verifyRecordHex, type GossipEvent, type GossipStep } from '../../../src/discovery/gossip/engine.js';
import { createLeavingRecord } from '../../../src/discovery/gossip/leaving.js';
import { GOSSIP_TYPE } from '../../../src/discovery/gossip/protocol.js';
import { createPeerRecord, encodePeerRecordBody } from '../../../src/discovery/record.js';
import { LABEL } from '../../../src/protocol.js';
import { identityOf, NOW, recordOf, seeded } from './helpers.js';

const self = identityOf(1);
const mallory = identityOf(2).nodeId;
const honest = identityOf(3);
const push = (...records: string[]) => ({ type: GOSSIP_TYPE.PUSH, records });

function victim(options = {}) {
  const e = new GossipEngine(self.nodeId, NOW, { random: seeded(1), options });
  e.addPeer(mallory, NOW);
  return e;
}

const events = (e: GossipEvent[], type: GossipEvent['type']) => e.filter((x) => x.type === type);

function forgeries() {
  const good = recordOf(honest, 5);
  const hex = good.toHex();
  const flip = (i: number) => hex.slice(0, i) + (hex[i] === '0' ? '1' : '0') + hex.slice(i + 1);
  const body = encodePeerRecordBody(honest.publicKey, { seq: 6, issuedAtMs: NOW, expiresAtMs: NOW + 60_000, addresses: [], protocolVersions: [1] });
  return {
    good,
    badSignature: flip(hex.length - 3),
    alteredBody: flip(160),
    wrongLabel: Buffer.concat([body, honest.sign(LABEL.RECORD_SIGNATURE, body)]).toString('hex'),
    wrongNodeId: hex.slice(0, 66) + identityOf(4).nodeId + hex.slice(130),
    oversize: 'ab'.repeat(2049),
    expired: recordOf(honest, 7, NOW - 7_200_000).toHex(),
    future: recordOf(honest, 8, NOW + 3_600_000).toHex(),
  };
}

test('each kind of bad record is refused with its code, and the store keeps the honest record', () => {
  const f = forgeries();
  const cases: Array<[string, string]> = [
    [f.badSignature, 'ERR_RECORD_BAD_SIGNATURE'],
    [f.alteredBody, 'ERR_RECORD_BAD_SIGNATURE'],
    [f.wrongLabel, 'ERR_RECORD_BAD_SIGNATURE'],
    [f.wrongNodeId, 'ERR_RECORD_NODE_ID_MISMATCH'],
    [f.expired, 'ERR_RECORD_EXPIRED'],
    [f.future, 'ERR_RECORD_FROM_FUTURE'],
  ];
  for (const [hex, code] of cases) {
    const e = victim({ cutoffScore: -1000 });
    e.receive(mallory, push(hex), NOW);
    assert.equal(e.counters.refused[code as 'ERR_RECORD_EXPIRED'], 1, code);
    assert.equal(e.store.size, 0, code);
  }
  const e = victim({ cutoffScore: -1000 });
  e.receive(mallory, push(f.oversize), NOW);
  assert.equal(e.scoreOf(mallory), -10, 'an oversize record costs the whole message');
});

test('an honest record is never replaced by an older one; a replay, a stale record or an equivocation costs the relayer nothing', () => {
  const e = victim();
  const v1 = recordOf(honest, 1);
  const v2 = recordOf(honest, 2);
  e.receive(mallory, push(v2.toHex()), NOW);
  e.receive(mallory, push(v2.toHex()), NOW);
  assert.equal(e.counters.refused.ERR_RECORD_REPLAYED, 1);
  assert.equal(e.scoreOf(mallory), 0);
  e.receive(mallory, push(v1.toHex()), NOW);
  assert.equal(e.counters.refused.ERR_RECORD_STALE, 1);
  assert.equal(e.scoreOf(mallory), 0);
  assert.equal(e.store.get(honest.nodeId)!.seq, 2);
  // Equal seq, other content: equivocation, and the first stays.
  const other = createPeerRecord(honest, { seq: 2, issuedAtMs: NOW, expiresAtMs: NOW + 60_000, addresses: [], protocolVersions: [1] });
  e.receive(mallory, push(other.toHex()), NOW);
  assert.equal(e.counters.refused.ERR_RECORD_EQUIVOCATION, 1);
  assert.ok(e.store.get(honest.nodeId)!.bytes.equals(v2.bytes));
  assert.equal(e.scoreOf(mallory), 0);
});

test('a third party sending two versions of its records to two honest relays never gets either relay cut off', () => {
  // Any key holder can sign two records with one seq (or an old and a new one)
  // for as many identities as it likes; each relay got a valid record, passes it
  // on, and the node that receives both refuses the second as an equivocation.
  const e = new GossipEngine(self.nodeId, NOW, { random: seeded(9) });
  const [relayA, relayB] = [identityOf(500).nodeId, identityOf(501).nodeId];
  e.addPeer(relayA, NOW);
  e.addPeer(relayB, NOW);
  let t = NOW;
  for (let i = 0; i < 64; i++) {
    const sybil = identityOf(600 + i);
    const a = createPeerRecord(sybil, { seq: 5, issuedAtMs: NOW, expiresAtMs: NOW + 600_000, addresses: ['ws://127.0.0.1:1'], protocolVersions: [2] });
    const b = createPeerRecord(sybil, { seq: 5, issuedAtMs: NOW, expiresAtMs: NOW + 600_000, addresses: ['ws://127.0.0.1:2'], protocolVersions: [2] });
    const older = createPeerRecord(sybil, { seq: 4, issuedAtMs: NOW, expiresAtMs: NOW + 600_000, addresses: [], protocolVersions: [2] });
    t += 1000; // within the push buckets
    e.receive(relayA, push(a.toHex()), t);
    const step = e.receive(relayB, push(b.toHex(), older.toHex()), t);
    assert.deepEqual(events(step.events, 'cutoff'), []);
  }
  assert.equal(e.counters.refused.ERR_RECORD_EQUIVOCATION, 64);
  assert.equal(e.counters.refused.ERR_RECORD_STALE, 64);
  assert.equal(e.counters.cutoffs, 0);
  assert.deepEqual(new Set(e.peers), new Set([relayA, relayB]));
});

test('a member sending forged records is cut off, reported once, and refused afterwards', () => {
  const f = forgeries();
  const e = victim();
  const s1 = e.receive(mallory, push(f.badSignature), NOW);
  assert.equal(events(s1.events, 'cutoff').length, 0);
  const s2 = e.receive(mallory, push(f.wrongLabel, f.good.toHex()), NOW + 1);
  const cut = events(s2.events, 'cutoff');
  assert.equal(cut.length, 1);
  assert.deepEqual(events(s2.events, 'misbehaviour').map((m) => (m as { counts: object }).counts), [{ ERR_RECORD_BAD_SIGNATURE: 2 }]);
  assert.deepEqual(e.peers, []);
  assert.equal(e.store.size, 0, 'nothing after the cut-off is read');
  assert.equal(e.addPeer(mallory, NOW + 2).send.length, 0);
  assert.deepEqual(e.peers, [], 'banned');
  e.addPeer(mallory, NOW + DEFAULT_GOSSIP.banMs + 3);
  assert.deepEqual(e.peers, [mallory], 'the ban ends');
});

test('after its ban a cut-off member starts from a clean score, however slowly scores recover (the ban is the punishment)', () => {
  const f = forgeries();
  // One point back per minute: the cut-off score (-20) would take 20 minutes, twice the ban.
  const e = victim({ antiEntropyIntervalMs: 60_000 });
  e.receive(mallory, push(f.badSignature), NOW);
  assert.equal(events(e.receive(mallory, push(f.wrongLabel), NOW + 1).events, 'cutoff').length, 1);
  const back = NOW + DEFAULT_GOSSIP.banMs + 2;
  e.addPeer(mallory, back);
  assert.equal(e.scoreOf(mallory), 0);
  // One forged record afterwards costs what it costs anyone, not a second ban.
  assert.equal(events(e.receive(mallory, push(f.badSignature), back + 1).events, 'cutoff').length, 0);
  assert.deepEqual(e.peers, [mallory]);
});

test('refusals are reported once per interval, not once per record (and stale ones without a penalty)', () => {
  const e = victim();
  const stale = recordOf(honest, 1).toHex();
  e.receive(mallory, push(recordOf(honest, 9).toHex()), NOW);
  let reports = 0;
  for (let i = 0; i < 8; i++) {
    e.receive(mallory, push(stale), NOW + i * 1000);
    reports += events(e.tick(NOW + i * 1000).events, 'misbehaviour').length;
  }
  assert.equal(reports, 1, 'one report in the first minute');
  const later = e.tick(NOW + DEFAULT_GOSSIP.logIntervalMs + 1).events;
  assert.deepEqual(events(later, 'misbehaviour').map((m) => (m as { counts: object }).counts), [{ ERR_RECORD_STALE: 7 }]);
});

test('records nobody asked for are refused unread; answers to our wants are taken', () => {
  const e = victim();
  e.receive(mallory, { type: GOSSIP_TYPE.RECORDS, w: 77, records: [recordOf(honest, 1).toHex()] }, NOW);
  assert.equal(e.store.size, 0);
  assert.equal(e.scoreOf(mallory), -5);
  // A sync that lists a record we lack makes us want it, and the answer is accepted.
  const r = recordOf(honest, 3);
  const step = e.receive(mallory, { type: GOSSIP_TYPE.SYNC, x: 1, n: 0, ranges: [{ p: '', ids: [[honest.nodeId, 3]] }] }, NOW);
  const want = step.send.find((o) => o.message.type === GOSSIP_TYPE.WANT)!.message as { w: number; ids: readonly string[] };
  assert.deepEqual(want.ids, [honest.nodeId]);
  e.receive(mallory, { type: GOSSIP_TYPE.RECORDS, w: want.w, records: [r.toHex()] }, NOW);
  assert.equal(e.store.get(honest.nodeId)!.seq, 3);
  // The same answer again is no longer asked for.
  e.receive(mallory, { type: GOSSIP_TYPE.RECORDS, w: want.w, records: [r.toHex()] }, NOW);
  assert.equal(e.scoreOf(mallory), -10);
});

test('a flood of messages is cut by the token bucket: what is over it is dropped unanswered and counted, never scored', () => {
  const e = victim();
  let answered = 0;
  for (let i = 0; i < 200; i++) {
    const step = e.receive(mallory, { type: GOSSIP_TYPE.SYNC, x: i, n: 0, ranges: [{ p: '', ids: [] }] }, NOW);
    answered += step.send.length;
    assert.deepEqual(events(step.events, 'cutoff'), []);
  }
  assert.ok(e.counters.rateLimited >= 100, `${e.counters.rateLimited} dropped`);
  assert.ok(answered <= 200 - e.counters.rateLimited, 'dropped messages cost no answer');
  // An honest node catching up goes over its peer's buckets without any fault: no score, no cut-off.
  assert.equal(e.scoreOf(mallory), 0);
  assert.deepEqual(e.peers, [mallory]);
});

test('an answer that comes late (the session stream was slow) is still taken, and never scored', () => {
  const e = victim();
  const r = recordOf(honest, 3);
  const step = e.receive(mallory, { type: GOSSIP_TYPE.SYNC, x: 1, n: 0, ranges: [{ p: '', ids: [[honest.nodeId, 3]] }] }, NOW);
  const want = step.send.find((o) => o.message.type === GOSSIP_TYPE.WANT)!.message as { w: number };
  // Far past the want timeout (a paused reader, a large MCP message ahead of the answer).
  for (let t = 1; t <= 30; t++) e.tick(NOW + t * 1000);
  e.receive(mallory, { type: GOSSIP_TYPE.RECORDS, w: want.w, records: [r.toHex()] }, NOW + 30_500);
  assert.equal(e.store.get(honest.nodeId)?.seq, 3);
  assert.equal(e.scoreOf(mallory), 0);
});

test('malformed gossip messages cost points and are dropped', () => {
  const e = victim({ cutoffScore: -1000 });
  const bad = [
    { type: GOSSIP_TYPE.PUSH, records: [] },
    { type: GOSSIP_TYPE.PUSH, records: ['00'], extra: 1 },
    { type: GOSSIP_TYPE.WANT, w: 1, ids: ['AB'.repeat(32)] },
    { type: GOSSIP_TYPE.SYNC, x: 1, n: 16, ranges: [] },
    { type: GOSSIP_TYPE.SYNC, x: 1, n: 0, ranges: [{ p: 'a', fp: '00'.repeat(16) }, { p: 'ab', fp: '00'.repeat(16) }] },
    'not an object',
  ];
  for (const m of bad) e.receive(mallory, m, NOW);
  assert.equal(e.scoreOf(mallory), -10 * bad.length);
});

test('a published record is pushed to each peer at most once, within the retransmit limit', () => {
  const e = new GossipEngine(self.nodeId, NOW, { random: seeded(3) });
  const peers = Array.from({ length: 10 }, (_, i) => identityOf(100 + i).nodeId);
  for (const p of peers) e.addPeer(p, NOW);
  e.publish(recordOf(self, 1));
  const got = new Map<string, number>();
  for (let t = 1; t <= 10; t++) {
    for (const o of e.tick(NOW + t * 1000).send) if (o.message.type === GOSSIP_TYPE.PUSH) got.set(o.peer, (got.get(o.peer) ?? 0) + 1);
  }
  // One record in the store: limit 4 * ceil(log10(2)) = 4 transmits.
  assert.equal([...got.values()].reduce((a, b) => a + b, 0), 4);
  assert.ok([...got.values()].every((n) => n === 1));
});

test('a leaving record makes the node gone at once, and its older records stay refused', () => {
  const e = victim();
  const r = recordOf(honest, 1);
  e.receive(mallory, push(r.toHex()), NOW);
  const leaving = createLeavingRecord(honest, r, NOW + 1000);
  assert.ok(leaving.expiresAtMs >= r.expiresAtMs, 'outlives the record it replaces');
  assert.deepEqual(leaving.addresses, []);
  const s = e.receive(mallory, push(leaving.toHex()), NOW + 1000);
  assert.equal(events(s.events, 'left').length, 1);
  e.receive(mallory, push(r.toHex()), NOW + 2000);
  assert.equal(e.counters.refused.ERR_RECORD_STALE, 1);
  assert.equal(e.store.get(honest.nodeId)!.seq, leaving.seq);
});

test('a record of our own id that we did not make asks us to publish a newer one; it is never stored', () => {
  const e = victim();
  e.publish(recordOf(self, 5));
  const s = e.receive(mallory, push(recordOf(self, 9).toHex()), NOW);
  assert.deepEqual(events(s.events, 'self').map((x) => (x as { seq: number }).seq), [9]);
  assert.equal(e.store.get(self.nodeId)!.seq, 5);
});

test('the store cap refuses new node ids, not updates', () => {
  const e = victim({ maxRecords: 2 });
  e.receive(mallory, push(recordOf(identityOf(10), 1).toHex(), recordOf(identityOf(11), 1).toHex(), recordOf(identityOf(12), 1).toHex()), NOW);
  assert.equal(e.store.size, 2);
  assert.equal(e.counters.storeFull, 1);
  e.receive(mallory, push(recordOf(identityOf(10), 2).toHex()), NOW);
  assert.equal(e.store.get(identityOf(10).nodeId)!.seq, 2);
  assert.equal(e.scoreOf(mallory), 0);
});

test('options: unknown names and bad values are refused; SECURITY.md and PROTOCOL.md state the defaults', () => {
  assert.throws(() => new GossipEngine(self.nodeId, NOW, { options: { fanuot: 3 } as object }), TypeError);
  for (const bad of [{ fanout: 0 }, { gossipIntervalMs: Number.NaN }, { cutoffScore: 5 }]) assert.throws(() => new GossipEngine(self.nodeId, NOW, { options: bad }), RangeError);
  const d = DEFAULT_GOSSIP;
  const security = readFileSync(new URL('../../../../SECURITY.md', import.meta.url), 'utf8');
  const protocol = readFileSync(new URL('../../../../PROTOCOL.md', import.meta.url), 'utf8');
  for (const text of [security, protocol]) {
    assert.ok(text.includes(`burst ${d.messageBurst}`) && text.includes(`${d.messagesPerSecond} per second`), 'message bucket');
    assert.ok(text.includes(`burst ${d.pushRecordBurst}`) && text.includes(`${d.pushRecordsPerSecond} per second`), 'record bucket');
    assert.match(text, new RegExp(`Records refused in pulls [^|]*\\| burst ${d.pullRefusalBurst}, (then )?${d.pullRefusalsPerSecond} per second`), 'pull refusal bucket');
    assert.ok(text.includes(`${d.maxRecords.toLocaleString('en-US')}`), 'maxRecords');
    assert.ok(text.includes(`${d.seenTtlMs / 1000} s`), 'seen cache');
    assert.ok(text.includes(`${d.cutoffScore}`.replace('-', '−')), 'cut-off');
    assert.ok(text.includes(`${d.banMs / 60_000} minutes`), 'ban');
  }
  assert.ok(protocol.includes(`fanout ${d.fanout}`) && protocol.includes(`round ${d.gossipIntervalMs / 1000} s`), 'PROTOCOL.md §14.9');
});

/** A record of `identity` as close to the 2,048-byte limit as eight addresses make it. */
function largestRecordOf(identity: ReturnType<typeof identityOf>, seq: number) {
  for (let n = 230; n > 0; n--) {
    try {
      const addresses = Array.from({ length: 8 }, (_, i) => `wss://h${i}${'a'.repeat(n)}.example:8765/mcp`);
      return createPeerRecord(identity, { seq, issuedAtMs: NOW, expiresAtMs: NOW + 3_600_000, addresses, protocolVersions: [2], name: 'n'.repeat(64) });
    } catch {
      // too large: one character shorter
    }
  }
  throw new Error('no record fits');
}

test('a push or an answer of the largest records stays within the 64 KiB control message limit; what does not fit waits or is pulled again', () => {
  const big = Array.from({ length: 16 }, (_, i) => largestRecordOf(identityOf(300 + i), 1));
  assert.ok(big.every((r) => r.bytes.length > 2000), `records of ${big[0]!.bytes.length} bytes`);
  const e = new GossipEngine(self.nodeId, NOW, { random: seeded(5), options: { fanout: 1 } });
  const peer = identityOf(400).nodeId;
  e.addPeer(peer, NOW);
  // Learned from another member (a push is passed on; only our own record is published).
  e.addPeer(mallory, NOW);
  e.receive(mallory, push(...big.slice(0, 8).map((r) => r.toHex())), NOW);
  e.receive(mallory, push(...big.slice(8).map((r) => r.toHex())), NOW);
  assert.equal(e.store.size, 16);
  const pushed = new Set<string>();
  let pushes = 0;
  for (let t = 1; t <= 4 && pushed.size < big.length; t++) {
    for (const o of e.tick(NOW + t * 1000).send) {
      if (o.message.type !== GOSSIP_TYPE.PUSH || o.peer !== peer) continue;
      pushes++;
      assert.ok(Buffer.byteLength(JSON.stringify(o.message)) <= 65_536, `push of ${Buffer.byteLength(JSON.stringify(o.message))} bytes`);
      for (const hex of (o.message as { records: readonly string[] }).records) pushed.add(hex);
    }
  }
  assert.equal(pushed.size, big.length, 'every record is pushed, over more than one round');
  assert.ok(pushes >= 2);
  // A want of all 16: the answer holds what fits, the rest is left out.
  const answer = e.receive(peer, { type: GOSSIP_TYPE.WANT, w: 7, ids: big.map((r) => r.nodeId) }, NOW + 5000).send.find((o) => o.message.type === GOSSIP_TYPE.RECORDS)!;
  const size = Buffer.byteLength(JSON.stringify(answer.message));
  const answered = (answer.message as unknown as { records: readonly string[] }).records.length;
  assert.ok(size <= 65_536, `answer of ${size} bytes`);
  assert.ok(answered >= 12 && answered < 16, `${answered} records answered`);
});

test('a peer that stalls while we lack many of its records is never cut off when its answers come: no want is forgotten unanswered', () => {
  const e = victim();
  // It lists 1,200 records we lack: far more than 64 wants of 16 ids.
  const lacking = Array.from({ length: 1200 }, (_, i) => recordOf(identityOf(2000 + i), 1));
  const wants: Array<{ w: number; ids: readonly string[] }> = [];
  const collect = (step: { send: ReadonlyArray<{ message: { type: string } }> }) => {
    for (const o of step.send) if (o.message.type === GOSSIP_TYPE.WANT) wants.push(o.message as unknown as { w: number; ids: readonly string[] });
  };
  for (let k = 0; k < lacking.length; k += 64) {
    collect(e.receive(mallory, { type: GOSSIP_TYPE.SYNC, x: k, n: 0, ranges: [{ p: '', ids: lacking.slice(k, k + 64).map((r) => [r.nodeId, 1] as [string, number]).sort() }] }, NOW));
  }
  // The peer stalls for 40 s: the timeouts free the ids, and more wants go out while it is silent.
  for (let t = 1; t <= 40; t++) collect(e.tick(NOW + t * 1000));
  assert.ok(wants.length <= 64, `${wants.length} wants unanswered at once`);
  // Then every answer arrives, in order: all taken, nothing scored.
  const byId = new Map(lacking.map((r) => [r.nodeId, r]));
  for (const want of wants) {
    const step = e.receive(mallory, { type: GOSSIP_TYPE.RECORDS, w: want.w, records: want.ids.map((id) => byId.get(id)!.toHex()) }, NOW + 41_000);
    assert.deepEqual(events(step.events, 'cutoff'), []);
  }
  assert.equal(e.scoreOf(mallory), 0);
  assert.deepEqual(e.peers, [mallory]);
});

/**
 * Plays a member that makes `e` pull from it: one message per 1/32 s (within
 * the message bucket), an answer to the oldest want of `e` with `answer(ids)`
 * (the records for the ids it names), or, when none waits, a gossip_sync of its
 * own listing the next 64 of `listed` (cycling). `e` ticks every second.
 * Returns every event.
 */
function serveWants(e: GossipEngine, peer: string, listed: ReadonlyArray<[string, number]>, answer: (ids: readonly string[]) => string[], seconds: number, reconnectEachSecond = false): GossipEvent[] {
  const sorted = [...listed].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  const wants: Array<{ w: number; ids: readonly string[] }> = [];
  const out: GossipEvent[] = [];
  const take = (step: GossipStep) => {
    for (const o of step.send) if (o.peer === peer && o.message.type === GOSSIP_TYPE.WANT) wants.push(o.message as unknown as { w: number; ids: readonly string[] });
    out.push(...step.events);
  };
  let x = 0;
  for (let k = 1; k <= seconds * 32; k++) {
    const t = NOW + (k * 1000) / 32;
    const want = wants.shift();
    if (want) take(e.receive(peer, { type: GOSSIP_TYPE.RECORDS, w: want.w, records: answer(want.ids) }, t));
    else {
      const from = (x * 64) % sorted.length;
      take(e.receive(peer, { type: GOSSIP_TYPE.SYNC, x: x++, n: 0, ranges: [{ p: '', ids: sorted.slice(from, from + 64) }] }, t));
    }
    if (k % 32 === 0) {
      take(e.tick(t));
      if (reconnectEachSecond) {
        // The member ends its session and dials again: a new session, its wants forgotten.
        e.removePeer(peer);
        take(e.addPeer(peer, t));
        wants.length = 0;
      }
    }
  }
  return out;
}

/**
 * Mallory makes us want 2,048 ids and answers every want with validly signed
 * records of them, expired an hour ago, each with a new seq (so the seen
 * cache never knows it), for `seconds`. Counts our signature checks.
 */
function expiredPullFlood(seconds: number, reconnectEachSecond = false) {
  let verifies = 0;
  const e = new GossipEngine(self.nodeId, NOW, { random: seeded(1), verify: (hex, now) => (verifies++, verifyRecordHex(hex, now)) });
  e.addPeer(mallory, NOW);
  const sybils = new Map(Array.from({ length: 2048 }, (_, i) => identityOf(3000 + i)).map((s) => [s.nodeId, s]));
  let made = 0;
  const expired = (id: string) => recordOf(sybils.get(id)!, ++made, NOW - 7_200_000).toHex();
  const reported = serveWants(e, mallory, [...sybils.keys()].map((id) => [id, 1]), (ids) => ids.map(expired), seconds, reconnectEachSecond);
  return { e, reported, verifies, made };
}

test('a member that reconnects gets back the buckets and score it left with, not fresh ones: its pull flood stays within one bucket', () => {
  const seconds = 10;
  const { verifies, made } = expiredPullFlood(seconds, true);
  const d = DEFAULT_GOSSIP;
  // With a fresh bucket per session, one reconnection a second was 1,580 checks in 10 s.
  assert.ok(verifies <= d.pullRefusalBurst + d.pullRefusalsPerSecond * seconds + 1, `${verifies} signature checks for ${made} records`);
  // The score, too, survives a reconnection.
  const scored = new GossipEngine(self.nodeId, NOW, { random: seeded(2) });
  scored.addPeer(mallory, NOW);
  scored.receive(mallory, { type: GOSSIP_TYPE.RECORDS, w: 99, records: [] }, NOW + 1);
  scored.receive(mallory, { type: GOSSIP_TYPE.RECORDS, w: 98, records: [recordOf(identityOf(7), 1).toHex()] }, NOW + 2);
  const score = scored.scoreOf(mallory)!;
  assert.ok(score < 0, `score ${score}`);
  scored.removePeer(mallory);
  scored.addPeer(mallory, NOW + 3);
  assert.equal(scored.scoreOf(mallory), score);
});

test('a member that makes us pull records we refuse costs a bounded number of signature checks: the rest is dropped unverified, counted, not scored', () => {
  const seconds = 5;
  const { e, reported, verifies, made } = expiredPullFlood(seconds);
  const d = DEFAULT_GOSSIP;
  assert.ok(made > 1500, `${made} records sent`);
  // 16 records per answer at the message rate were ~490 checks a second, forever, for nothing.
  assert.ok(verifies <= d.pullRefusalBurst + d.pullRefusalsPerSecond * seconds + 1, `${verifies} signature checks for ${made} records`);
  assert.equal(e.counters.refused.ERR_RECORD_EXPIRED, verifies);
  assert.equal(e.counters.pullsDropped, made - verifies);
  assert.ok(events(reported, 'misbehaviour').some((m) => ((m as { counts: Record<string, number> }).counts.ERR_GOSSIP_RATE_LIMITED ?? 0) > 0), 'the drops are reported');
  assert.equal(e.scoreOf(mallory), 0);
});

test('an honest catch-up by pull never draws on the refusal bucket: thousands of records are all taken at once', () => {
  const e = victim();
  const lacking = new Map(Array.from({ length: 1500 }, (_, i) => recordOf(identityOf(5000 + i), 1)).map((r) => [r.nodeId, r.toHex()]));
  serveWants(e, mallory, [...lacking.keys()].map((id) => [id, 1]), (ids) => ids.map((id) => lacking.get(id)!), 6);
  assert.equal(e.store.size, lacking.size);
  assert.equal(e.counters.pullsDropped, 0);
  assert.equal(e.scoreOf(mallory), 0);
});

test('an honest relayer passing on a third party\'s records that are from the future here is never cut off, and its valid records all arrive', () => {
  // Its clock is ahead of ours: a third party's records issued at the edge of its
  // skew window are valid there, from the future here, and refused at every pull
  // (uncached: they may be valid a moment later).
  const e = victim();
  const valid = new Map<string, string>();
  const future = new Map<string, string>();
  for (let i = 0; i < 300; i++) {
    const r = recordOf(identityOf(7000 + i), 1);
    valid.set(r.nodeId, r.toHex());
    const f = recordOf(identityOf(8000 + i), 1, NOW + 30 * 60_000);
    future.set(f.nodeId, f.toHex());
  }
  // It answers in any order (§14.5); here the refused records first, so the valid ones
  // would always come after the bucket ran out if an answer were read in order.
  const answer = (ids: readonly string[]) => [...ids.filter((id) => future.has(id)).map((id) => future.get(id)!), ...ids.filter((id) => valid.has(id)).map((id) => valid.get(id)!)];
  const listed = [...valid.keys(), ...future.keys()].map((id): [string, number] => [id, 1]);
  const reported = serveWants(e, mallory, listed, answer, 45);
  // Far more refusals than the bucket holds: scoring them would cut this relayer off.
  assert.ok(e.counters.refused.ERR_RECORD_FROM_FUTURE! > DEFAULT_GOSSIP.pullRefusalBurst + 20, `${e.counters.refused.ERR_RECORD_FROM_FUTURE} refused`);
  assert.ok(e.counters.pullsDropped > 0, 'the bucket was emptied');
  assert.deepEqual(events(reported, 'cutoff'), []);
  assert.deepEqual(e.peers, [mallory]);
  assert.equal(e.scoreOf(mallory), 0);
  assert.equal(e.store.size, valid.size, 'every valid record is taken');
});
