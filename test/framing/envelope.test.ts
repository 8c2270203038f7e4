import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeBinaryFrame,
  decodeJsonEnvelope,
  encodeBinaryFrame,
  encodeJsonEnvelope,
  maxFrameBytes,
  nonceOf,
} from '../../src/framing/envelope.js';
import { throwsCode } from '../helpers/pair.js';

const sealed = Buffer.from('00112233445566778899aabbccddeeff0102030405', 'hex'); // 21 bytes: an entry header and the tag, the smallest possible
const sig = Buffer.alloc(64, 0x5a);
const sender = 'ab'.repeat(32);

test('nonce: four zero bytes then the counter as u64 big-endian', () => {
  assert.equal(nonceOf(0).toString('hex'), '000000000000000000000000');
  assert.equal(nonceOf(1).toString('hex'), '000000000000000000000001');
  assert.equal(nonceOf(2 ** 32).toString('hex'), '000000000000000100000000');
  assert.equal(nonceOf(Number.MAX_SAFE_INTEGER).toString('hex'), '00000000001fffffffffffff');
});

test('binary frame layout is exact', () => {
  const f = encodeBinaryFrame({ epoch: 0x01020304, counter: 2 ** 32 + 5, sealed, signature: sig });
  assert.equal(f.subarray(0, 14).toString('hex'), '0101' + '01020304' + '0000000100000005');
  assert.ok(f.subarray(14, 78).equals(sig));
  assert.ok(f.subarray(78).equals(sealed));
  const d = decodeBinaryFrame(f, 1000);
  assert.deepEqual([d.epoch, d.counter], [0x01020304, 2 ** 32 + 5]);
  assert.ok(d.signature!.equals(sig) && d.sealed.equals(sealed));
  const u = encodeBinaryFrame({ epoch: 0, counter: 0, sealed });
  assert.equal(u.subarray(0, 14).toString('hex'), '0100' + '00000000' + '0000000000000000');
  assert.equal(decodeBinaryFrame(u, 1000).signature, undefined);
});

test('binary frame decoding refuses bad type, reserved flags, short and oversize frames', () => {
  const f = encodeBinaryFrame({ epoch: 0, counter: 0, sealed, signature: sig });
  const edit = (i: number, v: number) => {
    const b = Buffer.from(f);
    b[i] = v;
    return b;
  };
  throwsCode(() => decodeBinaryFrame(edit(0, 2), 1000), 'ERR_FRAME_MALFORMED');
  throwsCode(() => decodeBinaryFrame(edit(1, 3), 1000), 'ERR_FRAME_MALFORMED');
  throwsCode(() => decodeBinaryFrame(edit(6, 0xff), 1000), 'ERR_FRAME_MALFORMED'); // counter beyond 2^53-1
  throwsCode(() => decodeBinaryFrame(f.subarray(0, 14 + 64 + 20), 1000), 'ERR_FRAME_MALFORMED');
  throwsCode(() => decodeBinaryFrame(Buffer.alloc(5), 1000), 'ERR_FRAME_MALFORMED');
  throwsCode(() => decodeBinaryFrame(f, f.length - 1), 'ERR_FRAME_TOO_LARGE');
});

test('JSON envelope is the seed\'s shape and decodes strictly', () => {
  const t = encodeJsonEnvelope({ epoch: 3, counter: 9, sealed, signature: sig, sender });
  assert.deepEqual(Object.keys(JSON.parse(t)), ['type', 'epoch', 'nonce', 'ciphertext', 'signature', 'sender']);
  const d = decodeJsonEnvelope(t, 10_000);
  assert.deepEqual([d.epoch, d.counter, d.sender], [3, 9, sender]);
  assert.ok(d.sealed.equals(sealed) && d.signature!.equals(sig));
  const doc = JSON.parse(t);
  const bad = (change: Record<string, unknown>) => () => decodeJsonEnvelope(JSON.stringify({ ...doc, ...change }), 10_000);
  throwsCode(bad({ type: 'key_exchange' }), 'ERR_FRAME_MALFORMED');
  throwsCode(bad({ epoch: -1 }), 'ERR_FRAME_MALFORMED');
  throwsCode(bad({ epoch: 1.5 }), 'ERR_FRAME_MALFORMED');
  throwsCode(bad({ epoch: '3' }), 'ERR_FRAME_MALFORMED');
  throwsCode(bad({ epoch: 2 ** 32 }), 'ERR_FRAME_MALFORMED');
  throwsCode(bad({ nonce: doc.nonce.slice(2) }), 'ERR_FRAME_MALFORMED');
  throwsCode(bad({ ciphertext: doc.ciphertext.toUpperCase() }), 'ERR_FRAME_MALFORMED');
  throwsCode(bad({ ciphertext: doc.ciphertext + '0' }), 'ERR_FRAME_MALFORMED');
  throwsCode(bad({ ciphertext: 'abcd' }), 'ERR_FRAME_MALFORMED');
  throwsCode(bad({ ciphertext: 12 }), 'ERR_FRAME_MALFORMED');
  throwsCode(bad({ signature: 'ab' }), 'ERR_FRAME_MALFORMED');
  throwsCode(bad({ sender: 'me' }), 'ERR_FRAME_MALFORMED');
  throwsCode(() => decodeJsonEnvelope('[1,2]', 10_000), 'ERR_FRAME_MALFORMED');
  throwsCode(() => decodeJsonEnvelope('{"type":', 10_000), 'ERR_FRAME_MALFORMED');
  throwsCode(() => decodeJsonEnvelope(t, t.length - 1), 'ERR_FRAME_TOO_LARGE');
});

test('maxFrameBytes is exactly the largest legal record in each framing: one message of the limit, or one control message of 64 KiB', () => {
  for (const max of [1000, 200_000]) {
    // One entry of the larger of `max` bytes and a 64 KiB control message (a record of several entries holds at most 64 KiB, less).
    const plain = 5 + Math.max(max, 64 * 1024);
    const big = Buffer.alloc(plain + 16);
    const b = encodeBinaryFrame({ epoch: 2 ** 32 - 1, counter: Number.MAX_SAFE_INTEGER, sealed: big, signature: sig });
    assert.equal(b.length, maxFrameBytes('binary', max));
    const j = encodeJsonEnvelope({ epoch: 2 ** 32 - 1, counter: Number.MAX_SAFE_INTEGER, sealed: big, signature: sig, sender });
    assert.equal(j.length, maxFrameBytes('json', max));
  }
});

test('JSON envelope: only the canonical form decodes (member order, whitespace, number syntax, escapes)', () => {
  const t = encodeJsonEnvelope({ epoch: 10, counter: 9, sealed, sender });
  const d = JSON.parse(t);
  assert.equal(t, JSON.stringify(d), 'the canonical form is what JSON.stringify writes for the members in order');
  for (const variant of [
    JSON.stringify(d, null, 2),
    t.replace('"epoch":10', '"epoch":10.0'),
    t.replace('"epoch":10', '"epoch":1e1'),
    t.replace('"epoch":10', '"epoch":010'),
    t.replace('"type":"encrypted"', '"type":"encrypt\\u0065d"'),
    JSON.stringify({ epoch: d.epoch, type: d.type, nonce: d.nonce, ciphertext: d.ciphertext, sender: d.sender }),
    t.replace('{"type":"encrypted",', '{"type":"encrypted","type":"encrypted",'),
    t + ' ',
  ]) {
    throwsCode(() => decodeJsonEnvelope(variant, 10_000), 'ERR_FRAME_MALFORMED');
  }
});
