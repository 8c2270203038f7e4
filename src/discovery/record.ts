/**
 * Signed peer records (PROTOCOL.md §13): what a node states about itself,
 * in a canonical byte encoding signed by its identity key under the label
 * `mcp-e2e/1 peer record\0`. Pure: bytes and a clock in, a record or an
 * error code out; no I/O.
 *
 * A record is a claim of its node, never more: its addresses are where the
 * node says it can be reached, and only a handshake pinned to the node id
 * proves that whoever answers there is that node.
 *
 * Verification runs the rules of §13.4 in their order, each with its code;
 * the ordering against a stored record (§13.5) is `compareToStored`.
 */
import { McpE2eError, type ErrorCode } from '../errors.js';
import { ed25519Verify, importEd25519PublicKey, isSmallOrderEd25519, KEY_BYTES, sha256, SIGNATURE_BYTES } from '../crypto/primitives.js';
import type { NodeIdentity } from '../identity/identity.js';
import { LABEL } from '../protocol.js';
import { decodeHex } from '../util/assert.js';

/** The format byte of this encoding (the first byte of every record). */
export const PEER_RECORD_FORMAT = 1;
/** Largest record (body and signature), bytes. Checked before anything is parsed. */
export const MAX_PEER_RECORD_BYTES = 2048;
/** Most addresses in one record. */
export const MAX_RECORD_ADDRESSES = 8;
/** Longest address (URL), bytes. */
export const MAX_RECORD_ADDRESS_BYTES = 255;
/** Most protocol versions in one record. */
export const MAX_RECORD_PROTOCOL_VERSIONS = 8;
/** Longest human name (attribute 1), bytes of UTF-8. */
export const MAX_RECORD_NAME_BYTES = 64;
/** Longest service name / version (attribute 2), bytes of UTF-8. */
export const MAX_SERVICE_NAME_BYTES = 64;
export const MAX_SERVICE_VERSION_BYTES = 32;
/** Longest lifetime a record may state (`expires_at - issued_at`): one day, ms. */
export const MAX_RECORD_LIFETIME_MS = 24 * 60 * 60 * 1000;
/** Lifetime of the records we make when none is given: one hour, ms (refreshed at half of it). */
export const DEFAULT_RECORD_LIFETIME_MS = 60 * 60 * 1000;
/** How far in the future `issued_at` may be and still be accepted (clock skew allowance), ms. */
export const RECORD_CLOCK_SKEW_MS = 5 * 60 * 1000;
/** Attribute tags defined by this version. Others are carried, signed and ignored. */
export const RECORD_ATTRIBUTE = Object.freeze({ NAME: 0x01, SERVICE: 0x02 });

/** Bytes before the protocol version list: format, identity key, node id, seq, issued_at, expires_at. */
const FIXED_HEADER_BYTES = 1 + KEY_BYTES + 32 + 8 + 8 + 8;
/** Smallest well-formed record: the header, one version, no address, no attribute, the signature. */
export const MIN_PEER_RECORD_BYTES = FIXED_HEADER_BYTES + 1 + 2 + 1 + SIGNATURE_BYTES;

/** What an MCP endpoint serves (attribute 2), e.g. the wrapped server's `serverInfo`. */
export interface RecordService {
  /** 1..64 bytes of UTF-8. */
  name: string;
  /** 0..32 bytes of UTF-8. */
  version: string;
}

/** The fields a node states in its record (everything but the key, the node id and the signature). */
export interface PeerRecordFields {
  /** Grows with every new record of the node; 0..2^53-1. Ours: milliseconds since the epoch, or the last + 1. Never read a peer's as a clock. */
  seq: number;
  /** When the record was made, ms since the Unix epoch. */
  issuedAtMs: number;
  /** When it stops being valid, ms since the Unix epoch; at most `MAX_RECORD_LIFETIME_MS` after `issuedAtMs`. */
  expiresAtMs: number;
  /** `ws://` / `wss://` URLs, at most 8, distinct, in order of the node's preference. */
  addresses: readonly string[];
  /** Protocol versions spoken, 1..8 of them, strictly increasing. */
  protocolVersions: readonly number[];
  /** A short human name (never identity: anyone can claim any name). */
  name?: string | undefined;
  /** What the node serves. */
  service?: RecordService | undefined;
}

