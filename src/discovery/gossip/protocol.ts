/**
 * Gossip of peer records (PROTOCOL.md §14): the message kinds carried as
 * control-channel payloads, their limits, and the item fingerprints of
 * range-based set reconciliation. Pure: JSON values in, checked messages or
 * an `ERR_GOSSIP_MALFORMED` error out.
 *
 * The reconciliation follows the Negentropy protocol (range-based set
 * reconciliation, Meyer 2023) with two changes that fit this data: the
 * items are keyed by node id, which is a SHA-256 output and so uniform, so
 * ranges are node-id prefixes (a 16-ary trie both sides split the same way,
 * no bounds on the wire); and leaves are resolved by pulling records by id
 * (`gossip_want`), so every record that arrives outside a push was asked
 * for. Fingerprints are Negentropy's: the sum of the item hashes modulo
 * 2^256, with the count, hashed and truncated to 16 bytes.
 */
import { McpE2eError } from '../../errors.js';
import { sha256 } from '../../crypto/primitives.js';
import { MAX_PEER_RECORD_BYTES } from '../record.js';

/** Control message `type` values of this section. */
export const GOSSIP_TYPE = Object.freeze({
  PUSH: 'gossip_push',
  SYNC: 'gossip_sync',
  WANT: 'gossip_want',
  RECORDS: 'gossip_records',
} as const);

/** Most records in one `gossip_push` or `gossip_records` message. */
export const MAX_RECORDS_PER_MESSAGE = 16;
/**
 * Most record bytes (hex digits) a sender puts in one `gossip_push` or
 * `gossip_records`: with the JSON around them the message stays under the
 * 64 KiB limit of a control message (PROTOCOL.md §6.9), which 16 records of
 * the largest size (2 × 2,048 hex digits each) would pass.
 */
export const MAX_RECORD_HEX_PER_MESSAGE = 60_000;
/** Most node ids in one `gossip_want`. */
export const MAX_WANT_IDS = 16;
/** Most ranges in one `gossip_sync`. */
export const MAX_SYNC_RANGES = 256;
/** Most (node id, seq) entries in one `gossip_sync`, all ranges together. */
export const MAX_SYNC_ENTRIES = 512;
/** Most entries in one `ids` or `have` range. */
export const MAX_RANGE_ENTRIES = 64;
/** A range whose sender holds at most this many items is answered with its list, not split. */
export const LEAF_ITEMS = 8;
/** Most `gossip_sync` messages in one exchange (`n` runs 0 .. MAX_SYNC_ROUNDS - 1). */
export const MAX_SYNC_ROUNDS = 16;
/** Largest exchange id (`x`) and want id (`w`). */
export const MAX_MESSAGE_ID = 0xffffffff;
/** Length of a fingerprint, bytes (32 hex digits on the wire). */
export const FINGERPRINT_BYTES = 16;
/** Longest range prefix, hex digits (a whole node id). */
export const MAX_PREFIX_DIGITS = 64;
/** Record attribute that marks a leaving record (§14.7): an empty value. */
export const LEAVING_ATTRIBUTE = 0x03;
/** Largest record in hex, digits. */
const MAX_RECORD_HEX = 2 * MAX_PEER_RECORD_BYTES;

/** One (node id, seq) item of a reconciliation list. */
export type Entry = readonly [nodeId: string, seq: number];

/** A range of a `gossip_sync`: the node ids that start with `p`. */
export type SyncRange =
  | { readonly p: string; readonly fp: string }
  | { readonly p: string; readonly ids: readonly Entry[] }
  | { readonly p: string; readonly have: readonly Entry[] };

export interface PushMessage {
  readonly type: typeof GOSSIP_TYPE.PUSH;
  /** Records as lowercase hex, each checked later by `verifyPeerRecord`. */
  readonly records: readonly string[];
}
export interface RecordsMessage {
  readonly type: typeof GOSSIP_TYPE.RECORDS;
  /** The `w` of the want this answers. */
  readonly w: number;
  readonly records: readonly string[];
}
export interface SyncMessage {
  readonly type: typeof GOSSIP_TYPE.SYNC;
  /** Exchange id, chosen by the initiator. */
  readonly x: number;
  /** Message number in the exchange: even from the initiator, odd from the responder. */
  readonly n: number;
  readonly ranges: readonly SyncRange[];
}
export interface WantMessage {
  readonly type: typeof GOSSIP_TYPE.WANT;
  /** Want id, chosen by the sender; the answer carries it back. */
  readonly w: number;
  readonly ids: readonly string[];
}
export type GossipMessage = PushMessage | RecordsMessage | SyncMessage | WantMessage;

const malformed = (why: string): McpE2eError => new McpE2eError('ERR_GOSSIP_MALFORMED', `gossip message refused: ${why}`);

