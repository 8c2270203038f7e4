/**
 * Peer records (src/discovery/record.ts): label separation both ways, the
 * encoder refusing what receivers would refuse, hex transport, and fuzzing:
 * random and mutated records only ever raise a stable record code, and a
 * changed byte is never accepted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { McpE2eError } from '../../src/errors.js';
import { NodeIdentity } from '../../src/identity/identity.js';
import { ed25519Verify, importEd25519PublicKey } from '../../src/crypto/primitives.js';
import { LABEL } from '../../src/protocol.js';
import {
  compareToStored,
  createPeerRecord,
  decodePeerRecord,
  isRecordAddress,
  MAX_PEER_RECORD_BYTES,
  recordBytesFromHex,
  verifyPeerRecord,
  type PeerRecordFields,
} from '../../src/discovery/record.js';
import { throwsCode } from '../helpers/pair.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 2000);
const SEED = Number(process.env.FUZZ_SEED ?? 20261126);
const NOW = 1_800_000_000_000;
const identity = NodeIdentity.fromPrivateKey(Buffer.alloc(32, 7));
const fields = (over: Partial<PeerRecordFields> = {}): PeerRecordFields => ({
  seq: NOW,
  issuedAtMs: NOW,
  expiresAtMs: NOW + 3_600_000,
  addresses: ['ws://127.0.0.1:8765', 'wss://a.example/mcp'],
  protocolVersions: [1],
  name: 'a',
  ...over,
});

test('a record signature never verifies under another label, and no other label signature verifies as a record', () => {
  const r = createPeerRecord(identity, fields());
  for (const label of [LABEL.RECORD_SIGNATURE, LABEL.RESPONDER_SIGNATURE, LABEL.INITIATOR_SIGNATURE]) {
    assert.ok(!ed25519Verify(importEd25519PublicKey(identity.publicKey), Buffer.concat([label, r.body]), r.signature));
    const forged = Buffer.concat([r.body, identity.sign(label, r.body)]);
    throwsCode(() => verifyPeerRecord(forged, { nowMs: NOW }), 'ERR_RECORD_BAD_SIGNATURE');
  }
  assert.ok(ed25519Verify(importEd25519PublicKey(identity.publicKey), Buffer.concat([LABEL.PEER_RECORD_SIGNATURE, r.body]), r.signature));
});

test('the encoder refuses, as a caller mistake, what a receiver would refuse', () => {
  const bad: Array<Partial<PeerRecordFields>> = [
    { addresses: ['http://x'] },
    { addresses: ['ws://X'] },
    { addresses: ['ws://a', 'ws://a'] },
    { addresses: Array.from({ length: 9 }, (_, i) => `ws://h${i}`) },
    { protocolVersions: [] },
    { protocolVersions: [2, 1] },
    { expiresAtMs: NOW },
    { expiresAtMs: NOW + 86_400_001 },
    { seq: -1 },
    { seq: 2 ** 53 },
    { name: '' },
    { name: 'x'.repeat(65) },
    { name: 'a\nb' },
    { name: 'a\u202eb' },
    { service: { name: '', version: '1' } },
  ];
  for (const over of bad) assert.throws(() => createPeerRecord(identity, fields(over)), RangeError, JSON.stringify(over));
  // Eight addresses of 255 bytes fit the grammar but not the 2048-byte cap.
  const long = Array.from({ length: 8 }, (_, i) => `ws://h${i}.example/${'p'.repeat(255 - 17)}`);
  assert.ok(long.every(isRecordAddress));
  assert.throws(() => createPeerRecord(identity, fields({ addresses: long })), /more than 2048/);
});

test('hex transport: the length is checked before decoding; bad hex is malformed', () => {
  const r = createPeerRecord(identity, fields());
  assert.ok(recordBytesFromHex(r.toHex()).equals(r.bytes));
  throwsCode(() => recordBytesFromHex('0'.repeat(2 * MAX_PEER_RECORD_BYTES + 2)), 'ERR_RECORD_TOO_LARGE');
  throwsCode(() => recordBytesFromHex(r.toHex().toUpperCase()), 'ERR_RECORD_MALFORMED');
  throwsCode(() => recordBytesFromHex(r.toHex().slice(1)), 'ERR_RECORD_MALFORMED');
  throwsCode(() => recordBytesFromHex(42), 'ERR_RECORD_MALFORMED');
});

test('decodePeerRecord copies its input (a registry keeps records; the caller may reuse its buffer)', () => {
  const r = createPeerRecord(identity, fields());
  const buf = Buffer.from(r.bytes);
  const d = decodePeerRecord(buf);
  buf.fill(0);
  assert.ok(d.bytes.equals(r.bytes));
});

test('compareToStored: higher seq replaces; lower is stale; same bytes replayed; same seq other bytes equivocation', () => {
  const a = createPeerRecord(identity, fields());
  const b = createPeerRecord(identity, fields({ seq: NOW + 1 }));
  const c = createPeerRecord(identity, fields({ addresses: ['ws://127.0.0.2:1'] }));
  assert.equal(compareToStored(undefined, a), undefined);
  assert.equal(compareToStored(a, b), undefined);
  assert.equal(compareToStored(b, a), 'ERR_RECORD_STALE');
  assert.equal(compareToStored(a, a), 'ERR_RECORD_REPLAYED');
  assert.equal(compareToStored(a, c), 'ERR_RECORD_EQUIVOCATION');
});

const recordCode = (e: unknown) => e instanceof McpE2eError && /^ERR_RECORD_/.test(e.code);

test('fuzz: random bytes are refused with a record code, never another exception', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 2100 }), (bytes) => {
      assert.throws(() => verifyPeerRecord(bytes, { nowMs: NOW }), recordCode);
    }),
    { numRuns: RUNS, seed: SEED },
  );
});

test('fuzz: a valid record with any byte changed, cut or extended is never accepted', () => {
  const r = createPeerRecord(identity, fields({ service: { name: 'srv', version: '1.0' } })).bytes;
  fc.assert(
    fc.property(
      fc.oneof(
        fc.tuple(fc.nat(r.length - 1), fc.integer({ min: 1, max: 255 })).map(([i, x]) => {
          const b = Buffer.from(r);
          b[i]! ^= x;
          return b;
        }),
        fc.nat(r.length - 1).map((n) => r.subarray(0, n)),
        fc.uint8Array({ minLength: 1, maxLength: 40 }).map((tail) => Buffer.concat([r, tail])),
      ),
      (bytes) => {
        assert.throws(() => verifyPeerRecord(bytes, { nowMs: NOW }), recordCode);
      },
    ),
    { numRuns: RUNS, seed: SEED },
  );
});
