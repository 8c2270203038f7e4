/**
 * Peer record vectors (PROTOCOL.md §13.9, test/vectors/peer-records.json):
 *  (b) our implementation regenerates the file exactly, decodes every accepted record to its stated
 *      fields and refuses every refused record with its stated code;
 *  (c) an independent re-derivation from PROTOCOL.md §13 with raw node:crypto only (nothing from
 *      src/ is imported for it): the body of every accepted record built from its fields, its
 *      signature, and a verifier written from §13.4-§13.5 that gives every case its verdict.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPrivateKey, createPublicKey, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import { readFileSync } from 'node:fs';

// (b) only.
import { createPeerRecord, verifyPeerRecord } from '../src/discovery/record.js';
import { NodeIdentity } from '../src/identity/identity.js';
import { buildRecordVectors, classify } from './vectors/generate-records.js';

const vectors = JSON.parse(readFileSync(new URL('../../test/vectors/peer-records.json', import.meta.url), 'utf8'));
const hx = (s: string) => Buffer.from(s, 'hex');

describe('(b) the implementation reproduces the peer record vectors', () => {
  test('regenerating the file gives the stored file exactly', () => {
    assert.deepEqual(JSON.parse(JSON.stringify(buildRecordVectors())), vectors);
  });

  test('accepted records decode to their fields; the encoder makes the same bytes', () => {
    const id = NodeIdentity.fromPrivateKey(hx(vectors.identity.seed));
    for (const c of vectors.accepted) {
      const r = verifyPeerRecord(hx(c.record), { nowMs: c.now });
      const f = c.fields;
      assert.equal(r.nodeId, vectors.identity.node_id, c.name);
      assert.deepEqual(
        [r.seq, r.issuedAtMs, r.expiresAtMs, [...r.protocolVersions], [...r.addresses], r.name, r.service],
        [f.seq, f.issued_at, f.expires_at, f.protocol_versions, f.addresses, f.name, f.service],
        c.name,
      );
      for (const a of f.unknown_attributes ?? []) assert.equal(r.attributes.get(a.tag)?.toString('hex'), a.value, c.name);
      if (!f.unknown_attributes) {
        const fields = { seq: f.seq, issuedAtMs: f.issued_at, expiresAtMs: f.expires_at, protocolVersions: f.protocol_versions, addresses: f.addresses, name: f.name, service: f.service };
        assert.equal(createPeerRecord(id, fields).toHex(), c.record, c.name);
      }
      assert.equal(classify(hx(c.record), c.now, c.stored ? hx(c.stored) : undefined), undefined, c.name);
    }
  });

  test('refused records get the code of the first rule they break', () => {
    for (const c of vectors.refused) assert.equal(classify(hx(c.record), c.now, c.stored ? hx(c.stored) : undefined), c.error, c.name);
  });
});

// ---------------------------------------------------------------------------------------------
// (c) Independent re-derivation from PROTOCOL.md §13 with raw node:crypto
// ---------------------------------------------------------------------------------------------
// Written from the spec text: the label, the layout, the grammar, the rules and their codes.

const LABEL = Buffer.from('mcp-e2e/1 peer record\0', 'ascii');
const MAX_SAFE = 2n ** 53n - 1n;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest();
const u8 = (n: number) => Buffer.of(n);
const u16 = (n: number) => { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b; };
const u64 = (n: number) => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b; };
const edPriv = (seed: Buffer) => createPrivateKey({ key: Buffer.concat([hx('302e020100300506032b657004220420'), seed]), format: 'der', type: 'pkcs8' });
const rawPub = (seed: Buffer) => Buffer.from(createPublicKey(edPriv(seed)).export({ format: 'jwk' }).x as string, 'base64url');
const SMALL_ORDER = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
];

/** §13.2: the body from the fields. */
function specBody(publicKey: Buffer, f: any): Buffer {
  const text = (s: string) => Buffer.from(s, 'utf8');
  const attrs: Array<[number, Buffer]> = [];
  if (f.name !== undefined) attrs.push([1, text(f.name)]);
  if (f.service !== undefined) {
    const n = text(f.service.name);
    const v = text(f.service.version);
    attrs.push([2, Buffer.concat([u8(n.length), n, u8(v.length), v])]);
  }
  for (const a of f.unknown_attributes ?? []) attrs.push([a.tag, hx(a.value)]);
  attrs.sort((a, b) => a[0] - b[0]);
  return Buffer.concat([
    u8(1),
    publicKey,
    sha256(publicKey),
    u64(f.seq),
    u64(f.issued_at),
    u64(f.expires_at),
    u8(f.protocol_versions.length),
    ...f.protocol_versions.map(u16),
    u8(f.addresses.length),
    ...f.addresses.flatMap((a: string) => [u8(a.length), Buffer.from(a, 'ascii')]),
    ...attrs.flatMap(([tag, value]) => [u8(tag), u16(value.length), value]),
  ]);
}

