/**
 * The peer registry: what this node has learned about other nodes, kept per
 * home in `peers.json` (PROTOCOL.md §13.5, §13.8). For each node id: its
 * latest valid record, unsigned address hints with their provenance, where it
 * was learned, when it was first and last seen, the last successful
 * handshake, the last failure, per-address outcomes, and whether a person
 * blocked it. No network code: sources and sessions feed it through the mesh
 * node (src/mesh/node.ts).
 *
 * Several processes of one user share a home (a `serve`, several
 * `connect`s): changes are kept in memory and written in batches (at most one
 * write per `flushIntervalMs`) through `updateFileLocked`: lock, re-read,
 * merge by node id, evict to the caps, write atomically. Every field merges
 * as a join (the record with the higher seq, the later timestamp, the union
 * of sources and hints), so the order in which processes write does not
 * matter and nothing one of them learned is lost. Only `forget` removes.
 *
 * Trust states (§13.8): `blocked` is stored here (a person's act);
 * `trusted` is not: it is read from the allowlist through `isTrusted`, the
 * one place that decides MCP access. `verified` means a handshake succeeded;
 * anything else is `discovered`. The registry never changes the allowlist.
 */
import { readdirSync, statSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { isMcpE2eError, McpE2eError, type ErrorCode } from '../errors.js';
import { fingerprintOf, isNodeId, type PeerIdentity } from '../identity/identity.js';
import { updateFileLocked, readTrustedFile } from '../util/files.js';
import { decodeVersionedPeers, hasExactKeys } from '../util/assert.js';
import { checkSignature, checkTimes, compareToStored, decodePeerRecord, isRecordAddress, recordBytesFromHex, RECORD_CLOCK_SKEW_MS, type PeerRecord } from './record.js';
import { isLeaving } from './gossip/leaving.js';

/** Where a peer or an address was learned. Sources name themselves; these are the ones of this package. */
export type PeerSource = 'manual' | 'incoming' | 'outgoing' | 'session' | 'mdns' | 'bootstrap' | 'gossip' | 'dht' | (string & {});

/** True when `value` can name a source: 1..16 of `a-z`, `0-9`, `-`, starting with a letter. */
export function isPeerSource(value: unknown): value is PeerSource {
  return typeof value === 'string' && /^[a-z][a-z0-9-]{0,15}$/.test(value);
}

/** §13.8. */
export type TrustState = 'discovered' | 'verified' | 'trusted' | 'blocked';

/** An unsigned address for a node id, from a discovery source. A hint, never proof. */
export interface AddressHint {
  url: string;
  source: PeerSource;
  /** When the source last reported it, ms since the epoch. */
  seenMs: number;
  /** Not dialled after this (the source's TTL), ms since the epoch. */
  expiresMs: number;
}

/** Outcomes of dialling one address. */
export interface AddressStats {
  /** Last successful handshake through it, ms. */
  okMs?: number;
  /** Last failure, ms, and its code. */
  failMs?: number;
  code?: string;
}

/** The last successful handshake with a peer. */
export interface HandshakeNote {
  atMs: number;
  direction: 'incoming' | 'outgoing';
  /** The address dialled (outgoing only). */
  url?: string;
}

/** The last failure to reach a peer. */
export interface FailureNote {
  atMs: number;
  url: string;
  code: string;
}

/** What the registry knows about one node id (a snapshot; changing it changes nothing). */
export interface PeerInfo {
  nodeId: string;
  fingerprint: string;
  state: TrustState;
  /** This is our own node id. */
  self: boolean;
  /** The name in the record (a claim of the node, never identity). */
  name: string | undefined;
  /** The latest valid record (also when expired: history). */
  record: PeerRecord | undefined;
  recordExpired: boolean;
  /** The latest record is a valid leaving record (§14.7): the node announced that it left. */
  left: boolean;
  /** The addresses a connection would try, in order (§13.7). */
  addresses: string[];
  hints: readonly AddressHint[];
  sources: readonly PeerSource[];
  firstSeenMs: number;
  lastSeenMs: number;
  lastHandshake: HandshakeNote | undefined;
  lastFailure: FailureNote | undefined;
}

/** Result of adding a record or a hint. Refusals are results, not exceptions: hostile input is normal input. */
export type RegistryOutcome =
  | { accepted: true; change: 'new' | 'updated' | 'unchanged'; nodeId: string }
  | { accepted: false; code: ErrorCode; message: string; nodeId?: string };

/** Options of `PeerRegistry`. */
export interface PeerRegistryOptions {
  /** The registry file; without one, the registry lives in memory only (tests, simulations). */
  path?: string;
  /** Our own node id: never evicted, marked `self`. */
  selfNodeId?: string;
  /** Whether a person allowed this node id (the allowlist). Default: nobody. */
  isTrusted?: (nodeId: string) => boolean;
  /** Most node ids kept. Default 10,000. */
  maxPeers?: number;
  /** Largest registry file, bytes. Default 16 MiB. */
  maxFileBytes?: number;
  /** Changes are written at most this often (ms); 0 writes only on `flush()`. Default 1,000. */
  flushIntervalMs?: number;
  /** The clock, ms since the epoch. Default `Date.now`. */
  now?: () => number;
  /** Clock skew allowed for records, ms. Default `RECORD_CLOCK_SKEW_MS`. */
  clockSkewMs?: number;
  /** Wait at most this long for another process's lock, ms. Default 5,000. */
  lockTimeoutMs?: number;
}

export const DEFAULT_MAX_PEERS = 10_000;
export const DEFAULT_MAX_REGISTRY_FILE_BYTES = 16 * 1024 * 1024;
export const DEFAULT_REGISTRY_FLUSH_INTERVAL_MS = 1_000;
/** Most unsigned address hints kept per node id (most recently seen first). */
export const MAX_HINTS_PER_PEER = 8;
/** Most distinct sources remembered per node id. */
export const MAX_SOURCES_PER_PEER = 8;
/** Default lifetime of an address hint whose source gives none, ms (one hour). */
export const DEFAULT_HINT_TTL_MS = 60 * 60 * 1000;
/** Eviction makes room in batches: down to this share of `maxPeers`. */
const EVICTION_LOW_WATER = 0.99;
const FILE_VERSION = 1;
const WHAT = 'peer registry';

interface Entry {
  nodeId: string;
  record: PeerRecord | undefined;
  hints: AddressHint[];
  sources: PeerSource[];
  firstSeenMs: number;
  lastSeenMs: number;
  handshake: HandshakeNote | undefined;
  failure: FailureNote | undefined;
  stats: Map<string, AddressStats>;
  blocked: { value: boolean; atMs: number } | undefined;
}

const newEntry = (nodeId: string, now: number): Entry => ({
  nodeId,
  record: undefined,
  hints: [],
  sources: [],
  firstSeenMs: now,
  lastSeenMs: now,
  handshake: undefined,
  failure: undefined,
  stats: new Map(),
  blocked: undefined,
});

const later = <T extends { atMs: number }>(a: T | undefined, b: T | undefined): T | undefined => (!a ? b : !b ? a : b.atMs > a.atMs ? b : a);
const maxOpt = (a: number | undefined, b: number | undefined) => (a === undefined ? b : b === undefined ? a : Math.max(a, b));

function addSource(e: Entry, source: PeerSource): boolean {
  if (e.sources.includes(source)) return false;
  e.sources.push(source);
  if (e.sources.length > MAX_SOURCES_PER_PEER) e.sources.shift();
  return true;
}

/** Hints by url (the later report wins), most recently seen first, capped. */
function mergeHints(a: readonly AddressHint[], b: readonly AddressHint[]): AddressHint[] {
  const byUrl = new Map<string, AddressHint>();
  for (const h of [...a, ...b]) {
    const prev = byUrl.get(h.url);
    if (!prev || h.seenMs > prev.seenMs || (h.seenMs === prev.seenMs && h.expiresMs > prev.expiresMs)) byUrl.set(h.url, h);
  }
  return [...byUrl.values()].sort((x, y) => y.seenMs - x.seenMs).slice(0, MAX_HINTS_PER_PEER);
}

function mergeStats(a: AddressStats | undefined, b: AddressStats | undefined): AddressStats {
  const out: AddressStats = {};
  const ok = maxOpt(a?.okMs, b?.okMs);
  if (ok !== undefined) out.okMs = ok;
  const af = a?.failMs ?? -1;
  const bf = b?.failMs ?? -1;
  const f = bf > af ? b : a;
  if (f?.failMs !== undefined) {
    out.failMs = f.failMs;
    if (f.code !== undefined) out.code = f.code;
  }
  return out;
}

/** The join of two entries for one node id (commutative up to ties, idempotent). */
function mergeEntries(a: Entry, b: Entry): Entry {
  const record = !a.record ? b.record : !b.record ? a.record : b.record.seq > a.record.seq ? b.record : a.record;
  const sources = [...a.sources];
  for (const s of b.sources) if (!sources.includes(s)) sources.push(s);
  const stats = new Map(a.stats);
  for (const [url, s] of b.stats) stats.set(url, mergeStats(stats.get(url), s));
  return {
    nodeId: a.nodeId,
    record,
    hints: mergeHints(a.hints, b.hints),
    sources: sources.slice(-MAX_SOURCES_PER_PEER),
    firstSeenMs: Math.min(a.firstSeenMs, b.firstSeenMs),
    lastSeenMs: Math.max(a.lastSeenMs, b.lastSeenMs),
    handshake: later(a.handshake, b.handshake),
    failure: later(a.failure, b.failure),
    stats,
    blocked: later(a.blocked, b.blocked),
  };
}

// ---------------------------------------------------------------------------------------------
// The file
// ---------------------------------------------------------------------------------------------

const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function entryToJson(e: Entry): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  if (e.record) o.record = e.record.toHex();
  if (e.hints.length) o.hints = e.hints.map((h) => ({ url: h.url, source: h.source, seen: h.seenMs, expires: h.expiresMs }));
  o.sources = e.sources;
  o.first_seen = e.firstSeenMs;
  o.last_seen = e.lastSeenMs;
  if (e.handshake) o.handshake = { at: e.handshake.atMs, direction: e.handshake.direction, ...(e.handshake.url ? { url: e.handshake.url } : {}) };
  if (e.failure) o.failure = { at: e.failure.atMs, url: e.failure.url, code: e.failure.code };
  if (e.stats.size) {
    const s: Record<string, unknown> = {};
    for (const [url, st] of e.stats) s[url] = { ...(st.okMs !== undefined ? { ok: st.okMs } : {}), ...(st.failMs !== undefined ? { fail: st.failMs, code: st.code } : {}) };
    o.addresses = s;
  }
  if (e.blocked) o.blocked = { value: e.blocked.value, at: e.blocked.atMs };
  return o;
}

