import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, statSync, chmodSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { createHash, createPublicKey, verify } from 'node:crypto';
import { NodeIdentity, nodeIdFromPublicKey, fingerprintOf, isNodeId } from '../../src/identity/identity.js';
import { throwsCode } from '../helpers/pair.js';
import { LABEL, SIGNATURE_LABELS } from '../../src/protocol.js';

const dir = () => mkdtempSync(join(tmpdir(), 'mcp-e2e-id-'));

test('node id is SHA-256 of the raw public key; fingerprint is its first 80 bits', () => {
  const id = NodeIdentity.generate();
  assert.equal(id.publicKey.length, 32);
  assert.equal(id.nodeId, createHash('sha256').update(id.publicKey).digest('hex'));
  assert.equal(nodeIdFromPublicKey(id.publicKey), id.nodeId);
  assert.ok(isNodeId(id.nodeId));
  assert.equal(id.fingerprint, fingerprintOf(id.nodeId));
  assert.match(id.fingerprint, /^[0-9a-f]{4}(-[0-9a-f]{4}){4}$/);
  assert.equal(id.fingerprint.replaceAll('-', ''), id.nodeId.slice(0, 20));
});

test('two generated identities differ', () => {
  assert.notEqual(NodeIdentity.generate().nodeId, NodeIdentity.generate().nodeId);
});

test('signatures are over a reserved label and the message, and verify under the public key', () => {
  const id = NodeIdentity.generate();
  const msg = Buffer.from('hello');
  const sig = id.sign(LABEL.PEER_RECORD_SIGNATURE, msg);
  assert.equal(sig.length, 64);
  // Checked with OpenSSL directly, whichever provider signed.
  const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: id.publicKey.toString('base64url') }, format: 'jwk' });
  assert.ok(verify(null, Buffer.concat([LABEL.PEER_RECORD_SIGNATURE, msg]), key, sig));
  assert.ok(!verify(null, msg, key, sig), 'the label is part of the signed bytes');
  assert.ok(!verify(null, Buffer.concat([LABEL.RECORD_SIGNATURE, msg]), key, sig), 'another label does not verify');
});

test('raw signing is not offered: a label outside SIGNATURE_LABELS is refused', () => {
  const id = NodeIdentity.generate();
  // 62 attacker-chosen bytes that look like a handshake signature input must not be signable raw.
  const forgedInput = Buffer.concat([LABEL.INITIATOR_SIGNATURE, Buffer.alloc(32, 7)]);
  assert.throws(() => id.sign(Buffer.alloc(0), forgedInput), TypeError);
  assert.throws(() => id.sign(Buffer.from('mcp-e2e/2 initiator signature'), Buffer.alloc(33)), TypeError, 'a label without its terminator is not a label');
  assert.throws(() => id.sign(Buffer.from('application'), Buffer.from('x')), TypeError);
  for (const label of SIGNATURE_LABELS) assert.equal(id.sign(label, Buffer.from('x')).length, 64);
});