const NODE_ID_RE = /^[0-9a-f]{64}$/;
const PREFIX_RE = /^[0-9a-f]{0,64}$/;
const FINGERPRINT_RE = /^[0-9a-f]{32}$/;

/** True for a plain JSON object with exactly the keys `keys`. */
function exactly(value: unknown, keys: readonly string[]): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const own = Object.keys(value);
  return own.length === keys.length && keys.every((k) => Object.prototype.hasOwnProperty.call(value, k));
}

function messageId(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_MESSAGE_ID) throw malformed(`${what} expected an integer 0..${MAX_MESSAGE_ID}`);
  return v;
}

function isSeq(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function recordList(value: unknown, min: number): string[] {
  if (!Array.isArray(value) || value.length < min || value.length > MAX_RECORDS_PER_MESSAGE) {
    throw malformed(`records: expected ${min}..${MAX_RECORDS_PER_MESSAGE} of them`);
  }
  for (const r of value) {
    // Only the type and the length here: each record is checked on its own (§13.4), so that one bad
    // record is refused with its own code and the others in the message still count.
    if (typeof r !== 'string') throw malformed('records: expected strings');
    if (r.length > MAX_RECORD_HEX) throw new McpE2eError('ERR_RECORD_TOO_LARGE', `peer record refused: ${r.length / 2} bytes, more than ${MAX_PEER_RECORD_BYTES}`);
  }
  return value as string[];
}

function entryList(value: unknown, prefix: string, what: string): Entry[] {
  if (!Array.isArray(value) || value.length > MAX_RANGE_ENTRIES) throw malformed(`${what}: expected at most ${MAX_RANGE_ENTRIES} entries`);
  let last = '';
  for (const e of value) {
    if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== 'string' || !NODE_ID_RE.test(e[0]) || !isSeq(e[1])) {
      throw malformed(`${what}: expected [node id, seq] entries`);
    }
    if (!e[0].startsWith(prefix)) throw malformed(`${what}: an entry outside its range`);
    if (e[0] <= last) throw malformed(`${what}: entries not in strictly increasing node id order`);
    last = e[0];
  }
  return value as Entry[];
}

function syncRange(value: unknown): SyncRange {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw malformed('range: expected an object');
  const v = value as Record<string, unknown>;
  const p = v.p;
  if (typeof p !== 'string' || !PREFIX_RE.test(p)) throw malformed('range: "p" expected 0..64 lowercase hex digits');
  if (exactly(v, ['p', 'fp'])) {
    if (typeof v.fp !== 'string' || !FINGERPRINT_RE.test(v.fp)) throw malformed('range: "fp" expected 32 lowercase hex digits');
    return { p, fp: v.fp };
  }
  if (exactly(v, ['p', 'ids'])) return { p, ids: entryList(v.ids, p, 'ids') };
  if (exactly(v, ['p', 'have'])) return { p, have: entryList(v.have, p, 'have') };
  throw malformed('range: expected exactly "p" and one of "fp", "ids", "have"');
}

/** The entries of an `ids` or `have` range (none for a fingerprint). */
export function rangeEntries(r: SyncRange): readonly Entry[] {
  if ('ids' in r) return r.ids;
  if ('have' in r) return r.have;
  return [];
}

/** True when `t` is a gossip message type (the driver hands those to the engine, and ignores others). */
export function isGossipType(t: unknown): boolean {
  return t === GOSSIP_TYPE.PUSH || t === GOSSIP_TYPE.SYNC || t === GOSSIP_TYPE.WANT || t === GOSSIP_TYPE.RECORDS;
}

/**
 * Check a decoded control message of one of the gossip types against §14.2
 * (structure and limits; the records inside are verified one by one later).
 * @throws McpE2eError `ERR_GOSSIP_MALFORMED` for a message that breaks a rule,
 *   `ERR_RECORD_TOO_LARGE` for a record over 4096 hex digits.
 */