function entryFromJson(nodeId: string, v: unknown, corrupt: (why: string) => McpE2eError): Entry {
  if (!isNodeId(nodeId)) throw corrupt(`not a node id: ${JSON.stringify(String(nodeId).slice(0, 80))}`);
  const bad = (why: string) => corrupt(`entry ${nodeId.slice(0, 12)}: ${why}`);
  if (!hasExactKeys(v, ['sources', 'first_seen', 'last_seen'], ['record', 'hints', 'handshake', 'failure', 'addresses', 'blocked'])) throw bad('unexpected fields');
  if (!isTime(v.first_seen) || !isTime(v.last_seen)) throw bad('bad times');
  if (!Array.isArray(v.sources) || v.sources.length > MAX_SOURCES_PER_PEER || !v.sources.every(isPeerSource)) throw bad('bad sources');
  const e = newEntry(nodeId, 0);
  e.firstSeenMs = v.first_seen;
  e.lastSeenMs = v.last_seen;
  e.sources = [...(v.sources as PeerSource[])];
  if (v.record !== undefined) {
    try {
      e.record = decodePeerRecord(recordBytesFromHex(v.record));
    } catch (err) {
      throw bad(`record: ${(err as Error).message}`);
    }
    // Its signature was verified when it was stored; the file is ours (StrictModes, 0600).
    if (e.record.nodeId !== nodeId) throw bad('record of another node id');
  }
  if (v.hints !== undefined) {
    if (!Array.isArray(v.hints) || v.hints.length > MAX_HINTS_PER_PEER) throw bad('bad hints');
    for (const h of v.hints) {
      if (!hasExactKeys(h, ['url', 'source', 'seen', 'expires']) || typeof h.url !== 'string' || !isRecordAddress(h.url) || !isPeerSource(h.source) || !isTime(h.seen) || !isTime(h.expires)) {
        throw bad('bad hint');
      }
      e.hints.push({ url: h.url, source: h.source, seenMs: h.seen, expiresMs: h.expires });
    }
  }
  if (v.handshake !== undefined) {
    const h = v.handshake;
    if (!hasExactKeys(h, ['at', 'direction'], ['url']) || !isTime(h.at) || (h.direction !== 'incoming' && h.direction !== 'outgoing') || (h.url !== undefined && (typeof h.url !== 'string' || !isRecordAddress(h.url)))) {
      throw bad('bad handshake');
    }
    e.handshake = { atMs: h.at, direction: h.direction, ...(h.url !== undefined ? { url: h.url as string } : {}) };
  }
  if (v.failure !== undefined) {
    const f = v.failure;
    if (!hasExactKeys(f, ['at', 'url', 'code']) || !isTime(f.at) || typeof f.url !== 'string' || f.url.length > 255 || typeof f.code !== 'string' || !/^ERR_[A-Z0-9_]{1,60}$/.test(f.code)) throw bad('bad failure');
    e.failure = { atMs: f.at, url: f.url, code: f.code };
  }
  if (v.addresses !== undefined) {
    const a = v.addresses;
    if (typeof a !== 'object' || a === null || Array.isArray(a)) throw bad('bad addresses');
    const entries = Object.entries(a);
    if (entries.length > 2 * MAX_HINTS_PER_PEER + 1) throw bad('too many addresses');
    for (const [url, s] of entries) {
      if (!isRecordAddress(url) || !hasExactKeys(s, [], ['ok', 'fail', 'code'])) throw bad('bad address stats');
      if ((s.ok !== undefined && !isTime(s.ok)) || (s.fail !== undefined && !isTime(s.fail)) || (s.code !== undefined && (typeof s.code !== 'string' || s.code.length > 64))) throw bad('bad address stats');
      e.stats.set(url, { ...(s.ok !== undefined ? { okMs: s.ok as number } : {}), ...(s.fail !== undefined ? { failMs: s.fail as number, code: s.code as string } : {}) });
    }
  }
  if (v.blocked !== undefined) {
    const b = v.blocked;
    if (!hasExactKeys(b, ['value', 'at']) || typeof b.value !== 'boolean' || !isTime(b.at)) throw bad('bad blocked');
    e.blocked = { value: b.value, atMs: b.at };
  }
  return e;
}

