/**
 * Golden vectors of gossip (PROTOCOL.md §14.8), written to
 * test/vectors/gossip.json:
 * - item hashes and fingerprints of fixed (node id, seq) sets, per prefix;
 * - whole reconciliation exchanges between two fixed sets: every
 *   `gossip_sync` in order and the ids each side then wants;
 * - accepted and refused messages, each refused one with its code.
 *
 * Deterministic: node ids are SHA-256 of fixed strings, seqs are fixed.
 * Regenerate with `npx tsc -p tsconfig.json && node dist/test/vectors/generate-gossip.js`.
 */
import { writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { PeerRecord } from '../../src/discovery/record.js';
import { MemoryGossipStore } from '../../src/discovery/gossip/store.js';
import { answerRanges, initialRanges } from '../../src/discovery/gossip/reconcile.js';
import { decodeGossipMessage, fingerprint, GOSSIP_TYPE, itemHash, MAX_SYNC_ROUNDS, type Entry, type SyncRange } from '../../src/discovery/gossip/protocol.js';
import { isMcpE2eError } from '../../src/errors.js';

/** Node id number i of the vectors: SHA-256("gossip vector node " || i). */
export function vectorNodeId(i: number): string {
  return createHash('sha256').update(`gossip vector node ${i}`).digest('hex');
}

/**
 * A stand-in for a record holding only what reconciliation reads (node id,
 * seq, expiry): reconciliation never looks at more, so the vectors need no
 * signatures.
 */
export function entryRecord(nodeId: string, seq: number): PeerRecord {
  return { nodeId, seq, expiresAtMs: Number.MAX_SAFE_INTEGER, isExpired: () => false } as unknown as PeerRecord;
}

export function storeOf(entries: readonly Entry[]): MemoryGossipStore {
  const s = new MemoryGossipStore();
  for (const [id, seq] of entries) s.put(entryRecord(id, seq));
  return s;
}

/** The two sets of the exchange vectors. */
export function exchangeSets(): Record<string, { a: Entry[]; b: Entry[] }> {
  const ids = Array.from({ length: 120 }, (_, i) => vectorNodeId(i));
  const base: Entry[] = ids.map((id, i) => [id, 1000 + i]);
  const sorted = (e: Entry[]) => [...e].sort((x, y) => (x[0] < y[0] ? -1 : 1));
  return {
    equal: { a: sorted(base), b: sorted(base) },
    // A lacks 3, B lacks 2, 2 records newer at A, 1 newer at B.
    differences: {
      a: sorted(base.filter((_, i) => i !== 5 && i !== 17 && i !== 99).map(([id, s], i) => [id, i === 40 || i === 41 ? s + 1 : s])),
      b: sorted(base.filter((_, i) => i !== 60 && i !== 61).map(([id, s], i) => [id, i === 70 ? s + 5 : s])),
    },
    // The initiator holds nothing: its first range is an empty list.
    empty_initiator: { a: [], b: sorted(base.slice(0, 30)) },
  };
}

/** Run one exchange: A starts; each side answers until an empty answer or the round cap. */
export function runExchange(a: Entry[], b: Entry[]): { messages: Array<{ from: 'a' | 'b'; n: number; ranges: SyncRange[] }>; wants: { a: string[]; b: string[] } } {
  const stores = { a: storeOf(a), b: storeOf(b) };
  const messages: Array<{ from: 'a' | 'b'; n: number; ranges: SyncRange[] }> = [{ from: 'a', n: 0, ranges: initialRanges(stores.a) }];
  const wants = { a: [] as string[], b: [] as string[] };
  for (let n = 1; n < MAX_SYNC_ROUNDS; n++) {
    const last = messages[messages.length - 1]!;
    if (last.ranges.length === 0) break;
    const me = last.from === 'a' ? 'b' : 'a';
    const answer = answerRanges(stores[me], last.ranges);
    wants[me].push(...answer.wants);
    // The initiator does not send an empty answer: the exchange is over (§14.4.3).
    if (me === 'a' && answer.ranges.length === 0) break;
    messages.push({ from: me, n, ranges: answer.ranges });
  }
  return { messages, wants: { a: [...wants.a].sort(), b: [...wants.b].sort() } };
}

/** A 256-bit integer as its 32 little-endian bytes, hex. */
function u256le(v: bigint): string {
  const b = Buffer.alloc(32);
  for (let i = 0; i < 32; i++) b[i] = Number((v >> BigInt(8 * i)) & 0xffn);
  return b.toString('hex');
}

const ID = vectorNodeId(0);
const FP = '00'.repeat(16);

/** Messages that break §14.2, with the code receivers give them. */
export function refusedMessages(): Array<{ name: string; message: unknown; code: string }> {
  const sync = (ranges: unknown, extra: Record<string, unknown> = {}) => ({ type: GOSSIP_TYPE.SYNC, x: 7, n: 0, ranges, ...extra });
  return [
    { name: 'not an object', message: [GOSSIP_TYPE.PUSH], code: 'ERR_GOSSIP_MALFORMED' },
    { name: 'unknown gossip type', message: { type: 'gossip_pull', ids: [ID] }, code: 'ERR_GOSSIP_MALFORMED' },
    { name: 'push without records', message: { type: GOSSIP_TYPE.PUSH, records: [] }, code: 'ERR_GOSSIP_MALFORMED' },
    { name: 'push with 17 records', message: { type: GOSSIP_TYPE.PUSH, records: Array(17).fill('00') }, code: 'ERR_GOSSIP_MALFORMED' },
    { name: 'push with an extra member', message: { type: GOSSIP_TYPE.PUSH, records: ['00'], from: ID }, code: 'ERR_GOSSIP_MALFORMED' },
    { name: 'push with a record that is not a string', message: { type: GOSSIP_TYPE.PUSH, records: [7] }, code: 'ERR_GOSSIP_MALFORMED' },
    { name: 'push with a record of 4098 hex digits', message: { type: GOSSIP_TYPE.PUSH, records: ['ab'.repeat(2049)] }, code: 'ERR_RECORD_TOO_LARGE' },
    { name: 'records without w', message: { type: GOSSIP_TYPE.RECORDS, records: [] }, code: 'ERR_GOSSIP_MALFORMED' },
    { name: 'records with w above 2^32-1', message: { type: GOSSIP_TYPE.RECORDS, w: 2 ** 32, records: [] }, code: 'ERR_GOSSIP_MALFORMED' },
    { name: 'want without ids', message: { type: GOSSIP_TYPE.WANT, w: 1, ids: [] }, code: 'ERR_GOSSIP_MALFORMED' },
    { name: 'want with 17 ids', message: { type: GOSSIP_TYPE.WANT, w: 1, ids: Array.from({ length: 17 }, (_, i) => vectorNodeId(i)) }, code: 'ERR_GOSSIP_MALFORMED' },
    { name: 'want with a repeated id', message: { type: GOSSIP_TYPE.WANT, w: 1, ids: [ID, ID] }, code: 'ERR_GOSSIP_MALFORMED' },
    { name: 'want with an uppercase id', message: { type: GOSSIP_TYPE.WANT, w: 1, ids: [ID.toUpperCase()] }, code: 'ERR_GOSSIP_MALFORMED' },
    { name: 'want with a short id', message: { type: GOSSIP_TYPE.WANT, w: 1, ids: [ID.slice(2)] }, code: 'ERR_GOSSIP_MALFORMED' },
    { name: 'sync n = 16', message: sync([{ p: '', fp: FP }], { n: 16 }), code: 'ERR_GOSSIP_MALFORMED' },
    { name: 'sync x negative', message: sync([{ p: '', fp: FP }], { x: -1 }), code: 'ERR_GOSSIP_MALFORMED' },
    { name: 'sync n = 0 without ranges', message: sync([]), code: 'ERR_GOSSIP_MALFORMED' },
    { name: 'sync with 257 ranges', message: sync(Array.from({ length: 257 }, (_, i) => ({ p: i.toString(16).padStart(3, '0'), fp: FP }))), code: 'ERR_GOSSIP_MALFORMED' },
    { name: 'range with a prefix of 65 digits', message: sync([{ p: ID + '0', fp: FP }]), code: 'ERR_GOSSIP_MALFORMED' },
    { name: 'range with an uppercase prefix', message: sync([{ p: 'A', fp: FP }]), code: 'ERR_GOSSIP_MALFORMED' },
    { name: 'range with a fingerprint of 15 bytes', message: sync([{ p: '', fp: FP.slice(2) }]), code: 'ERR_GOSSIP_MALFORMED' },
    { name: 'range with both fp and ids', message: sync([{ p: '', fp: FP, ids: [] }]), code: 'ERR_GOSSIP_MALFORMED' },
    { name: 'ranges out of order', message: sync([{ p: 'b', fp: FP }, { p: 'a', fp: FP }]), code: 'ERR_GOSSIP_MALFORMED' },
    { name: 'overlapping ranges', message: sync([{ p: 'a', fp: FP }, { p: 'a3', fp: FP }]), code: 'ERR_GOSSIP_MALFORMED' },
    { name: 'the same range twice', message: sync([{ p: 'a', fp: FP }, { p: 'a', fp: FP }]), code: 'ERR_GOSSIP_MALFORMED' },
    { name: 'ids entry outside its range', message: sync([{ p: ID.slice(0, 1) === 'f' ? '0' : 'f', ids: [[ID, 1]] }]), code: 'ERR_GOSSIP_MALFORMED' },
    { name: 'ids entries not in increasing order', message: sync([{ p: '', ids: [[vectorNodeId(1), 1], [vectorNodeId(1), 2]] }]), code: 'ERR_GOSSIP_MALFORMED' },
    { name: 'ids entry with a seq above 2^53-1', message: sync([{ p: '', ids: [[ID, 2 ** 53]] }]), code: 'ERR_GOSSIP_MALFORMED' },
    { name: 'ids entry with a fractional seq', message: sync([{ p: '', ids: [[ID, 1.5]] }]), code: 'ERR_GOSSIP_MALFORMED' },
    { name: 'have range with 65 entries', message: sync([{ p: '', have: Array.from({ length: 65 }, (_, i) => vectorNodeId(i)).sort().map((id) => [id, 1]) }]), code: 'ERR_GOSSIP_MALFORMED' },
    {
      name: 'sync with 513 entries in all',
      message: sync(
        Array.from({ length: 16 }, (_, d) => d.toString(16)).map((p) => ({
          p,
          ids: Array.from({ length: 33 }, (_, i) => [p + i.toString(16).padStart(63, '0'), 1]),
        })),
      ),
      code: 'ERR_GOSSIP_MALFORMED',
    },
  ];
}

/** Messages that follow §14.2 (besides those of the exchanges). */
export function acceptedMessages(): Array<{ name: string; message: unknown }> {
  return [
    { name: 'push of one record (checked on its own later)', message: { type: GOSSIP_TYPE.PUSH, records: ['00'] } },
    { name: 'empty answer to a want', message: { type: GOSSIP_TYPE.RECORDS, w: 4294967295, records: [] } },
    { name: 'want of 16 ids', message: { type: GOSSIP_TYPE.WANT, w: 0, ids: Array.from({ length: 16 }, (_, i) => vectorNodeId(i)) } },
    { name: 'last sync of an exchange, empty', message: { type: GOSSIP_TYPE.SYNC, x: 1, n: 15, ranges: [] } },
    { name: 'a whole node id as a prefix', message: { type: GOSSIP_TYPE.SYNC, x: 1, n: 2, ranges: [{ p: ID, ids: [[ID, 0]] }] } },
  ];
}

export function buildGossipVectors(): Record<string, unknown> {
  const items = [
    [vectorNodeId(0), 0],
    [vectorNodeId(1), 1],
    [vectorNodeId(2), 1_800_000_000_000],
    [vectorNodeId(3), Number.MAX_SAFE_INTEGER],
  ] as const;
  const sets = exchangeSets();
  const fpSet = sets.differences!.a;
  const prefixes = ['', '0', '7', 'f', fpSet[0]![0].slice(0, 2), fpSet[0]![0].slice(0, 64)];
  const fps = prefixes.map((p) => {
    const under = fpSet.filter(([id]) => id.startsWith(p));
    const s = storeOf(fpSet).summary(p);
    return { prefix: p, count: under.length, sum: u256le(s.sum), fingerprint: fingerprint(s.sum, s.count) };
  });
  const refused = refusedMessages().map((c) => {
    try {
      decodeGossipMessage(c.message);
      throw new Error(`refused case "${c.name}" was accepted`);
    } catch (err) {
      if (!isMcpE2eError(err)) throw err;
      if (err.code !== c.code) throw new Error(`refused case "${c.name}": ${err.code}, expected ${c.code}`);
    }
    return c;
  });
  return {
    description: 'mcp-e2e gossip vectors (PROTOCOL.md §14.8). Hex is lowercase. item_hash is SHA-256(node_id || u64(seq)); sum is the sum of the item hashes read as little-endian integers, modulo 2^256, as 32 little-endian bytes.',
    item_hashes: items.map(([id, seq]) => ({ node_id: id, seq, item_hash: u256le(itemHash(id, seq)) })),
    fingerprints: { set: fpSet, ranges: fps, empty: fingerprint(0n, 0) },
    exchanges: Object.entries(sets).map(([name, { a, b }]) => ({ name, a, b, ...runExchange(a, b) })),
    accepted: acceptedMessages(),
    refused,
  };
}

export const GOSSIP_VECTORS_FILE = fileURLToPath(new URL('../../../test/vectors/gossip.json', import.meta.url));

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  writeFileSync(GOSSIP_VECTORS_FILE, JSON.stringify(buildGossipVectors(), null, 1) + '\n');
}