/** §13.2.1, written out as character checks rather than one expression. */
function specAddress(a: string): boolean {
  const m = /^(ws|wss):\/\/(.*)$/.exec(a);
  if (!m) return false;
  let rest = m[2]!;
  let host: string;
  if (rest.startsWith('[')) {
    const end = rest.indexOf(']');
    if (end < 0) return false;
    host = rest.slice(1, end);
    if (host.length < 2 || host.length > 45 || ![...host].every((c) => '0123456789abcdef:.'.includes(c))) return false;
    rest = rest.slice(end + 1);
  } else {
    const end = rest.search(/[:/]|$/);
    host = rest.slice(0, end);
    if (host.length < 1 || host.length > 253 || ![...host].every((c) => 'abcdefghijklmnopqrstuvwxyz0123456789-.'.includes(c))) return false;
    rest = rest.slice(end);
  }
  if (rest.startsWith(':')) {
    const end = rest.indexOf('/') < 0 ? rest.length : rest.indexOf('/');
    const port = rest.slice(1, end);
    if (!/^[1-9][0-9]{0,4}$/.test(port) || Number(port) > 65535) return false;
    rest = rest.slice(end);
  }
  if (rest === '') return true;
  if (!rest.startsWith('/')) return false;
  for (let i = 0; i < rest.length; i++) {
    const c = rest[i]!;
    if (c === '%') {
      if (!/^[0-9A-Fa-f]{2}$/.test(rest.slice(i + 1, i + 3))) return false;
      i += 2;
    } else if (!/[A-Za-z0-9\-._~!$&'()*+,;=:@/]/.test(c)) return false;
  }
  return true;
}

/** §13.2.2 text: well-formed UTF-8 without the listed code points. */
function specText(b: Buffer): boolean {
  let s: string;
  try {
    s = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(b);
  } catch {
    return false;
  }
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (cp <= 0x1f || (cp >= 0x7f && cp <= 0x9f) || cp === 0x61c || cp === 0x200e || cp === 0x200f) return false;
    if ((cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp === 0x2028 || cp === 0x2029 || cp === 0xfeff) return false;
  }
  return true;
}

interface SpecRecord { key: Buffer; nodeId: Buffer; seq: bigint; issued: bigint; expires: bigint; body: Buffer; sig: Buffer; bytes: Buffer }

/** Rules 1 and 2 of §13.4. Returns the code or the decoded fields. */
function specDecode(bytes: Buffer): string | SpecRecord {
  if (bytes.length > 2048) return 'ERR_RECORD_TOO_LARGE';
  const M = 'ERR_RECORD_MALFORMED';
  if (bytes.length < 157) return M;
  const body = bytes.subarray(0, bytes.length - 64);
  let o = 0;
  const take = (n: number): Buffer | undefined => (o + n > body.length ? undefined : body.subarray(o, (o += n)));
  const f = take(1);
  if (!f || f[0] !== 1) return M;
  const key = take(32)!;
  const nodeId = take(32)!;
  const seq = take(8)!.readBigUInt64BE();
  const issued = take(8)!.readBigUInt64BE();
  const expires = take(8)!.readBigUInt64BE();
  if (seq > MAX_SAFE || issued > MAX_SAFE || expires > MAX_SAFE) return M;
  if (expires <= issued || expires - issued > 86_400_000n) return M;
  const n = take(1)?.[0];
  if (n === undefined || n < 1 || n > 8) return M;
  let prev = 0;
  for (let i = 0; i < n; i++) {
    const v = take(2)?.readUInt16BE();
    if (v === undefined || v <= prev) return M;
    prev = v;
  }
  const m = take(1)?.[0];
  if (m === undefined || m > 8) return M;
  const seen = new Set<string>();
  for (let i = 0; i < m; i++) {
    const len = take(1)?.[0];
    if (!len) return M;
    const a = take(len);
    if (!a) return M;
    const s = a.toString('latin1');
    if (!specAddress(s) || seen.has(s)) return M;
    seen.add(s);
  }
  let lastTag = 0;
  while (o < body.length) {
    const tag = take(1)![0]!;
    if (tag <= lastTag) return M;
    lastTag = tag;
    const len = take(2)?.readUInt16BE();
    if (len === undefined) return M;
    const v = take(len);
    if (!v) return M;
    if (tag === 1 && (v.length < 1 || v.length > 64 || !specText(v))) return M;
    if (tag === 2) {
      const a = v[0];
      if (a === undefined || a < 1 || a > 64 || v.length < 2 + a) return M;
      const b = v[1 + a]!;
      if (b > 32 || v.length !== 2 + a + b || !specText(v.subarray(1, 1 + a)) || !specText(v.subarray(2 + a))) return M;
    }
  }
  return { key, nodeId, seq, issued, expires, body, sig: bytes.subarray(bytes.length - 64), bytes };
}

/** Rules 1-7 of §13.4 and rule 8 of §13.5: undefined when accepted, else the code. */
function specVerdict(bytes: Buffer, now: number, stored?: Buffer): string | undefined {
  const r = specDecode(bytes);
  if (typeof r === 'string') return r;
  const masked = Buffer.from(r.key);
  masked[31]! &= 0x7f;
  if (SMALL_ORDER.includes(masked.toString('hex'))) return 'ERR_RECORD_BAD_KEY';
  let pub;
  try {
    pub = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: r.key.toString('base64url') }, format: 'jwk' });
  } catch {
    return 'ERR_RECORD_BAD_KEY';
  }
  if (!sha256(r.key).equals(r.nodeId)) return 'ERR_RECORD_NODE_ID_MISMATCH';
  if (!nodeVerify(null, Buffer.concat([LABEL, r.body]), pub, r.sig)) return 'ERR_RECORD_BAD_SIGNATURE';
  if (r.issued > BigInt(now) + 300_000n) return 'ERR_RECORD_FROM_FUTURE';
  if (r.expires <= BigInt(now)) return 'ERR_RECORD_EXPIRED';
  if (!stored) return undefined;
  const s = specDecode(stored) as SpecRecord;
  if (r.seq < s.seq) return 'ERR_RECORD_STALE';
  if (r.seq === s.seq) return r.bytes.equals(s.bytes) ? 'ERR_RECORD_REPLAYED' : 'ERR_RECORD_EQUIVOCATION';
  return undefined;
}

