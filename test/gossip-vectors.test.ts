/**
 * Gossip vectors (PROTOCOL.md §14.8, test/vectors/gossip.json):
 *  (b) our implementation regenerates the file exactly, accepts every
 *      accepted message and every message of the exchanges, refuses every
 *      refused message with its code, and replays each exchange;
 *  (c) an independent re-derivation from PROTOCOL.md §14 with raw
 *      node:crypto only (nothing from src/ is imported for it): item hashes,
 *      fingerprints, and every message of every exchange from a reference
 *      implementation of §14.4 written from the text.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

// (b) only.
import { decodeGossipMessage, GOSSIP_TYPE } from '../src/discovery/gossip/protocol.js';
import { isMcpE2eError } from '../src/errors.js';
import { buildGossipVectors, runExchange } from './vectors/generate-gossip.js';

type Entry = [string, number];
type Range = { p: string; fp?: string; ids?: Entry[]; have?: Entry[] };
const vectors = JSON.parse(readFileSync(new URL('../../test/vectors/gossip.json', import.meta.url), 'utf8'));

describe('(b) the implementation reproduces the gossip vectors', () => {
  test('regenerating the file gives the stored file exactly', () => {
    assert.deepEqual(JSON.parse(JSON.stringify(buildGossipVectors())), vectors);
  });

  test('accepted messages and every message of the exchanges pass; refused ones fail with their code', () => {
    for (const c of vectors.accepted) decodeGossipMessage(c.message);
    for (const ex of vectors.exchanges) {
      for (const m of ex.messages) decodeGossipMessage({ type: GOSSIP_TYPE.SYNC, x: 1, n: m.n, ranges: m.ranges });
    }
    for (const c of vectors.refused) {
      assert.throws(() => decodeGossipMessage(c.message), (err: unknown) => isMcpE2eError(err) && err.code === c.code, c.name);
    }
    assert.ok(vectors.refused.length >= 30);
  });

  test('each exchange replays message for message', () => {
    for (const ex of vectors.exchanges) assert.deepEqual(JSON.parse(JSON.stringify(runExchange(ex.a, ex.b))), { messages: ex.messages, wants: ex.wants }, ex.name);
  });
});

// ------------------------------------------------------------------------------------------------
// (c) From the text of §14 alone.
// ------------------------------------------------------------------------------------------------

const sha = (...parts: Buffer[]) => createHash('sha256').update(Buffer.concat(parts)).digest();
const u64 = (v: number) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(v));
  return b;
};
const le = (b: Buffer) => BigInt('0x' + Buffer.from(b).reverse().toString('hex'));
const le256 = (v: bigint) => Buffer.from(v.toString(16).padStart(64, '0'), 'hex').reverse();
const itemHash = (id: string, seq: number) => sha(Buffer.from(id, 'hex'), u64(seq));
function fp(items: Entry[]): string {
  let sum = 0n;
  for (const [id, seq] of items) sum = (sum + le(itemHash(id, seq))) % 2n ** 256n;
  return sha(le256(sum), u64(items.length)).subarray(0, 16).toString('hex');
}

/** §14.4.2, written from the text: answer `incoming` holding `mine` (sorted by id). */
function referenceAnswer(mine: Entry[], incoming: Range[]): { ranges: Range[]; pulls: string[] } {
  const under = (p: string) => mine.filter(([id]) => id.startsWith(p));
  const seqOf = new Map(mine);
  const out: Range[] = [];
  const pulls: string[] = [];
  let entries = 0;
  incoming.forEach((r, i) => {
    const reserve = incoming.length - i - 1;
    const ok = (ranges: number, e: number) => out.length + ranges <= 256 - reserve && entries + e <= 512;
    const echo = () => out.push({ p: r.p, fp: fp(under(r.p)) });
    const split = (afterIds: boolean) => {
      for (const d of '0123456789abcdef') {
        const q = r.p + d;
        const items = under(q);
        if (items.length > 0) out.push({ p: q, fp: fp(items) });
        else if (!afterIds) out.push({ p: q, ids: [] });
      }
    };
    const pull = (list: Entry[]) => {
      for (const [id, seq] of list) {
        const have = seqOf.get(id);
        if (have === undefined || have < seq) pulls.push(id);
      }
    };
    const items = under(r.p);
    if (r.fp !== undefined) {
      if (r.fp === fp(items)) return;
      if (items.length <= 8) {
        if (ok(1, items.length)) {
          out.push({ p: r.p, ids: items });
          entries += items.length;
        } else echo();
      } else if (ok(16, 0)) split(false);
      else echo();
    } else if (r.ids !== undefined) {
      pull(r.ids);
      const listed = new Map(r.ids);
      const extra = items.filter(([id, seq]) => !listed.has(id) || listed.get(id)! < seq);
      if (items.length > 64 + r.ids.length || extra.length > 64) {
        if (ok(16, 0)) split(true);
        else echo();
      } else if (extra.length > 0) {
        if (ok(1, extra.length)) {
          out.push({ p: r.p, have: extra });
          entries += extra.length;
        } else echo();
      }
    } else pull(r.have!);
  });
  return { ranges: out, pulls };
}

