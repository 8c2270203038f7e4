/**
 * Generator of the peer record vectors (PROTOCOL.md §13.9):
 * test/vectors/peer-records.json.
 *
 * Everything is fixed: the identity seed (c0..df), the clock and every
 * field. Ed25519 signatures are deterministic (RFC 8032), so the output is
 * the same on every run. Accepted records are made by our encoder
 * (`createPeerRecord`) where it can express them and checked against a raw
 * builder that follows the layout of §13.2 field by field; refused records
 * are built with the raw builder (which can write what the encoder refuses)
 * and signed correctly, so that each breaks exactly the rule it is named after.
 *
 * Run: node dist/test/vectors/generate-records.js
 * test/record-vectors.test.ts checks the file against the code and re-derives it from the spec.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { NodeIdentity } from '../../src/identity/identity.js';
import { ed25519FromSeed, sha256 } from '../../src/crypto/primitives.js';
import { compareToStored, createPeerRecord, verifyPeerRecord, type PeerRecordFields } from '../../src/discovery/record.js';
import { McpE2eError } from '../../src/errors.js';
import { LABEL } from '../../src/protocol.js';

const seq32 = (start: number) => Buffer.from(Array.from({ length: 32 }, (_, i) => start + i));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** 2026-01-01T00:00:00Z in ms: the `issued_at` (and `seq`) of the vectors. */
export const ISSUED_AT = 1_767_225_600_000;
const HOUR = 3_600_000;
/** The receiver's clock in the vectors unless a case says otherwise: one minute after issue. */
export const NOW = ISSUED_AT + 60_000;
export const RECORD_SEED = seq32(0xc0);
/** A second identity, for records with another node's id. */
export const OTHER_SEED = seq32(0xe0);

interface RawAttribute {
  tag: number;
  value: Buffer;
}

/** Everything of a body, each part overridable, including with what no receiver accepts. */
interface RawBody {
  format: number;
  key: Buffer;
  nodeId: Buffer;
  seq: bigint;
  issued: bigint;
  expires: bigint;
  versions: number[];
  /** Each address as its bytes; `len` overrides the length byte. */
  addresses: Array<{ bytes: Buffer; len?: number }>;
  attributes: RawAttribute[];
  /** Appended as is (to truncate or pad). */
  tail?: Buffer;
}

/** The layout of §13.2, byte for byte, with nothing checked. */
function rawBody(b: RawBody): Buffer {
  const u64 = (v: bigint) => {
    const x = Buffer.alloc(8);
    x.writeBigUInt64BE(v);
    return x;
  };
  const parts: Buffer[] = [Buffer.of(b.format), b.key, b.nodeId, u64(b.seq), u64(b.issued), u64(b.expires), Buffer.of(b.versions.length)];
  for (const v of b.versions) {
    const x = Buffer.alloc(2);
    x.writeUInt16BE(v);
    parts.push(x);
  }
  parts.push(Buffer.of(b.addresses.length));
  for (const a of b.addresses) parts.push(Buffer.of(a.len ?? a.bytes.length), a.bytes);
  for (const a of b.attributes) {
    const head = Buffer.alloc(3);
    head[0] = a.tag;
    head.writeUInt16BE(a.value.length, 1);
    parts.push(head, a.value);
  }
  if (b.tail) parts.push(b.tail);
  return Buffer.concat(parts);
}

const text = (s: string) => Buffer.from(s, 'utf8');
const service = (name: string, version: string) => Buffer.concat([Buffer.of(text(name).length), text(name), Buffer.of(text(version).length), text(version)]);

function identity(seed: Buffer): NodeIdentity {
  return NodeIdentity.fromPrivateKey(seed);
}