const fail = (code: ErrorCode, why: string): McpE2eError => new McpE2eError(code, `peer record refused: ${why}`);
const malformed = (why: string): McpE2eError => fail('ERR_RECORD_MALFORMED', why);

/** What the decoder found, before it becomes a `PeerRecord`. */
interface DecodedFields extends PeerRecordFields {
  nodeId: string;
  publicKey: Buffer;
  attributes: ReadonlyMap<number, Buffer>;
}

/**
 * A decoded peer record. Instances come from `verifyPeerRecord` (bytes from
 * anywhere), `createPeerRecord` (ours), or `decodePeerRecord` (our own
 * registry file, structure checked, signature checked when it was stored).
 * Immutable.
 */
export class PeerRecord implements PeerRecordFields {
  /** The whole record as carried: body || signature. */
  readonly bytes: Buffer;
  readonly nodeId: string;
  /** Raw 32-byte Ed25519 identity key. */
  readonly publicKey: Buffer;
  readonly seq: number;
  readonly issuedAtMs: number;
  readonly expiresAtMs: number;
  readonly addresses: readonly string[];
  readonly protocolVersions: readonly number[];
  readonly name: string | undefined;
  readonly service: RecordService | undefined;
  /** Every attribute by tag, known or not (raw values). */
  readonly attributes: ReadonlyMap<number, Buffer>;

  /** @internal Use `verifyPeerRecord`, `createPeerRecord` or `decodePeerRecord`. */
  constructor(bytes: Buffer, fields: DecodedFields) {
    this.bytes = bytes;
    this.nodeId = fields.nodeId;
    this.publicKey = fields.publicKey;
    this.seq = fields.seq;
    this.issuedAtMs = fields.issuedAtMs;
    this.expiresAtMs = fields.expiresAtMs;
    this.addresses = Object.freeze([...fields.addresses]);
    this.protocolVersions = Object.freeze([...fields.protocolVersions]);
    this.name = fields.name;
    this.service = fields.service ? Object.freeze({ ...fields.service }) : undefined;
    this.attributes = fields.attributes;
    Object.freeze(this);
  }

  /** The signed bytes (everything but the signature). */
  get body(): Buffer {
    return this.bytes.subarray(0, this.bytes.length - SIGNATURE_BYTES);
  }

  get signature(): Buffer {
    return this.bytes.subarray(this.bytes.length - SIGNATURE_BYTES);
  }

  /** True once `nowMs` has reached `expiresAtMs`. */
  isExpired(nowMs: number): boolean {
    return nowMs >= this.expiresAtMs;
  }

  /** The record as lowercase hex (its form inside JSON: control messages, the registry file). */
  toHex(): string {
    return this.bytes.toString('hex');
  }

  /** Public fields only (for logs and `--json`); the bytes as hex. */
  toJSON(): Record<string, unknown> {
    return {
      node_id: this.nodeId,
      seq: this.seq,
      issued_at: this.issuedAtMs,
      expires_at: this.expiresAtMs,
      addresses: this.addresses,
      protocol_versions: this.protocolVersions,
      ...(this.name !== undefined ? { name: this.name } : {}),
      ...(this.service !== undefined ? { service: this.service } : {}),
    };
  }
}

// ---------------------------------------------------------------------------------------------
// Field rules shared by the encoder and the decoder
// ---------------------------------------------------------------------------------------------

// §13.2: scheme, host (lowercase name or IPv4, or a bracketed IPv6 literal), optional port without
// leading zeros, optional path of RFC 3986 path characters (no query, no fragment).
const URL_RE = /^wss?:\/\/(?:[a-z0-9.-]{1,253}|\[[0-9a-f:.]{2,45}\])(?::([1-9][0-9]{0,4}))?(?:\/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*)?$/;