export function decodeGossipMessage(value: unknown): GossipMessage {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw malformed('not a JSON object');
  const v = value as Record<string, unknown>;
  switch (v.type) {
    case GOSSIP_TYPE.PUSH:
      if (!exactly(v, ['type', 'records'])) throw malformed('gossip_push: expected exactly "type", "records"');
      return { type: GOSSIP_TYPE.PUSH, records: recordList(v.records, 1) };
    case GOSSIP_TYPE.RECORDS:
      if (!exactly(v, ['type', 'w', 'records'])) throw malformed('gossip_records: expected exactly "type", "w", "records"');
      return { type: GOSSIP_TYPE.RECORDS, w: messageId(v.w, 'gossip_records: "w"'), records: recordList(v.records, 0) };
    case GOSSIP_TYPE.WANT: {
      if (!exactly(v, ['type', 'w', 'ids'])) throw malformed('gossip_want: expected exactly "type", "w", "ids"');
      const ids = v.ids;
      if (!Array.isArray(ids) || ids.length < 1 || ids.length > MAX_WANT_IDS) throw malformed(`gossip_want: expected 1..${MAX_WANT_IDS} ids`);
      for (const id of ids) if (typeof id !== 'string' || !NODE_ID_RE.test(id)) throw malformed('gossip_want: ids expected 64 lowercase hex digits');
      if (new Set(ids).size !== ids.length) throw malformed('gossip_want: repeated ids');
      return { type: GOSSIP_TYPE.WANT, w: messageId(v.w, 'gossip_want: "w"'), ids: ids as string[] };
    }
    case GOSSIP_TYPE.SYNC: {
      if (!exactly(v, ['type', 'x', 'n', 'ranges'])) throw malformed('gossip_sync: expected exactly "type", "x", "n", "ranges"');
      const x = messageId(v.x, 'gossip_sync: "x"');
      if (typeof v.n !== 'number' || !Number.isInteger(v.n) || v.n < 0 || v.n >= MAX_SYNC_ROUNDS) throw malformed(`gossip_sync: "n" expected 0..${MAX_SYNC_ROUNDS - 1}`);
      if (!Array.isArray(v.ranges) || v.ranges.length > MAX_SYNC_RANGES) throw malformed(`gossip_sync: expected at most ${MAX_SYNC_RANGES} ranges`);
      if (v.n === 0 && v.ranges.length === 0) throw malformed('gossip_sync: the first message of an exchange has no range');
      const ranges: SyncRange[] = [];
      let entries = 0;
      let previous: string | undefined;
      for (const raw of v.ranges) {
        const r = syncRange(raw);
        // Ranges in increasing order and disjoint: no prefix is a prefix of another (§14.4).
        if (previous !== undefined && (r.p <= previous || r.p.startsWith(previous))) throw malformed('gossip_sync: ranges not in increasing order or overlapping');
        previous = r.p;
        entries += rangeEntries(r).length;
        ranges.push(r);
      }
      if (entries > MAX_SYNC_ENTRIES) throw malformed(`gossip_sync: more than ${MAX_SYNC_ENTRIES} entries`);
      return { type: GOSSIP_TYPE.SYNC, x, n: v.n, ranges };
    }
    default:
      throw malformed('unknown gossip type');
  }
}

// ---------------------------------------------------------------------------------------------
// Item hashes and fingerprints (§14.3)
// ---------------------------------------------------------------------------------------------

const MOD_256 = (1n << 256n) - 1n;

/** The item hash of (node id, seq) as an integer: SHA-256(node_id || u64(seq)) read little-endian. */
export function itemHash(nodeId: string, seq: number): bigint {
  const input = Buffer.alloc(40);
  input.write(nodeId, 0, 32, 'hex');
  input.writeBigUInt64BE(BigInt(seq), 32);
  return readUint256LE(sha256(input));
}

function readUint256LE(b: Buffer): bigint {
  let v = 0n;
  for (let i = 3; i >= 0; i--) v = (v << 64n) | b.readBigUInt64LE(8 * i);
  return v;
}

/** Sum of item hashes modulo 2^256 (the additive part of a fingerprint). */
export function addItems(a: bigint, b: bigint): bigint {
  return (a + b) & MOD_256;
}

/** `a - b` modulo 2^256. */
export function subtractItems(a: bigint, b: bigint): bigint {
  return (a - b) & MOD_256;
}

/** The fingerprint of a range holding `count` items whose hashes sum to `sum` (mod 2^256): 32 hex digits. */
export function fingerprint(sum: bigint, count: number): string {
  const input = Buffer.alloc(40);
  let s = sum & MOD_256;
  for (let i = 0; i < 4; i++) {
    input.writeBigUInt64LE(s & 0xffffffffffffffffn, 8 * i);
    s >>= 64n;
  }
  input.writeBigUInt64BE(BigInt(count), 32);
  return sha256(input).subarray(0, FINGERPRINT_BYTES).toString('hex');
}

/** The 16 child prefixes of `prefix`, in order. */
export function childPrefixes(prefix: string): string[] {
  return '0123456789abcdef'.split('').map((d) => prefix + d);
}

/** The smallest and the first-past-the-end node ids of a prefix range, as strings to compare with. */
export function prefixBounds(prefix: string): [lo: string, hi: string | undefined] {
  // Node ids are 64 lowercase hex digits, so string order is numeric order; the range of `prefix`
  // is [prefix, next(prefix)) where next increments the last digit that is not f.
  let i = prefix.length - 1;
  while (i >= 0 && prefix[i] === 'f') i--;
  if (i < 0) return [prefix, undefined];
  const next = prefix.slice(0, i) + (parseInt(prefix[i]!, 16) + 1).toString(16);
  return [prefix, next];
}