/** A raw body of the vector identity from fields, with overrides. */
function bodyOf(fields: PeerRecordFields, extra: RawAttribute[] = [], override: Partial<RawBody> = {}): Buffer {
  const id = identity(RECORD_SEED);
  const attributes: RawAttribute[] = [];
  if (fields.name !== undefined) attributes.push({ tag: 1, value: text(fields.name) });
  if (fields.service !== undefined) attributes.push({ tag: 2, value: service(fields.service.name, fields.service.version) });
  return rawBody({
    format: 1,
    key: id.publicKey,
    nodeId: sha256(id.publicKey),
    seq: BigInt(fields.seq),
    issued: BigInt(fields.issuedAtMs),
    expires: BigInt(fields.expiresAtMs),
    versions: [...fields.protocolVersions],
    addresses: fields.addresses.map((a) => ({ bytes: Buffer.from(a, 'ascii') })),
    attributes: [...attributes, ...extra].sort((a, b) => a.tag - b.tag),
    ...override,
  });
}

/** Sign `body` under `label` (any bytes: the refused cases use the wrong ones) with `seed`. */
function signRaw(body: Buffer, label: Buffer = LABEL.PEER_RECORD_SIGNATURE, seed: Buffer = RECORD_SEED): Buffer {
  return Buffer.concat([body, ed25519FromSeed(seed).sign(Buffer.concat([label, body]))]);
}

const BASE: PeerRecordFields = {
  seq: ISSUED_AT,
  issuedAtMs: ISSUED_AT,
  expiresAtMs: ISSUED_AT + HOUR,
  addresses: ['ws://192.0.2.10:8765/mcp', 'wss://node-a.example/mcp'],
  protocolVersions: [1, 2],
  name: 'node-a',
  service: { name: 'everything', version: '2026.8.31' },
};
const withFields = (f: Partial<PeerRecordFields>): PeerRecordFields => ({ ...BASE, ...f });

interface AcceptedCase {
  name: string;
  description: string;
  fields: PeerRecordFields;
  /** Attributes beyond name and service (unknown tags). */
  extra?: RawAttribute[];
  now?: number;
  stored?: Buffer;
}

interface RefusedCase {
  name: string;
  description: string;
  record: Buffer;
  now?: number;
  stored?: Buffer;
  error: string;
}

const record = (fields: PeerRecordFields, extra: RawAttribute[] = []) => signRaw(bodyOf(fields, extra));

function acceptedCases(): AcceptedCase[] {
  return [
    { name: 'full', description: 'two addresses, two protocol versions, a name and a service', fields: BASE },
    {
      name: 'minimal',
      description: 'the smallest record: one protocol version, no address, no attribute (157 bytes)',
      fields: { seq: 0, issuedAtMs: ISSUED_AT, expiresAtMs: ISSUED_AT + 1, addresses: [], protocolVersions: [1] },
      now: ISSUED_AT,
    },
    {
      name: 'unknown-attribute',
      description: 'an attribute with a tag this version does not define (0x7f): accepted, kept, ignored',
      fields: withFields({ service: undefined }),
      extra: [{ tag: 0x7f, value: text('later') }],
    },
    {
      name: 'ipv6-and-utf8-name',
      description: 'an IPv6 literal address without a path and a non-ASCII name',
      fields: withFields({ addresses: ['ws://[2001:db8::1]:8765'], protocolVersions: [1], name: 'Büro-Knoten', service: undefined }),
    },
    {
      name: 'one-day-lifetime-and-skew',
      description: 'the longest lifetime (86,400,000 ms), issued exactly 300,000 ms ahead of the receiver clock',
      fields: withFields({ expiresAtMs: ISSUED_AT + 86_400_000 }),
      now: ISSUED_AT - 300_000,
    },
    {
      name: 'last-valid-millisecond',
      description: 'the receiver clock is 1 ms before expires_at',
      fields: BASE,
      now: ISSUED_AT + HOUR - 1,
    },
    {
      name: 'newer-than-stored',
      description: 'seq one above the stored record: replaces it',
      fields: withFields({ seq: ISSUED_AT + 1, addresses: ['ws://192.0.2.11:8765/mcp'] }),
      stored: record(BASE),
    },
  ];
}