describe('(c) independent re-derivation from PROTOCOL.md §13 with node:crypto only', () => {
  test('§13.3 label and §2 identity of the vectors', () => {
    assert.equal(vectors.label, LABEL.toString('hex'));
    assert.equal(LABEL.length, 22);
    const pub = rawPub(hx(vectors.identity.seed));
    assert.equal(pub.toString('hex'), vectors.identity.public_key);
    assert.equal(sha256(pub).toString('hex'), vectors.identity.node_id);
  });

  test('§13.2-§13.3: every accepted record is its fields in the canonical layout, signed under the label', () => {
    const seed = hx(vectors.identity.seed);
    for (const c of vectors.accepted) {
      const body = specBody(rawPub(seed), c.fields);
      assert.equal(body.toString('hex'), c.body, c.name);
      const sig = nodeSign(null, Buffer.concat([LABEL, body]), edPriv(seed));
      assert.equal(sig.toString('hex'), c.signature, c.name);
      assert.equal(Buffer.concat([body, sig]).toString('hex'), c.record, c.name);
    }
    const minimal = vectors.accepted.find((c: any) => c.name === 'minimal');
    assert.equal(minimal.record.length / 2, 157, '§13.4: the smallest record is 157 bytes');
  });

  test('§13.4-§13.5: a verifier written from the spec accepts every accepted record', () => {
    for (const c of vectors.accepted) assert.equal(specVerdict(hx(c.record), c.now, c.stored ? hx(c.stored) : undefined), undefined, c.name);
  });

  test('§13.4-§13.5: the verifier refuses every refused record with its code', () => {
    const codes = new Set<string>();
    for (const c of vectors.refused) {
      assert.equal(specVerdict(hx(c.record), c.now, c.stored ? hx(c.stored) : undefined), c.error, c.name);
      codes.add(c.error);
    }
    // Every rule has at least one case.
    for (const code of ['ERR_RECORD_TOO_LARGE', 'ERR_RECORD_MALFORMED', 'ERR_RECORD_BAD_KEY', 'ERR_RECORD_NODE_ID_MISMATCH', 'ERR_RECORD_BAD_SIGNATURE', 'ERR_RECORD_FROM_FUTURE', 'ERR_RECORD_EXPIRED', 'ERR_RECORD_STALE', 'ERR_RECORD_REPLAYED', 'ERR_RECORD_EQUIVOCATION']) {
      assert.ok(codes.has(code), code);
    }
  });

  test('the small-order vector would verify without rule 3 where OpenSSL accepts its signature (OpenSSL 3.0)', (t) => {
    const c = vectors.refused.find((x: any) => x.name === 'small-order-key');
    const r = specDecode(hx(c.record)) as SpecRecord;
    const pub = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: r.key.toString('base64url') }, format: 'jwk' });
    if (!nodeVerify(null, Buffer.concat([LABEL, r.body]), pub, r.sig)) {
      t.skip(`OpenSSL ${process.versions.openssl} refuses this signature itself; rule 3 refuses the record first either way`);
      return;
    }
    assert.equal(specVerdict(hx(c.record), c.now), 'ERR_RECORD_BAD_KEY', 'rule 3 is what refuses it');
  });
});