/** True when `url` is an address a record may carry (§13.2): the grammar and a port of at most 65535. */
export function isRecordAddress(url: string): boolean {
  if (url.length === 0 || url.length > MAX_RECORD_ADDRESS_BYTES) return false;
  const m = URL_RE.exec(url);
  return m !== null && (m[1] === undefined || Number(m[1]) <= 65535);
}

// Controls (Cc), bidirectional formatting characters, line and paragraph separators, and the BOM
// (§13.2.2): what could make a name display as something it is not.
const FORBIDDEN_TEXT_RE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff]/;
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Decode record text (§13.2): well-formed UTF-8 without forbidden characters, else undefined. */
function decodeText(bytes: Uint8Array): string | undefined {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return undefined;
  }
  return FORBIDDEN_TEXT_RE.test(text) ? undefined : text;
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

function u64(value: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(value));
  return b;
}

function textBytes(text: string, min: number, max: number, name: string): Buffer {
  if (typeof text !== 'string') throw new TypeError(`"${name}" expected a string`);
  const b = Buffer.from(text, 'utf8');
  if (b.length < min || b.length > max) throw new RangeError(`"${name}" expected ${min}..${max} bytes of UTF-8, got ${b.length}`);
  if (decodeText(b) !== text) throw new RangeError(`"${name}" contains control or formatting characters`);
  return b;
}

function attribute(tag: number, value: Buffer): Buffer {
  const head = Buffer.alloc(3);
  head[0] = tag;
  head.writeUInt16BE(value.length, 1);
  return Buffer.concat([head, value]);
}

/**
 * The canonical body of a record (§13.2) for `publicKey` with `fields`.
 * @throws TypeError / RangeError for fields no receiver would accept.
 */
export function encodePeerRecordBody(publicKey: Uint8Array, fields: PeerRecordFields): Buffer {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== KEY_BYTES) throw new RangeError('"publicKey" expected 32 bytes');
  const int = (v: unknown, name: string): number => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new RangeError(`"${name}" expected an integer 0..2^53-1`);
    return v;
  };
  const seq = int(fields.seq, 'seq');
  const issued = int(fields.issuedAtMs, 'issuedAtMs');
  const expires = int(fields.expiresAtMs, 'expiresAtMs');
  if (expires <= issued || expires - issued > MAX_RECORD_LIFETIME_MS) {
    throw new RangeError(`"expiresAtMs" expected 1..${MAX_RECORD_LIFETIME_MS} ms after "issuedAtMs"`);
  }
  const versions = fields.protocolVersions;
  if (!Array.isArray(versions) || versions.length < 1 || versions.length > MAX_RECORD_PROTOCOL_VERSIONS) {
    throw new RangeError(`"protocolVersions" expected 1..${MAX_RECORD_PROTOCOL_VERSIONS} versions`);
  }
  versions.forEach((v, i) => {
    if (!Number.isInteger(v) || v < 1 || v > 0xffff || (i > 0 && v <= versions[i - 1]!)) {
      throw new RangeError('"protocolVersions" expected strictly increasing integers 1..65535');
    }
  });
  const addresses = fields.addresses;
  if (!Array.isArray(addresses) || addresses.length > MAX_RECORD_ADDRESSES) throw new RangeError(`"addresses" expected at most ${MAX_RECORD_ADDRESSES} URLs`);
  for (const a of addresses) {
    if (typeof a !== 'string' || !isRecordAddress(a)) throw new RangeError(`"addresses": not a record address (ws:// or wss://, lowercase host, no query): ${JSON.stringify(String(a).slice(0, 80))}`);
  }
  if (new Set(addresses).size !== addresses.length) throw new RangeError('"addresses" expected distinct URLs');

  const versionBytes = Buffer.alloc(1 + 2 * versions.length);
  versionBytes[0] = versions.length;
  versions.forEach((v, i) => versionBytes.writeUInt16BE(v, 1 + 2 * i));
  const addressParts = [Buffer.from([addresses.length])];
  for (const a of addresses) addressParts.push(Buffer.from([a.length]), Buffer.from(a, 'ascii'));
  const attributes: Buffer[] = [];
  if (fields.name !== undefined) attributes.push(attribute(RECORD_ATTRIBUTE.NAME, textBytes(fields.name, 1, MAX_RECORD_NAME_BYTES, 'name')));
  if (fields.service !== undefined) {
    const n = textBytes(fields.service.name, 1, MAX_SERVICE_NAME_BYTES, 'service.name');
    const v = textBytes(fields.service.version, 0, MAX_SERVICE_VERSION_BYTES, 'service.version');
    attributes.push(attribute(RECORD_ATTRIBUTE.SERVICE, Buffer.concat([Buffer.from([n.length]), n, Buffer.from([v.length]), v])));
  }
  return Buffer.concat([
    Buffer.from([PEER_RECORD_FORMAT]),
    publicKey,
    sha256(publicKey),
    u64(seq),
    u64(issued),
    u64(expires),
    versionBytes,
    ...addressParts,
    ...attributes,
  ]);
}