function refusedCases(): RefusedCase[] {
  const other = identity(OTHER_SEED);
  const full = record(BASE);
  const addr = (s: string) => ({ bytes: Buffer.from(s, 'latin1') });
  const malformed = (name: string, description: string, body: Buffer): RefusedCase => ({ name, description, record: signRaw(body), error: 'ERR_RECORD_MALFORMED' });
  const flipped = Buffer.from(full);
  flipped[flipped.length - 1]! ^= 0x01;
  const altered = Buffer.from(full);
  altered[1 + 32 + 32 + 7]! ^= 0x01; // the last byte of seq, after signing
  // Under the identity 01 00..00, R = 01 00..00 and S = 0 verify for every message with OpenSSL (§2.1).
  const smallKey = Buffer.alloc(32);
  smallKey[0] = 1;
  const smallBody = bodyOf(BASE, [], { key: smallKey, nodeId: sha256(smallKey) });
  const forgedBySmallKey = Buffer.concat([smallBody, smallKey, Buffer.alloc(32)]);
  const bigPad = 2049 - (bodyOf(BASE).length + 3 + 64);
  return [
    { name: 'too-large', description: '2049 bytes (an unknown attribute pads a valid record)', record: record(BASE, [{ tag: 0x7f, value: Buffer.alloc(bigPad, 0x61) }]), error: 'ERR_RECORD_TOO_LARGE' },
    { name: 'truncated', description: 'the first 156 bytes of a record', record: full.subarray(0, 156), error: 'ERR_RECORD_MALFORMED' },
    malformed('format-2', 'format byte 2', bodyOf(BASE, [], { format: 2 })),
    malformed('field-past-end', 'the address count promises more addresses than the body holds', bodyOf(BASE, [], { addresses: [addr('ws://a')], attributes: [], tail: Buffer.of() }).subarray(0, -7)),
    malformed('attribute-past-end', 'an attribute length beyond the end of the body', bodyOf(BASE, [], { attributes: [], tail: Buffer.from('7f00ff61', 'hex') })),
    malformed('seq-above-2^53', 'seq = 2^53', bodyOf(BASE, [], { seq: 2n ** 53n })),
    malformed('expires-not-after-issued', 'expires_at = issued_at', bodyOf(withFields({ expiresAtMs: ISSUED_AT }))),
    malformed('lifetime-above-one-day', 'expires_at = issued_at + 86,400,001', bodyOf(withFields({ expiresAtMs: ISSUED_AT + 86_400_001 }))),
    malformed('no-protocol-version', 'version count 0', bodyOf(withFields({ protocolVersions: [] }))),
    malformed('versions-not-increasing', 'protocol versions 2, 1', bodyOf(withFields({ protocolVersions: [2, 1] }))),
    malformed('version-zero', 'protocol version 0', bodyOf(withFields({ protocolVersions: [0, 1] }))),
    malformed('nine-addresses', 'nine addresses', bodyOf(withFields({ addresses: Array.from({ length: 9 }, (_, i) => `ws://192.0.2.${i + 1}:8765`) }))),
    malformed('empty-address', 'an address of length 0', bodyOf(BASE, [], { addresses: [{ bytes: Buffer.alloc(0) }] })),
    malformed('uppercase-host', 'ws://Node-A.example/mcp', bodyOf(withFields({ addresses: ['ws://Node-A.example/mcp'] }))),
    malformed('http-scheme', 'http://192.0.2.10:8765/', bodyOf(withFields({ addresses: ['http://192.0.2.10:8765/'] }))),
    malformed('query', 'ws://192.0.2.10:8765/mcp?x=1', bodyOf(withFields({ addresses: ['ws://192.0.2.10:8765/mcp?x=1'] }))),
    malformed('userinfo', 'ws://user@192.0.2.10:8765/', bodyOf(withFields({ addresses: ['ws://user@192.0.2.10:8765/'] }))),
    malformed('port-above-65535', 'ws://192.0.2.10:65536', bodyOf(withFields({ addresses: ['ws://192.0.2.10:65536'] }))),
    malformed('port-leading-zero', 'ws://192.0.2.10:08765', bodyOf(withFields({ addresses: ['ws://192.0.2.10:08765'] }))),
    malformed('duplicate-address', 'the same address twice', bodyOf(withFields({ addresses: ['ws://192.0.2.10:8765', 'ws://192.0.2.10:8765'] }))),
    malformed('attributes-out-of-order', 'service (2) before name (1)', bodyOf(BASE, [], { attributes: [{ tag: 2, value: service('x', '1') }, { tag: 1, value: text('n') }] })),
    malformed('attribute-twice', 'two names', bodyOf(BASE, [], { attributes: [{ tag: 1, value: text('a') }, { tag: 1, value: text('b') }] })),
    malformed('attribute-tag-zero', 'tag 0', bodyOf(BASE, [], { attributes: [{ tag: 0, value: text('x') }] })),
    malformed('empty-name', 'a name of 0 bytes', bodyOf(BASE, [], { attributes: [{ tag: 1, value: Buffer.alloc(0) }] })),
    malformed('name-65-bytes', 'a name of 65 bytes', bodyOf(withFields({ name: undefined, service: undefined }), [{ tag: 1, value: Buffer.alloc(65, 0x61) }])),
    malformed('name-control-character', 'a name with U+0007', bodyOf(BASE, [], { attributes: [{ tag: 1, value: text('node\u0007a') }] })),
    malformed('name-bidi-override', 'a name with U+202E', bodyOf(BASE, [], { attributes: [{ tag: 1, value: text('node\u202ea') }] })),
    malformed('name-not-utf8', 'a name with the byte 0xff', bodyOf(BASE, [], { attributes: [{ tag: 1, value: Buffer.from('6e6fff', 'hex') }] })),
    malformed('service-trailing-byte', 'a byte after the service version', bodyOf(BASE, [], { attributes: [{ tag: 2, value: Buffer.concat([service('x', '1'), Buffer.of(0)]) }] })),
    { name: 'small-order-key', description: 'identity key 01 00..00 with node id SHA-256(key) and the signature R = 01 00..00, S = 0, which OpenSSL accepts for any message under that key', record: forgedBySmallKey, error: 'ERR_RECORD_BAD_KEY' },
    { name: 'node-id-of-another-key', description: "node id of another identity; signed by this record's key", record: signRaw(bodyOf(BASE, [], { nodeId: sha256(other.publicKey) })), error: 'ERR_RECORD_NODE_ID_MISMATCH' },
    { name: 'key-of-another-signer', description: 'signed by another identity than the one in the record', record: signRaw(bodyOf(BASE), LABEL.PEER_RECORD_SIGNATURE, OTHER_SEED), error: 'ERR_RECORD_BAD_SIGNATURE' },
    { name: 'signature-bit-flipped', description: 'the last bit of the signature flipped', record: flipped, error: 'ERR_RECORD_BAD_SIGNATURE' },
    { name: 'body-altered', description: 'seq changed after signing', record: altered, error: 'ERR_RECORD_BAD_SIGNATURE' },
    { name: 'session-record-label', description: 'signed under "mcp-e2e/2 record signature\\0" (the session records\' label)', record: signRaw(bodyOf(BASE), LABEL.RECORD_SIGNATURE), error: 'ERR_RECORD_BAD_SIGNATURE' },
    { name: 'handshake-label', description: 'signed under "mcp-e2e/2 responder signature\\0"', record: signRaw(bodyOf(BASE), LABEL.RESPONDER_SIGNATURE), error: 'ERR_RECORD_BAD_SIGNATURE' },
    { name: 'no-label', description: 'the body signed without a label', record: signRaw(bodyOf(BASE), Buffer.alloc(0)), error: 'ERR_RECORD_BAD_SIGNATURE' },
    { name: 'label-without-zero', description: 'signed under "mcp-e2e/1 peer record" without its zero byte', record: signRaw(bodyOf(BASE), LABEL.PEER_RECORD_SIGNATURE.subarray(0, -1)), error: 'ERR_RECORD_BAD_SIGNATURE' },
    { name: 'from-the-future', description: 'issued 300,001 ms after the receiver clock', record: full, now: ISSUED_AT - 300_001, error: 'ERR_RECORD_FROM_FUTURE' },
    { name: 'expired', description: 'the receiver clock is expires_at', record: full, now: ISSUED_AT + HOUR, error: 'ERR_RECORD_EXPIRED' },
    { name: 'stale', description: 'seq below the stored record', record: full, stored: record(withFields({ seq: ISSUED_AT + 1 })), error: 'ERR_RECORD_STALE' },
    { name: 'replayed', description: 'the stored record again', record: full, stored: full, error: 'ERR_RECORD_REPLAYED' },
    { name: 'equivocation', description: 'the seq of the stored record with another address', record: full, stored: record(withFields({ addresses: ['ws://192.0.2.99:8765/mcp'] })), error: 'ERR_RECORD_EQUIVOCATION' },
  ];
}