describe('(c) re-derived from PROTOCOL.md §14 with node:crypto alone', () => {
  test('item hashes', () => {
    for (const c of vectors.item_hashes) assert.equal(itemHash(c.node_id, c.seq).toString('hex'), c.item_hash);
  });

  test('fingerprints of ranges, sums, and the empty set', () => {
    const set: Entry[] = vectors.fingerprints.set;
    for (const r of vectors.fingerprints.ranges) {
      const items = set.filter(([id]) => id.startsWith(r.prefix));
      assert.equal(items.length, r.count, r.prefix);
      let sum = 0n;
      for (const [id, seq] of items) sum = (sum + le(itemHash(id, seq))) % 2n ** 256n;
      assert.equal(le256(sum).toString('hex'), r.sum, r.prefix);
      assert.equal(fp(items), r.fingerprint, r.prefix);
    }
    assert.equal(fp([]), vectors.fingerprints.empty);
  });

  test('every message of every exchange, and the pulls, follow from §14.4', () => {
    for (const ex of vectors.exchanges) {
      const sides: Record<'a' | 'b', Entry[]> = { a: ex.a, b: ex.b };
      // §14.4.1: the initiator's first message.
      const first = sides.a.length <= 8 ? { p: '', ids: sides.a } : { p: '', fp: fp(sides.a) };
      assert.deepEqual(ex.messages[0], { from: 'a', n: 0, ranges: [first] }, `${ex.name}: first message`);
      const pulls: Record<'a' | 'b', string[]> = { a: [], b: [] };
      for (let k = 1; k <= ex.messages.length; k++) {
        const prev = ex.messages[k - 1];
        if (prev.ranges.length === 0) break;
        const me: 'a' | 'b' = prev.from === 'a' ? 'b' : 'a';
        const answer = referenceAnswer(sides[me], prev.ranges);
        pulls[me].push(...answer.pulls);
        // §14.4.3: an initiator with nothing to add ends the exchange silently; the responder always answers.
        if (me === 'a' && answer.ranges.length === 0) {
          assert.equal(k, ex.messages.length, `${ex.name}: ends after message ${k - 1}`);
          break;
        }
        assert.deepEqual(ex.messages[k], { from: me, n: k, ranges: answer.ranges }, `${ex.name}: message ${k}`);
      }
      assert.deepEqual({ a: pulls.a.sort(), b: pulls.b.sort() }, ex.wants, `${ex.name}: pulls`);
      // After the pulls both sides hold the newest record of every node id of either side.
      const merged = new Map<string, number>();
      for (const [id, seq] of [...ex.a, ...ex.b]) merged.set(id, Math.max(seq, merged.get(id) ?? -1));
      const after = (mine: Entry[], theirs: Entry[], pulled: string[]) => {
        const m = new Map(mine);
        for (const id of pulled) m.set(id, new Map(theirs).get(id)!);
        return m;
      };
      assert.deepEqual(after(ex.a, ex.b, ex.wants.a), merged, `${ex.name}: a converges`);
      assert.deepEqual(after(ex.b, ex.a, ex.wants.b), merged, `${ex.name}: b converges`);
    }
  });
});