/**
 * Make and sign our record. The result is exactly what receivers accept
 * (it is decoded again before it is returned).
 * @throws TypeError / RangeError for bad fields or a record over MAX_PEER_RECORD_BYTES.
 */
export function createPeerRecord(identity: NodeIdentity, fields: PeerRecordFields): PeerRecord {
  const body = encodePeerRecordBody(identity.publicKey, fields);
  const bytes = Buffer.concat([body, identity.sign(LABEL.PEER_RECORD_SIGNATURE, body)]);
  if (bytes.length > MAX_PEER_RECORD_BYTES) throw new RangeError(`the record would be ${bytes.length} bytes, more than ${MAX_PEER_RECORD_BYTES}: fewer or shorter addresses`);
  return decodePeerRecord(bytes);
}

// ---------------------------------------------------------------------------------------------
// Decoding and verification
// ---------------------------------------------------------------------------------------------

class Reader {
  off = 0;
  constructor(readonly buf: Buffer, readonly end: number) {}
  need(n: number, what: string): void {
    if (this.off + n > this.end) throw malformed(`truncated in ${what}`);
  }
  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.off++]!;
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.buf.readUInt16BE(this.off);
    this.off += 2;
    return v;
  }
  u64(what: string): number {
    this.need(8, what);
    const v = this.buf.readBigUInt64BE(this.off);
    this.off += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw malformed(`${what} above 2^53-1`);
    return Number(v);
  }
  bytes(n: number, what: string): Buffer {
    this.need(n, what);
    const b = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return b;
  }
}

/**
 * Rules 1 and 2 of §13.4: the size, then a strict decode of the structure.
 * Does not check the key, the node id, the signature or the clock: use
 * `verifyPeerRecord` for anything received. `decodePeerRecord` alone is for
 * records read back from our own registry file (checked when stored).
 * @throws McpE2eError `ERR_RECORD_TOO_LARGE`, `ERR_RECORD_MALFORMED`.
 */