/** The classification of a record by our implementation: undefined when accepted, else the code. */
export function classify(record: Buffer, now: number, stored?: Buffer): string | undefined {
  try {
    const r = verifyPeerRecord(record, { nowMs: now });
    return compareToStored(stored ? verifyPeerRecord(stored, { nowMs: now }) : undefined, r);
  } catch (err) {
    if (err instanceof McpE2eError) return err.code;
    throw err;
  }
}

/** The vector file. Every case is checked against the implementation before it is returned. */
export function buildRecordVectors(): Record<string, unknown> {
  const id = identity(RECORD_SEED);
  const accepted = acceptedCases().map((c) => {
    const body = bodyOf(c.fields, c.extra);
    const bytes = signRaw(body);
    if (!c.extra) assert.ok(createPeerRecord(id, c.fields).bytes.equals(bytes), `${c.name}: the encoder and the raw layout agree`);
    const now = c.now ?? NOW;
    assert.equal(classify(bytes, now, c.stored), undefined, `${c.name}: accepted`);
    return {
      name: c.name,
      description: c.description,
      now,
      ...(c.stored ? { stored: hex(c.stored) } : {}),
      fields: {
        seq: c.fields.seq,
        issued_at: c.fields.issuedAtMs,
        expires_at: c.fields.expiresAtMs,
        protocol_versions: c.fields.protocolVersions,
        addresses: c.fields.addresses,
        ...(c.fields.name !== undefined ? { name: c.fields.name } : {}),
        ...(c.fields.service !== undefined ? { service: c.fields.service } : {}),
        ...(c.extra ? { unknown_attributes: c.extra.map((a) => ({ tag: a.tag, value: hex(a.value) })) } : {}),
      },
      body: hex(body),
      signature: hex(bytes.subarray(body.length)),
      record: hex(bytes),
    };
  });
  const refused = refusedCases().map((c) => {
    const now = c.now ?? NOW;
    assert.equal(classify(c.record, now, c.stored), c.error, `${c.name}: refused with ${c.error}`);
    return { name: c.name, description: c.description, now, ...(c.stored ? { stored: hex(c.stored) } : {}), record: hex(c.record), error: c.error };
  });
  return {
    description:
      'mcp-e2e peer records (PROTOCOL.md §13): accepted records with their fields, body and signature, and refused records with the code of the first rule (§13.4, §13.5) they break. Generated by test/vectors/generate-records.ts.',
    identity: { seed: hex(RECORD_SEED), public_key: hex(id.publicKey), node_id: id.nodeId },
    label: hex(LABEL.PEER_RECORD_SIGNATURE),
    accepted,
    refused,
  };
}

export const RECORD_VECTORS_FILE = fileURLToPath(new URL('../../../test/vectors/peer-records.json', import.meta.url));

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  writeFileSync(RECORD_VECTORS_FILE, JSON.stringify(buildRecordVectors(), null, 2) + '\n');
  console.log(`wrote ${join(RECORD_VECTORS_FILE)}`);
}