test('fromPrivateKey is deterministic (RFC 8032 test 1 key)', () => {
  const seed = Buffer.from('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60', 'hex');
  const id = NodeIdentity.fromPrivateKey(seed);
  assert.equal(id.publicKey.toString('hex'), 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a');
  assert.throws(() => NodeIdentity.fromPrivateKey(Buffer.alloc(31)), RangeError);
});

test('save then load round-trips, file has mode 0600, no temp file left', () => {
  const d = dir();
  const path = join(d, 'sub', 'identity.json');
  const id = NodeIdentity.generate();
  id.save(path);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.equal(statSync(join(d, 'sub')).mode & 0o777, 0o700);
  assert.deepEqual(readdirSync(join(d, 'sub')), ['identity.json']);
  const loaded = NodeIdentity.load(path);
  assert.equal(loaded.nodeId, id.nodeId);
  assert.ok(loaded.publicKey.equals(id.publicKey));
  // The loaded key signs like the original (Ed25519 is deterministic).
  assert.ok(loaded.sign(LABEL.RECORD_SIGNATURE, Buffer.from('x')).equals(id.sign(LABEL.RECORD_SIGNATURE, Buffer.from('x'))));
});

test('save refuses to overwrite unless asked', () => {
  const path = join(dir(), 'id.json');
  NodeIdentity.generate().save(path);
  throwsCode(() => NodeIdentity.generate().save(path), 'ERR_KEY_FILE_EXISTS');
  const second = NodeIdentity.generate();
  second.save(path, { overwrite: true });
  assert.equal(NodeIdentity.load(path).nodeId, second.nodeId);
});

test('load refuses a key file readable by group or others, and says how to fix it', { skip: process.platform === 'win32' }, () => {
  const path = join(dir(), 'id.json');
  NodeIdentity.generate().save(path);
  for (const mode of [0o640, 0o604, 0o644, 0o660]) {
    chmodSync(path, mode);
    const err = throwsCode(() => NodeIdentity.load(path), 'ERR_KEY_FILE_PERMISSIONS');
    assert.match(err.message, /chmod 600/);
    assert.match(err.message, new RegExp(mode.toString(8)));
  }
  chmodSync(path, 0o400);
  assert.ok(NodeIdentity.load(path));
});

test('load: missing, truncated, corrupt and mismatched files are clear errors', () => {
  const d = dir();
  throwsCode(() => NodeIdentity.load(join(d, 'nope.json')), 'ERR_KEY_FILE_NOT_FOUND');
  const good = join(d, 'good.json');
  NodeIdentity.generate().save(good);
  const text = readFileSync(good, 'utf8');
  const write = (name: string, content: string) => {
    const p = join(d, name);
    writeFileSync(p, content, { mode: 0o600 });
    return p;
  };
  throwsCode(() => NodeIdentity.load(write('trunc.json', text.slice(0, text.length / 2))), 'ERR_KEY_FILE_CORRUPT');
  throwsCode(() => NodeIdentity.load(write('empty.json', '')), 'ERR_KEY_FILE_CORRUPT');
  const doc = JSON.parse(text);
  throwsCode(() => NodeIdentity.load(write('extra.json', JSON.stringify({ ...doc, x: 1 }))), 'ERR_KEY_FILE_CORRUPT');
  throwsCode(() => NodeIdentity.load(write('type.json', JSON.stringify({ ...doc, type: 'other' }))), 'ERR_KEY_FILE_CORRUPT');
  throwsCode(() => NodeIdentity.load(write('ver.json', JSON.stringify({ ...doc, version: 2 }))), 'ERR_KEY_FILE_CORRUPT');
  throwsCode(() => NodeIdentity.load(write('shortkey.json', JSON.stringify({ ...doc, private_key: doc.private_key.slice(2) }))), 'ERR_KEY_FILE_CORRUPT');
  const other = NodeIdentity.generate();
  throwsCode(() => NodeIdentity.load(write('pub.json', JSON.stringify({ ...doc, public_key: other.publicKey.toString('hex') }))), 'ERR_KEY_FILE_CORRUPT');
  throwsCode(() => NodeIdentity.load(write('nid.json', JSON.stringify({ ...doc, node_id: other.nodeId }))), 'ERR_KEY_FILE_CORRUPT');
  throwsCode(() => NodeIdentity.load(write('big.json', ' '.repeat(5000))), 'ERR_KEY_FILE_CORRUPT');
  throwsCode(() => NodeIdentity.load(d), 'ERR_KEY_FILE_CORRUPT');
});

test('the private key never shows in inspect, JSON or toString', () => {
  const path = join(dir(), 'id.json');
  const id = NodeIdentity.generate();
  id.save(path);
  const secret = JSON.parse(readFileSync(path, 'utf8')).private_key as string;
  for (const text of [inspect(id, { depth: 10, showHidden: true }), JSON.stringify(id), String(id), `${id.toJSON().public_key}`]) {
    assert.ok(!text.includes(secret), 'private key leaked');
    assert.ok(!text.includes(Buffer.from(secret, 'hex').toString('base64url')), 'private key leaked (base64url)');
  }
  assert.deepEqual(Object.keys(id.toJSON()).sort(), ['fingerprint', 'node_id', 'public_key']);
});