export function decodePeerRecord(input: Uint8Array): PeerRecord {
  if (!(input instanceof Uint8Array)) throw malformed('not bytes');
  if (input.length > MAX_PEER_RECORD_BYTES) throw fail('ERR_RECORD_TOO_LARGE', `${input.length} bytes, more than ${MAX_PEER_RECORD_BYTES}`);
  if (input.length < MIN_PEER_RECORD_BYTES) throw malformed(`${input.length} bytes, fewer than the smallest record (${MIN_PEER_RECORD_BYTES})`);
  // A copy of its own: the record may live long (registry), and `input` may be a slice of a larger buffer.
  const bytes = Buffer.alloc(input.length);
  bytes.set(input);
  const r = new Reader(bytes, bytes.length - SIGNATURE_BYTES);
  const format = r.u8('format');
  if (format !== PEER_RECORD_FORMAT) throw malformed(`format ${format}, not ${PEER_RECORD_FORMAT}`);
  const publicKey = r.bytes(KEY_BYTES, 'identity key');
  const nodeId = r.bytes(32, 'node id').toString('hex');
  const seq = r.u64('seq');
  const issuedAtMs = r.u64('issued_at');
  const expiresAtMs = r.u64('expires_at');
  if (expiresAtMs <= issuedAtMs) throw malformed('expires_at is not after issued_at');
  if (expiresAtMs - issuedAtMs > MAX_RECORD_LIFETIME_MS) throw malformed(`lifetime above ${MAX_RECORD_LIFETIME_MS} ms`);
  const versionCount = r.u8('version count');
  if (versionCount < 1 || versionCount > MAX_RECORD_PROTOCOL_VERSIONS) throw malformed(`${versionCount} protocol versions, not 1..${MAX_RECORD_PROTOCOL_VERSIONS}`);
  const protocolVersions: number[] = [];
  for (let i = 0; i < versionCount; i++) {
    const v = r.u16('protocol versions');
    if (v === 0 || (i > 0 && v <= protocolVersions[i - 1]!)) throw malformed('protocol versions not strictly increasing from 1');
    protocolVersions.push(v);
  }
  const addressCount = r.u8('address count');
  if (addressCount > MAX_RECORD_ADDRESSES) throw malformed(`${addressCount} addresses, more than ${MAX_RECORD_ADDRESSES}`);
  const addresses: string[] = [];
  for (let i = 0; i < addressCount; i++) {
    const len = r.u8('address length');
    if (len === 0) throw malformed('an empty address');
    const url = r.bytes(len, 'address').toString('latin1');
    if (!isRecordAddress(url)) throw malformed(`address ${i} is not a ws:// or wss:// URL of the record grammar`);
    if (addresses.includes(url)) throw malformed(`address ${i} repeats an earlier one`);
    addresses.push(url);
  }
  const attributes = new Map<number, Buffer>();
  let lastTag = 0;
  let name: string | undefined;
  let service: RecordService | undefined;
  while (r.off < r.end) {
    const tag = r.u8('attribute tag');
    if (tag <= lastTag) throw malformed(`attribute tag ${tag} not above the previous one (${lastTag})`);
    lastTag = tag;
    const value = r.bytes(r.u16('attribute length'), `attribute ${tag}`);
    attributes.set(tag, value);
    if (tag === RECORD_ATTRIBUTE.NAME) {
      if (value.length < 1 || value.length > MAX_RECORD_NAME_BYTES) throw malformed(`name of ${value.length} bytes, not 1..${MAX_RECORD_NAME_BYTES}`);
      name = decodeText(value);
      if (name === undefined) throw malformed('name is not UTF-8 or has control or formatting characters');
    } else if (tag === RECORD_ATTRIBUTE.SERVICE) {
      service = decodeService(value);
    }
  }
  return new PeerRecord(bytes, { nodeId, publicKey, seq, issuedAtMs, expiresAtMs, addresses, protocolVersions, name, service, attributes });
}

function decodeService(value: Buffer): RecordService {
  const r = new Reader(value, value.length);
  const nameLen = r.u8('service name length');
  if (nameLen < 1 || nameLen > MAX_SERVICE_NAME_BYTES) throw malformed(`service name of ${nameLen} bytes, not 1..${MAX_SERVICE_NAME_BYTES}`);
  const name = decodeText(r.bytes(nameLen, 'service name'));
  const versionLen = r.u8('service version length');
  if (versionLen > MAX_SERVICE_VERSION_BYTES) throw malformed(`service version of ${versionLen} bytes, more than ${MAX_SERVICE_VERSION_BYTES}`);
  const version = decodeText(r.bytes(versionLen, 'service version'));
  if (r.off !== value.length) throw malformed('bytes after the service version');
  if (name === undefined || version === undefined) throw malformed('service text is not UTF-8 or has control or formatting characters');
  return { name, version };
}

/** Options of `verifyPeerRecord`. */
export interface VerifyPeerRecordOptions {
  /** The receiver's clock, ms since the epoch. */
  nowMs: number;
  /** Accepted lead of `issued_at` over `nowMs`, ms. Default `RECORD_CLOCK_SKEW_MS` (5 minutes). */
  clockSkewMs?: number;
}