const corruptError = (path: string) => (why: string) =>
  new McpE2eError('ERR_KEY_FILE_CORRUPT', `${WHAT} ${path} is corrupt: ${why}. It holds only what discovery learned (and blocks): move it aside to start afresh`);

const FILE_HEAD = `{"version":${FILE_VERSION},"peers":{`;
const FILE_TAIL = '}}';

/** `"<node id>":` before the entry's JSON on its line. */
const ID_PREFIX_BYTES = 1 + 64 + 2;
const NEWLINE = 0x0a;

/**
 * The entries of a registry, parsed when first used. The file has one entry
 * per line (`"<node id>":{...}`), so a write that changes a few entries
 * copies the other lines' bytes as they are, and a `connect` that needs one
 * peer parses one line: at 10,000 peers, decoding, parsing and checking every
 * entry takes far longer than reading the file. A line that fails the strict
 * checks throws `ERR_KEY_FILE_CORRUPT` when it is first used.
 */
class EntryTable {
  /** Per node id: its line as read or last written (undefined once the entry changed), and the parsed entry. */
  readonly #slots = new Map<string, { line: Buffer | undefined; entry: Entry | undefined }>();
  constructor(readonly path: string) {}

  get size(): number {
    return this.#slots.size;
  }
  has(id: string): boolean {
    return this.#slots.has(id);
  }
  ids(): IterableIterator<string> {
    return this.#slots.keys();
  }
  get(id: string): Entry | undefined {
    const slot = this.#slots.get(id);
    if (!slot) return undefined;
    if (!slot.entry) {
      let v: unknown;
      try {
        v = JSON.parse(slot.line!.toString('utf8', ID_PREFIX_BYTES));
      } catch {
        throw corruptError(this.path)(`entry ${id.slice(0, 12)} is not valid JSON`);
      }
      slot.entry = entryFromJson(id, v, corruptError(this.path));
    }
    return slot.entry;
  }
  /** Every entry (parsing what is not parsed yet). */
  *values(): IterableIterator<Entry> {
    for (const id of this.#slots.keys()) yield this.get(id)!;
  }
  set(id: string, entry: Entry): void {
    this.#slots.set(id, { line: undefined, entry });
  }
  /** `id`'s entry changed in place: its line must be made again. */
  invalidate(id: string): void {
    const slot = this.#slots.get(id);
    if (slot) slot.line = undefined;
  }
  delete(id: string): boolean {
    return this.#slots.delete(id);
  }
  /** A line as read (the node id is checked when the entry is first used). */
  addLine(id: string, line: Buffer): void {
    if (this.#slots.has(id)) throw corruptError(this.path)(`node id ${id.slice(0, 12)} twice`);
    this.#slots.set(id, { line, entry: undefined });
  }
  /** The file line of `id` (without separator). */
  line(id: string): Buffer {
    const slot = this.#slots.get(id)!;
    slot.line ??= Buffer.from(`${JSON.stringify(id)}:${JSON.stringify(entryToJson(slot.entry!))}`, 'utf8');
    return slot.line;
  }
}

/** Read a registry file: the line layout written by `serialize`, or any JSON of the same shape. */
function parseFile(bytes: Buffer | undefined, path: string): EntryTable {
  const table = new EntryTable(path);
  if (!bytes || bytes.length === 0) return table;
  const corrupt = corruptError(path);
  const head = Buffer.from(`${FILE_HEAD}\n`);
  const tail = Buffer.from(`\n${FILE_TAIL}\n`);
  const empty = Buffer.from(`${FILE_HEAD}\n${FILE_TAIL}\n`);
  if (bytes.equals(empty)) return table;
  if (bytes.length > head.length + tail.length && bytes.subarray(0, head.length).equals(head) && bytes.subarray(bytes.length - tail.length).equals(tail)) {
    const end = bytes.length - tail.length;
    let line = 2;
    for (let pos = head.length; pos < end; line++) {
      const nl = bytes.indexOf(NEWLINE, pos);
      const stop = nl < 0 || nl > end ? end : nl;
      const last = stop === end;
      // Every line but the last ends with the comma that separates the members.
      const body = bytes.subarray(pos, last ? stop : stop - 1);
      if (!last && bytes[stop - 1] !== 0x2c) throw corrupt(`line ${line} does not end with a comma`);
      if (body.length <= ID_PREFIX_BYTES || body[0] !== 0x22 || body[65] !== 0x22 || body[66] !== 0x3a) throw corrupt(`line ${line} is not an entry`);
      table.addLine(body.toString('latin1', 1, 65), body);
      pos = stop + 1;
    }
    return table;
  }
  // Not our layout (edited by hand?): the slow path, strictly checked all at once.
  for (const [id, v] of Object.entries(decodeVersionedPeers(bytes.toString('utf8'), FILE_VERSION, corrupt))) table.set(id, entryFromJson(id, v, corrupt));
  return table;
}

/** The file: one entry per line. */
function serialize(table: EntryTable): Buffer {
  const parts: Buffer[] = [Buffer.from(`${FILE_HEAD}\n`)];
  const sep = Buffer.from(',\n');
  let first = true;
  for (const id of table.ids()) {
    if (!first) parts.push(sep);
    parts.push(table.line(id));
    first = false;
  }
  parts.push(Buffer.from(`${first ? '' : '\n'}${FILE_TAIL}\n`));
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------------------------------------
// The registry
// ---------------------------------------------------------------------------------------------

/**
 * The peer registry. Synchronous: every operation is in memory; `flush()`
 * (called by a timer `flushIntervalMs` after the first unsaved change, by
 * `close()`, or by the caller) writes under the lock.
 */
function isLeft(e: Entry, now: number): boolean {
  return e.record !== undefined && !e.record.isExpired(now) && isLeaving(e.record);
}

export class PeerRegistry {
  readonly path: string | undefined;
  readonly selfNodeId: string | undefined;
  readonly maxPeers: number;
  readonly maxFileBytes: number;
  readonly flushIntervalMs: number;
  readonly #isTrusted: (nodeId: string) => boolean;
  readonly #now: () => number;
  readonly #skew: number;
  readonly #lockTimeoutMs: number | undefined;
  #entries: EntryTable;
  /** Node ids changed in memory since the last write. */
  readonly #dirty = new Set<string>();
  /** Node ids forgotten since the last write. */
  readonly #forgotten = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  /** What the file looked like when last read or written (to notice other writers). */
  #fileStamp = '';
  #closed = false;
  /** Entries dropped by the caps, since creation (for monitoring and tests). */
  evicted = 0;

  /**
   * Load the registry (a missing file is an empty registry). Leftovers of a
   * writer killed mid-write (a dead lock, temporary files) are removed.
   * @throws McpE2eError `ERR_KEY_FILE_CORRUPT` (not a registry file, or larger
   *   than `maxFileBytes`), `ERR_FILE_PERMISSIONS` (StrictModes).
   * @throws RangeError for bad options.
   */
  constructor(options: PeerRegistryOptions = {}) {
    this.path = options.path;
    this.selfNodeId = options.selfNodeId;
    this.maxPeers = options.maxPeers ?? DEFAULT_MAX_PEERS;
    this.maxFileBytes = options.maxFileBytes ?? DEFAULT_MAX_REGISTRY_FILE_BYTES;
    this.flushIntervalMs = options.flushIntervalMs ?? DEFAULT_REGISTRY_FLUSH_INTERVAL_MS;
    if (!Number.isInteger(this.maxPeers) || this.maxPeers < 1) throw new RangeError('"maxPeers" expected an integer >= 1');
    if (!Number.isInteger(this.maxFileBytes) || this.maxFileBytes < 1024) throw new RangeError('"maxFileBytes" expected an integer >= 1024');
    if (!Number.isInteger(this.flushIntervalMs) || this.flushIntervalMs < 0) throw new RangeError('"flushIntervalMs" expected an integer >= 0');
    this.#isTrusted = options.isTrusted ?? (() => false);
    this.#now = options.now ?? Date.now;
    this.#skew = options.clockSkewMs ?? RECORD_CLOCK_SKEW_MS;
    this.#lockTimeoutMs = options.lockTimeoutMs;
    this.#entries = new EntryTable(this.path ?? 'memory');
    if (this.path) {
      this.#cleanUpAfterCrash();
      this.#read();
    }
  }

  /** Node ids known. */
  get size(): number {
    return this.#entries.size;
  }

  /** Changes not yet written. */
  get pendingWrites(): number {
    return this.#dirty.size + this.#forgotten.size;
  }

  has(nodeId: string): boolean {
    return this.#entries.has(nodeId);
  }

  /** What is known about `nodeId`, or undefined. */
  get(nodeId: string): PeerInfo | undefined {
    const e = this.#entries.get(nodeId);
    return e ? this.#info(e, this.#now()) : undefined;
  }

  /** Everything known, most recently seen first. */
  list(): PeerInfo[] {
    const now = this.#now();
    return [...this.#entries.values()].sort((a, b) => b.lastSeenMs - a.lastSeenMs).map((e) => this.#info(e, now));
  }

  /** The trust state of `nodeId` (§13.8), or undefined when unknown and not on the allowlist. */
  stateOf(nodeId: string): TrustState | undefined {
    const e = this.#entries.get(nodeId);
    if (e) return this.#state(e);
    return this.#isTrusted(nodeId) ? 'trusted' : undefined;
  }

  /** True when a person blocked `nodeId`. */
  isBlocked(nodeId: string): boolean {
    return this.#entries.get(nodeId)?.blocked?.value === true;
  }

  /**
   * The addresses to dial for `nodeId`, in order (§13.7): addresses that
   * worked, most recent first; the valid record's addresses in its order;
   * unexpired hints, most recently seen first; last, addresses whose latest
   * outcome was a failure, the oldest failure first. Expired records and
   * hints give none.
   */
  dialAddresses(nodeId: string): string[] {
    const e = this.#entries.get(nodeId);
    return e ? this.#dialAddresses(e, this.#now()) : [];
  }

  /** Valid (unexpired) records of peers that are not blocked: what may be passed on. Ours included. */
  offerableRecords(): PeerRecord[] {
    const now = this.#now();
    const out: PeerRecord[] = [];
    for (const e of this.#entries.values()) if (e.record && !e.record.isExpired(now) && !e.blocked?.value) out.push(e.record);
    return out;
  }

  /** Peers whose record expired at a time in (fromMs, toMs]. */
  expiredBetween(fromMs: number, toMs: number): PeerInfo[] {
    const out: PeerInfo[] = [];
    for (const e of this.#entries.values()) {
      const x = e.record?.expiresAtMs;
      if (x !== undefined && x > fromMs && x <= toMs) out.push(this.#info(e, toMs));
    }
    return out;
  }

  /**
   * Verify record bytes from anywhere (§13.4) and store the record if it is
   * newer than the stored one (§13.5). Never throws on hostile input.
   */
  addRecordBytes(bytes: Uint8Array, source: PeerSource): RegistryOutcome {
    const now = this.#now();
    let record: PeerRecord;
    try {
      record = decodePeerRecord(bytes);
    } catch (err) {
      return refusal(err);
    }
    const e = this.#entries.get(record.nodeId);
    if (e?.blocked?.value) return blockedOutcome(record.nodeId);
    // The stored record again, still valid: the full order of §13.4-§13.5 gives REPLAYED too (§13.5), so the signature need not be checked twice.
    const stored = e?.record;
    if (stored && stored.bytes.equals(record.bytes) && !stored.isExpired(now) && stored.issuedAtMs <= now + this.#skew) {
      this.#touch(e!, source, now);
      return { accepted: false, code: 'ERR_RECORD_REPLAYED', message: 'peer record refused: the stored record again', nodeId: record.nodeId };
    }
    try {
      checkSignature(record);
      checkTimes(record, { nowMs: now, clockSkewMs: this.#skew });
    } catch (err) {
      return refusal(err);
    }
    return this.addRecord(record, source);
  }

  /**
   * Store a record that is already verified (by `verifyPeerRecord`) or our
   * own, if it is newer than the stored one (§13.5).
   */
  addRecord(record: PeerRecord, source: PeerSource): RegistryOutcome {
    const now = this.#now();
    const nodeId = record.nodeId;
    const existing = this.#entries.get(nodeId);
    if (existing?.blocked?.value) return blockedOutcome(nodeId);
    const code = compareToStored(existing?.record, record);
    if (code) {
      if (existing) this.#touch(existing, source, now);
      return { accepted: false, code, message: `peer record refused: ${code === 'ERR_RECORD_STALE' ? 'older than the stored one' : code === 'ERR_RECORD_REPLAYED' ? 'the stored record again' : 'the stored seq with other content'}`, nodeId };
    }
    const e = existing ?? this.#create(nodeId, now);
    if ('accepted' in e) return e;
    const isNew = !existing;
    e.record = record;
    e.lastSeenMs = Math.max(e.lastSeenMs, now);
    addSource(e, source);
    this.#changed(nodeId);
    return { accepted: true, change: isNew ? 'new' : 'updated', nodeId };
  }

  /**
   * Add unsigned address hints for a node id (a discovery source's finding).
   * Addresses that do not follow the record grammar (§13.2.1) are dropped.
   * @param ttlMs how long the hints may be dialled. Default one hour.
   */
  addHint(nodeId: string, urls: readonly string[], source: PeerSource, ttlMs = DEFAULT_HINT_TTL_MS): RegistryOutcome {
    if (!isNodeId(nodeId)) return { accepted: false, code: 'ERR_INVALID_NODE_ID', message: 'hint for something that is not a node id' };
    if (!isPeerSource(source)) throw new TypeError('"source" expected 1..16 of a-z, 0-9, - (starting with a letter)');
    const now = this.#now();
    const existing = this.#entries.get(nodeId);
    if (existing?.blocked?.value) return blockedOutcome(nodeId);
    const good = urls.filter((u) => typeof u === 'string' && isRecordAddress(u)).slice(0, MAX_HINTS_PER_PEER);
    const e = existing ?? this.#create(nodeId, now);
    if ('accepted' in e) return e;
    const isNew = !existing;
    const known = new Set(e.hints.map((h) => h.url));
    const fresh = good.map((url) => ({ url, source, seenMs: now, expiresMs: now + Math.max(0, ttlMs) }));
    e.hints = mergeHints(e.hints, fresh);
    const added = fresh.some((h) => !known.has(h.url) && e.hints.some((x) => x.url === h.url));
    const sourceAdded = addSource(e, source);
    e.lastSeenMs = Math.max(e.lastSeenMs, now);
    this.#changed(nodeId);
    return { accepted: true, change: isNew ? 'new' : added || sourceAdded ? 'updated' : 'unchanged', nodeId };
  }

  /**
   * A handshake with `peer` succeeded: the entry becomes `verified`. For an
   * outgoing connection, `url` is the address that worked.
   * @returns whether the node id is new to the registry, and whether its
   *   state changed to `verified` just now (both false when the registry is
   *   full of protected entries and the peer could not be added).
   */
  noteHandshake(peer: PeerIdentity, info: { direction: 'incoming' | 'outgoing'; url?: string | undefined }): { created: boolean; verified: boolean } {
    const now = this.#now();
    const existing = this.#entries.get(peer.nodeId);
    const created = !existing;
    const e = existing ?? this.#create(peer.nodeId, now);
    if ('accepted' in e) return { created: false, verified: false };
    const before = created ? undefined : this.#state(e);
    const url = info.url !== undefined && isRecordAddress(info.url) ? info.url : undefined;
    e.handshake = { atMs: now, direction: info.direction, ...(url ? { url } : {}) };
    if (url) e.stats.set(url, { ...e.stats.get(url), okMs: now });
    addSource(e, info.direction);
    e.lastSeenMs = Math.max(e.lastSeenMs, now);
    this.#trimStats(e);
    this.#changed(peer.nodeId);
    return { created, verified: (created || before === 'discovered') && this.#state(e) === 'verified' };
  }

  /** Dialling `url` for `nodeId` failed with `code`. */
  noteFailure(nodeId: string, url: string, code: string): void {
    const e = this.#entries.get(nodeId);
    if (!e) return;
    const now = this.#now();
    e.failure = { atMs: now, url: url.slice(0, 255), code };
    if (isRecordAddress(url)) e.stats.set(url, { ...e.stats.get(url), failMs: now, code });
    this.#trimStats(e);
    this.#changed(nodeId);
  }

  /** A person blocks (or unblocks) `nodeId`. A block keeps the entry (it is never evicted). */
  setBlocked(nodeId: string, blocked: boolean): void {
    if (!isNodeId(nodeId)) throw new McpE2eError('ERR_INVALID_NODE_ID', 'not a node id (64 hex digits)');
    const now = this.#now();
    let e = this.#entries.get(nodeId);
    if (!e) {
      e = newEntry(nodeId, now);
      this.#entries.set(nodeId, e);
      addSource(e, 'manual');
    }
    e.blocked = { value: blocked, atMs: now };
    this.#changed(nodeId);
  }

  /** Remove everything known about `nodeId` (also from the file, at the next write). Returns whether it was known. */
  forget(nodeId: string): boolean {
    const had = this.#entries.delete(nodeId);
    this.#dirty.delete(nodeId);
    this.#forgotten.add(nodeId);
    this.#schedule();
    return had;
  }

  /**
   * Write the changes now: lock, re-read, merge, evict to the caps, write
   * atomically. Without a path, only the caps are applied.
   * @throws McpE2eError `ERR_FILE_LOCKED`, `ERR_FILE_PERMISSIONS`,
   *   `ERR_KEY_FILE_CORRUPT`; the changes stay pending for the next try.
   */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const path = this.path;
    if (!path) {
      this.#dirty.clear();
      this.#forgotten.clear();
      return;
    }
    if (this.pendingWrites === 0) {
      this.refresh();
      return;
    }
    let merged: EntryTable | undefined;
    updateFileLocked(path, this.#fileOptions(), (current) => {
      const file = parseFile(current, path);
      for (const id of this.#forgotten) file.delete(id);
      for (const id of this.#dirty) {
        const mine = this.#entries.get(id);
        if (!mine) continue;
        const theirs = file.get(id);
        file.set(id, theirs ? mergeEntries(theirs, mine) : mine);
      }
      const now = this.#now();
      this.#evict(file, file.size - this.maxPeers, now);
      merged = file;
      return this.#serializeWithinCap(file, now);
    });
    this.#entries = merged!;
    this.#dirty.clear();
    this.#forgotten.clear();
    this.#fileStamp = this.#stamp();
  }

  /** Re-read the file if another process wrote it since (our unsaved changes stay on top). */
  refresh(): void {
    if (!this.path || this.#stamp() === this.#fileStamp) return;
    const mine = new Map([...this.#dirty].map((id) => [id, this.#entries.get(id)!] as const).filter(([, e]) => e));
    this.#read();
    for (const id of this.#forgotten) this.#entries.delete(id);
    for (const [id, e] of mine) {
      const theirs = this.#entries.get(id);
      this.#entries.set(id, theirs ? mergeEntries(theirs, e) : e);
    }
  }

  /** Write what is pending and stop the timer. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.flush();
    this.#closed = true;
  }

  #fileOptions() {
    return { what: WHAT, maxBytes: this.maxFileBytes, ...(this.#lockTimeoutMs !== undefined ? { lockTimeoutMs: this.#lockTimeoutMs } : {}) };
  }

  #stamp(): string {
    try {
      const st = statSync(this.path!);
      return `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      return '';
    }
  }

  #read(): void {
    this.#fileStamp = this.#stamp();
    this.#entries = parseFile(readTrustedFile(this.path!, this.maxFileBytes, WHAT), this.path!);
  }

  /** A lock or temporary files left by a writer killed mid-write: let the locked update remove them. */
  #cleanUpAfterCrash(): void {
    const path = this.path!;
    const name = basename(path);
    let names: string[];
    try {
      names = readdirSync(dirname(path));
    } catch {
      return;
    }
    if (!names.some((n) => n === `${name}.lock` || (n.startsWith(`.${name}.`) && n.endsWith('.tmp')))) return;
    try {
      updateFileLocked(path, { ...this.#fileOptions(), lockTimeoutMs: 200 }, () => undefined);
    } catch (err) {
      // A live process holds the lock: it will clean up itself.
      if (!isMcpE2eError(err, 'ERR_FILE_LOCKED')) throw err;
    }
  }

  #changed(nodeId: string): void {
    this.#entries.invalidate(nodeId);
    this.#dirty.add(nodeId);
    this.#forgotten.delete(nodeId);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#timer || this.flushIntervalMs === 0 || this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      try {
        this.flush();
      } catch {
        // Kept pending; the next change or flush() tries again (and reports).
        this.#schedule();
      }
    }, this.flushIntervalMs);
    this.#timer.unref();
  }

  #touch(e: Entry, source: PeerSource, now: number): void {
    addSource(e, source);
    e.lastSeenMs = Math.max(e.lastSeenMs, now);
    // Written with the next batch, like every change.
    this.#changed(e.nodeId);
  }

  #state(e: Entry): TrustState {
    if (e.blocked?.value) return 'blocked';
    if (this.#isTrusted(e.nodeId)) return 'trusted';
    return e.handshake ? 'verified' : 'discovered';
  }

  #info(e: Entry, now: number): PeerInfo {
    return {
      nodeId: e.nodeId,
      fingerprint: fingerprintOf(e.nodeId),
      state: this.#state(e),
      self: e.nodeId === this.selfNodeId,
      name: e.record?.name,
      record: e.record,
      recordExpired: e.record ? e.record.isExpired(now) : false,
      left: isLeft(e, now),
      addresses: this.#dialAddresses(e, now),
      hints: e.hints.map((h) => ({ ...h })),
      sources: [...e.sources],
      firstSeenMs: e.firstSeenMs,
      lastSeenMs: e.lastSeenMs,
      lastHandshake: e.handshake ? { ...e.handshake } : undefined,
      lastFailure: e.failure ? { ...e.failure } : undefined,
    };
  }

  #dialAddresses(e: Entry, now: number): string[] {
    // A node that announced it leaves (PROTOCOL.md §14.7) is not dialled until a newer record says it is back.
    if (isLeft(e, now)) return [];
    const recordUrls = e.record && !e.record.isExpired(now) ? e.record.addresses : [];
    const hintUrls = e.hints.filter((h) => h.expiresMs > now).map((h) => h.url);
    const candidates = new Set<string>([...recordUrls, ...hintUrls]);
    if (e.handshake?.url) candidates.add(e.handshake.url);
    const failing = (u: string) => {
      const s = e.stats.get(u);
      return s?.failMs !== undefined && (s.okMs === undefined || s.failMs >= s.okMs);
    };
    const worked = [...candidates].filter((u) => e.stats.get(u)?.okMs !== undefined && !failing(u)).sort((a, b) => e.stats.get(b)!.okMs! - e.stats.get(a)!.okMs!);
    const order: string[] = [...worked];
    for (const u of [...recordUrls, ...hintUrls]) if (!order.includes(u) && !failing(u)) order.push(u);
    const failed = [...candidates].filter(failing).sort((a, b) => e.stats.get(a)!.failMs! - e.stats.get(b)!.failMs!);
    for (const u of failed) if (!order.includes(u)) order.push(u);
    return order;
  }

  /** Keep address outcomes only for addresses still in view (bounded by the record and hint caps). */
  #trimStats(e: Entry): void {
    if (e.stats.size <= 2 * MAX_HINTS_PER_PEER) return;
    const keep = new Set<string>([...(e.record?.addresses ?? []), ...e.hints.map((h) => h.url), ...(e.handshake?.url ? [e.handshake.url] : [])]);
    for (const url of e.stats.keys()) if (!keep.has(url)) e.stats.delete(url);
  }

  #protected(e: Entry): boolean {
    return e.nodeId === this.selfNodeId || e.blocked?.value === true || this.#isTrusted(e.nodeId);
  }

  /** Eviction order (SECURITY.md, Limits: discovery): expired records, then discovered, then verified; least recently seen first. */
  #evictionOrder(entries: Iterable<Entry>, now: number): Entry[] {
    const rank = (e: Entry) => (e.record?.isExpired(now) ? 0 : e.handshake ? 2 : 1);
    return [...entries].filter((e) => !this.#protected(e)).sort((a, b) => rank(a) - rank(b) || a.lastSeenMs - b.lastSeenMs);
  }

  /** Drop `count` entries of `map` in eviction order (fewer if only protected ones are left). */
  #evict(map: EntryTable, count: number, now: number): number {
    if (count <= 0) return 0;
    const victims = this.#evictionOrder(map.values(), now).slice(0, count);
    for (const v of victims) {
      map.delete(v.nodeId);
      this.#dirty.delete(v.nodeId);
    }
    this.evicted += victims.length;
    return victims.length;
  }

  /** A new entry for `nodeId`, after making room; the refusal when there is none. */
  #create(nodeId: string, now: number): Entry | Extract<RegistryOutcome, { accepted: false }> {
    const full = this.#makeRoom(now);
    if (full) return full;
    const e = newEntry(nodeId, now);
    this.#entries.set(nodeId, e);
    return e;
  }

  /** Before adding a node id: make room in a batch, or refuse when only protected entries are left. */
  #makeRoom(now: number): Extract<RegistryOutcome, { accepted: false }> | undefined {
    if (this.#entries.size < this.maxPeers) return undefined;
    const target = Math.max(0, Math.min(this.maxPeers - 1, Math.floor(this.maxPeers * EVICTION_LOW_WATER)));
    this.#evict(this.#entries, this.#entries.size - target, now);
    if (this.#entries.size < this.maxPeers) return undefined;
    return { accepted: false, code: 'ERR_LIMIT_REACHED', message: `the peer registry holds ${this.maxPeers} node ids, all trusted or blocked` };
  }

  /** The file text, evicting until it fits `maxFileBytes`. */
  #serializeWithinCap(file: EntryTable, now: number): Buffer {
    const whole = serialize(file);
    if (whole.length <= this.maxFileBytes) return whole;
    let bytes = whole.length;
    for (const v of this.#evictionOrder(file.values(), now)) {
      bytes -= file.line(v.nodeId).length + 2;
      file.delete(v.nodeId);
      this.#dirty.delete(v.nodeId);
      this.evicted++;
      if (bytes <= this.maxFileBytes) break;
    }
    const cut = serialize(file);
    // Only trusted, blocked and our own entries are left: writing would make a file we refuse to read.
    if (cut.length > this.maxFileBytes) {
      throw new McpE2eError('ERR_LIMIT_REACHED', `the ${WHAT} would exceed ${this.maxFileBytes} bytes with trusted and blocked entries alone; raise maxFileBytes`);
    }
    return cut;
  }
}

function blockedOutcome(nodeId: string): RegistryOutcome {
  return { accepted: false, code: 'ERR_PEER_BLOCKED', message: `node ${fingerprintOf(nodeId)} is blocked`, nodeId };
}

function refusal(err: unknown): RegistryOutcome {
  if (err instanceof McpE2eError) return { accepted: false, code: err.code, message: err.message };
  throw err;
}