/**
 * Verify a received record, rules 1 to 7 of §13.4 in order: size, strict
 * decode, identity key, node id, signature, not issued in the future, not
 * expired. Rule 8 (against the stored record) is `compareToStored`.
 * @throws McpE2eError `ERR_RECORD_TOO_LARGE`, `ERR_RECORD_MALFORMED`,
 *   `ERR_RECORD_BAD_KEY`, `ERR_RECORD_NODE_ID_MISMATCH`,
 *   `ERR_RECORD_BAD_SIGNATURE`, `ERR_RECORD_FROM_FUTURE`, `ERR_RECORD_EXPIRED`.
 */
export function verifyPeerRecord(input: Uint8Array, options: VerifyPeerRecordOptions): PeerRecord {
  const record = decodePeerRecord(input);
  checkSignature(record);
  checkTimes(record, options);
  return record;
}

/** Rules 3 to 5: the key, the node id, the signature (no clock). */
export function checkSignature(record: PeerRecord): void {
  if (isSmallOrderEd25519(record.publicKey)) throw fail('ERR_RECORD_BAD_KEY', 'identity key of small order');
  let key;
  try {
    key = importEd25519PublicKey(record.publicKey);
  } catch {
    throw fail('ERR_RECORD_BAD_KEY', 'identity key refused');
  }
  if (sha256(record.publicKey).toString('hex') !== record.nodeId) throw fail('ERR_RECORD_NODE_ID_MISMATCH', 'node id is not the SHA-256 of the identity key');
  if (!ed25519Verify(key, Buffer.concat([LABEL.PEER_RECORD_SIGNATURE, record.body]), record.signature)) {
    throw fail('ERR_RECORD_BAD_SIGNATURE', `signature of ${record.nodeId.slice(0, 12)} does not verify`);
  }
}

/** Rules 6 and 7: issued no later than now + skew, and not yet expired. */
export function checkTimes(record: PeerRecord, options: VerifyPeerRecordOptions): void {
  const { nowMs } = options;
  const skew = options.clockSkewMs ?? RECORD_CLOCK_SKEW_MS;
  if (record.issuedAtMs > nowMs + skew) throw fail('ERR_RECORD_FROM_FUTURE', `issued ${record.issuedAtMs - nowMs} ms in the future (allowed: ${skew})`);
  if (record.isExpired(nowMs)) throw fail('ERR_RECORD_EXPIRED', `expired ${nowMs - record.expiresAtMs} ms ago`);
}

/**
 * Rule 8 of §13.5: may `incoming` replace `stored` (same node id)? Returns
 * undefined when it may (higher seq), else the code of the refusal:
 * `ERR_RECORD_STALE` (lower seq), `ERR_RECORD_REPLAYED` (the same record
 * again), `ERR_RECORD_EQUIVOCATION` (the same seq with other content: the
 * node misbehaves).
 */
export function compareToStored(stored: PeerRecord | undefined, incoming: PeerRecord): ErrorCode | undefined {
  if (!stored || incoming.seq > stored.seq) return undefined;
  if (incoming.seq < stored.seq) return 'ERR_RECORD_STALE';
  return incoming.bytes.equals(stored.bytes) ? 'ERR_RECORD_REPLAYED' : 'ERR_RECORD_EQUIVOCATION';
}

/**
 * The bytes of a record carried as hex in JSON (control messages, files):
 * the length is checked before anything is decoded.
 * @throws McpE2eError `ERR_RECORD_TOO_LARGE`, `ERR_RECORD_MALFORMED`.
 */
export function recordBytesFromHex(text: unknown): Buffer {
  if (typeof text !== 'string') throw malformed('not a hex string');
  if (text.length > 2 * MAX_PEER_RECORD_BYTES) throw fail('ERR_RECORD_TOO_LARGE', `${text.length / 2} bytes, more than ${MAX_PEER_RECORD_BYTES}`);
  const bytes = decodeHex(text);
  if (!bytes) throw malformed('not lowercase hex of whole bytes');
  return bytes;
}
