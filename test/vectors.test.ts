/**
 * Test vectors (test/vectors/README.md):
 *  (a) the published RFC 7748, RFC 8032 and RFC 5869 vectors against src/crypto/primitives.ts;
 *  (b) our implementation reproduces every golden vector exactly, and accepts or refuses the stored
 *      records and handshake messages with the stored codes;
 *  (c) an independent re-derivation of every golden vector from PROTOCOL.md with raw node:crypto only
 *      (nothing from src/ is imported for it): handshake, records, a receiver and a handshake checker
 *      written from §4.3 and §6.6, the Ed25519 acceptance rule (§1.3) and the JSON-RPC rules (§6.7).
 *      This is what shows that the spec and the code agree.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  hkdfSync,
  sign as nodeSign,
  verify as nodeVerify,
  type KeyObject,
} from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// (a) and (b) only.
import * as prim from '../src/crypto/primitives.js';
import { McpE2eError } from '../src/errors.js';
import { NodeIdentity } from '../src/identity/identity.js';
import { Handshake } from '../src/handshake/handshake.js';
import { Session } from '../src/session/session.js';
import { buildAll, CASES, configsOf, INPUTS, REKEY_AFTER_RECORDS } from './vectors/generate.js';

const readVector = (name: string): any => JSON.parse(readFileSync(new URL(`../../test/vectors/${name}`, import.meta.url), 'utf8'));
const hx = (s: string) => Buffer.from(s, 'hex');
const CASE_FILES = CASES.map((c) => `v2-${c.name}.json`);

// ---------------------------------------------------------------------------------------------
// (a) RFC vectors against src/crypto/primitives.ts
// ---------------------------------------------------------------------------------------------

describe('(a) RFC vectors against src/crypto/primitives.ts', () => {
  const rfc = readVector('rfc.json');

  test('X25519: RFC 7748 §5.2 function vectors', () => {
    for (const t of rfc.x25519.function) {
      const out = prim.x25519(prim.x25519FromPrivate(hx(t.scalar)), hx(t.u));
      assert.equal(out.toString('hex'), t.output, t.name);
    }
  });

  test('X25519: RFC 7748 §5.2 iterated, 1 and 1,000 iterations', () => {
    let k: Buffer = hx(rfc.x25519.iterated.start);
    let u: Buffer = hx(rfc.x25519.iterated.start);
    for (let i = 1; i <= 1000; i++) {
      const next = prim.x25519(prim.x25519FromPrivate(k), u);
      u = k;
      k = next;
      const expected = rfc.x25519.iterated.after[String(i)];
      if (expected) assert.equal(k.toString('hex'), expected, `after ${i}`);
    }
  });

  test('X25519: RFC 7748 §6.1 Diffie-Hellman', () => {
    const d = rfc.x25519.diffie_hellman;
    const a = prim.x25519FromPrivate(hx(d.alice_private));
    const b = prim.x25519FromPrivate(hx(d.bob_private));
    assert.equal(a.publicKey.toString('hex'), d.alice_public);
    assert.equal(b.publicKey.toString('hex'), d.bob_public);
    assert.equal(prim.x25519(a, hx(d.bob_public)).toString('hex'), d.shared);
    assert.equal(prim.x25519(b, hx(d.alice_public)).toString('hex'), d.shared);
  });

  test('X25519: low-order u-coordinates are refused (ERR_HANDSHAKE_LOW_ORDER_KEY)', () => {
    const k = prim.x25519FromPrivate(hx(rfc.x25519.diffie_hellman.alice_private));
    for (const u of rfc.x25519.low_order.u) {
      assert.throws(() => prim.x25519(k, hx(u)), (e: unknown) => e instanceof McpE2eError && e.code === 'ERR_HANDSHAKE_LOW_ORDER_KEY', u);
    }
  });

  test('Ed25519: RFC 8032 §7.1 tests 1-3 (public key, signature, verification)', () => {
    for (const t of rfc.ed25519.tests) {
      const sk = prim.ed25519FromSeed(hx(t.secret_key));
      assert.equal(sk.publicKey.toString('hex'), t.public_key, t.name);
      assert.equal(sk.sign(hx(t.message)).toString('hex'), t.signature, t.name);
      const pk = prim.importEd25519PublicKey(hx(t.public_key));
      assert.ok(prim.ed25519Verify(pk, hx(t.message), hx(t.signature)), t.name);
      const bad = hx(t.signature);
      bad[0]! ^= 1;
      assert.ok(!prim.ed25519Verify(pk, hx(t.message), bad), t.name);
    }
  });

  test('Ed25519: small-order public keys are refused, with either sign bit (ERR_HANDSHAKE_BAD_KEY)', () => {
    for (const k of rfc.ed25519.small_order.public_keys) {
      for (const key of [hx(k), (() => { const x = hx(k); x[31]! |= 0x80; return x; })()]) {
        assert.ok(prim.isSmallOrderEd25519(key));
        assert.throws(() => prim.importEd25519PublicKey(key), (e: unknown) => e instanceof McpE2eError && e.code === 'ERR_HANDSHAKE_BAD_KEY');
      }
    }
  });

  test('HKDF-SHA256: RFC 5869 test cases 1-3 (PRK and OKM)', () => {
    for (const t of rfc.hkdf_sha256.tests) {
      assert.equal(prim.hkdfSha256(hx(t.ikm), hx(t.salt), hx(t.info), t.length).toString('hex'), t.okm, t.name);
      assert.equal(prim.hmacSha256(hx(t.salt), hx(t.ikm)).toString('hex'), t.prk, t.name);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// (b) Our implementation reproduces the golden vectors
// ---------------------------------------------------------------------------------------------

const isCode = (code: string) => (e: unknown) => e instanceof McpE2eError && e.code === code;

describe('(b) the implementation reproduces the golden vectors', () => {
  test('regenerating every vector file gives the stored files exactly', () => {
    const fresh = buildAll();
    assert.ok(Object.keys(fresh).length >= 7, `built ${Object.keys(fresh).join(', ')}`);
    for (const [name, doc] of Object.entries(fresh)) {
      assert.deepEqual(JSON.parse(JSON.stringify(doc)), readVector(name), name);
    }
  });

  test('identities: public keys, node ids, fingerprints and the key file', () => {
    const v = readVector('v2-identity.json');
    for (const id of v.identities) {
      const n = NodeIdentity.fromPrivateKey(hx(id.seed));
      assert.equal(n.publicKey.toString('hex'), id.public_key);
      assert.equal(n.nodeId, id.node_id);
      assert.equal(n.fingerprint, id.fingerprint);
    }
    const dir = mkdtempSync(join(tmpdir(), 'mcp-e2e-vec-'));
    try {
      const path = join(dir, 'id.json');
      writeFileSync(path, v.key_file, { mode: 0o600 });
      chmodSync(path, 0o600);
      assert.equal(NodeIdentity.load(path).nodeId, v.identities[0].node_id);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  for (const [index, file] of CASE_FILES.entries()) {
    const spec = CASES[index]!;
    test(`${file}: each side answers the stored messages with the next stored message, byte for byte; records open and seal again`, () => {
      const v = readVector(file);
      const hs = v.handshake;
      const initiator = NodeIdentity.fromPrivateKey(hx(INPUTS.initiator_identity_seed));
      const responder = NodeIdentity.fromPrivateKey(hx(INPUTS.responder_identity_seed));
      const cfg = configsOf(spec);
      const i = new Handshake('initiator', initiator, cfg.initiator);
      const r = new Handshake('responder', responder, cfg.responder);
      assert.equal(i.start(), hs.step1);
      assert.equal(r.receive(hs.step1).send, hs.step2);
      const iStep = i.receive(hs.step2);
      assert.equal(iStep.send, hs.step3);
      const rDone = r.receive(hs.step3);
      for (const [res, send, recv] of [
        [iStep.result!, v.session.initiator_to_responder_key, v.session.responder_to_initiator_key],
        [rDone.result!, v.session.responder_to_initiator_key, v.session.initiator_to_responder_key],
      ] as const) {
        assert.equal(res.transcriptHash.toString('hex'), hs.h3);
        assert.equal(res.sessionId.toString('hex'), v.session.session_id);
        assert.equal(res.sendKey.toString('hex'), send);
        assert.equal(res.recvKey.toString('hex'), recv);
        assert.equal(res.framing, v.session.framing);
        assert.equal(res.signatures, v.session.signatures);
      }
      assert.equal(iStep.result!.peer.nodeId, v.identities.responder.node_id);
      assert.equal(rDone.result!.peer.nodeId, v.identities.initiator.node_id);

      // Session.open accepts the stored records, in order, in both directions (epoch 1 and the CLOSE included).
      const opts = { rekeyAfterRecords: REKEY_AFTER_RECORDS, now: () => 0 };
      const si = new Session(iStep.result!, initiator, opts);
      const sr = new Session(rDone.result!, responder, opts);
      for (const [dir, receiver] of [['initiator_to_responder', sr], ['responder_to_initiator', si]] as const) {
        for (const f of v.records[dir]) {
          const opened = receiver.open(v.session.framing === 'json' ? f.wire : hx(f.wire));
          assert.deepEqual(opened.map((e) => ({ content_type: e.contentType, payload: e.payload.toString('utf8') })), f.entries);
          assert.equal(receiver.recvEpoch, f.epoch);
        }
      }
      // And seals the same records again.
      const si2 = new Session(rebuild(spec).initiator, initiator, opts);
      for (const f of v.records.initiator_to_responder) {
        const close = f.entries.length === 1 && f.entries[0].content_type === 3;
        const wire = close ? si2.sealClose(f.entries[0].payload || undefined) : si2.sealRecord(f.entries.map((e: any) => ({ contentType: e.content_type, payload: e.payload })));
        assert.equal(typeof wire === 'string' ? wire : wire.toString('hex'), f.wire);
      }
    });

    test(`${file}: a fresh receiver refuses each rejection with its error code, and accepts nothing after it`, () => {
      const v = readVector(file);
      for (const rej of v.rejections) {
        const hs = rebuild(spec);
        const receiver = new Session(hs.responder, NodeIdentity.fromPrivateKey(hx(INPUTS.responder_identity_seed)), rej.max_message_bytes ? { maxMessageBytes: rej.max_message_bytes } : {});
        const frame = (w: string) => (v.session.framing === 'json' ? w : hx(w));
        rej.records.forEach((w: string, k: number) => {
          if (k < rej.records.length - 1) receiver.open(frame(w));
          else assert.throws(() => receiver.open(frame(w)), isCode(rej.error), `${file}: ${rej.name}`);
        });
        assert.throws(() => receiver.open(frame(rej.records[0])), isCode('ERR_SESSION_CLOSED'), 'a refused record ends the session');
      }
    });
  }

  test('v2-handshake-rejections.json: each refused handshake is refused with its code, in order', () => {
    const v = readVector('v2-handshake-rejections.json');
    const base = CASES.find((c) => `v2-${c.name}.json` === v.base)!;
    const cfg = configsOf(base);
    const ids = { initiator: NodeIdentity.fromPrivateKey(hx(INPUTS.initiator_identity_seed)), responder: NodeIdentity.fromPrivateKey(hx(INPUTS.responder_identity_seed)) };
    const codes = new Set<string>();
    for (const c of v.cases) {
      const side = new Handshake(c.side, ids[c.side as 'initiator' | 'responder'], { ...cfg[c.side as 'initiator' | 'responder'], ...c.config });
      if (c.side === 'initiator') side.start();
      c.messages.forEach((m: string, k: number) => {
        if (k < c.messages.length - 1) side.receive(m);
        else assert.throws(() => side.receive(m), isCode(c.error), c.name);
      });
      codes.add(c.error);
    }
    // Every handshake error code of §9 has at least one case.
    for (const code of ['ERR_HANDSHAKE_MALFORMED', 'ERR_HANDSHAKE_UNEXPECTED_MESSAGE', 'ERR_HANDSHAKE_UNSUPPORTED_VERSION', 'ERR_HANDSHAKE_BAD_KEY', 'ERR_HANDSHAKE_LOW_ORDER_KEY',
      'ERR_HANDSHAKE_NODE_ID_MISMATCH', 'ERR_HANDSHAKE_BAD_SIGNATURE', 'ERR_HANDSHAKE_BAD_MAC', 'ERR_HANDSHAKE_OPTIONS', 'ERR_HANDSHAKE_REFLECTION', 'ERR_HANDSHAKE_DOWNGRADE', 'ERR_FRAME_TOO_LARGE']) {
      assert.ok(codes.has(code), `no refused handshake for ${code}`);
    }
  });
});

/** A fresh pair of handshake results for one case (the stored messages replayed through new state machines). */
function rebuild(spec: (typeof CASES)[number]) {
  const initiator = NodeIdentity.fromPrivateKey(hx(INPUTS.initiator_identity_seed));
  const responder = NodeIdentity.fromPrivateKey(hx(INPUTS.responder_identity_seed));
  const cfg = configsOf(spec);
  const i = new Handshake('initiator', initiator, cfg.initiator);
  const r = new Handshake('responder', responder, cfg.responder);
  const s2 = r.receive(i.start()).send!;
  const iStep = i.receive(s2);
  const rDone = r.receive(iStep.send!);
  return { initiator: iStep.result!, responder: rDone.result! };
}

// ---------------------------------------------------------------------------------------------
// (c) Independent re-derivation from PROTOCOL.md with raw node:crypto
// ---------------------------------------------------------------------------------------------
// Everything below follows PROTOCOL.md and uses node:crypto only. Labels, codes, layouts and
// rules are written out here from the spec text, not imported from src/.

const ascii = (s: string) => Buffer.from(s, 'ascii');
const SPEC = {
  transcript: ascii('mcp-e2e/2 handshake'),
  responderSignature: ascii('mcp-e2e/2 responder signature\0'),
  initiatorSignature: ascii('mcp-e2e/2 initiator signature\0'),
  responderFinished: ascii('mcp-e2e/2 responder finished\0'),
  initiatorFinished: ascii('mcp-e2e/2 initiator finished\0'),
  handshakeKeys: ascii('mcp-e2e/2 handshake keys'),
  sessionKeys: ascii('mcp-e2e/2 session keys'),
  keyUpdate: ascii('mcp-e2e/2 key update'),
  recordSignature: ascii('mcp-e2e/2 record signature\0'),
  framingCode: { json: 0x01, binary: 0x02 } as Record<string, number>,
  direction: { initiator_to_responder: 0x01, responder_to_initiator: 0x02 } as Record<string, number>,
  supportedVersions: [2],
  maxMessage: 16 * 1024 * 1024,
  maxRecordEntries: 256,
  maxCoalesced: 65536,
  maxControl: 65536,
  // §2.1: the small-order encodings, compared with bit 255 cleared.
  smallOrder: [
    '0000000000000000000000000000000000000000000000000000000000000000',
    '0100000000000000000000000000000000000000000000000000000000000000',
    '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
    'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
    'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
    'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
    'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  ],
};

const sha256 = (...parts: Buffer[]) => parts.reduce((h, p) => h.update(p), createHash('sha256')).digest();
const hmac = (key: Buffer, ...parts: Buffer[]) => parts.reduce((h, p) => h.update(p), createHmac('sha256', key)).digest();
// §1.2: HKDF with an empty salt (RFC 5869: HashLen zero bytes).
const hkdf = (ikm: Buffer, info: Buffer, len: number) => Buffer.from(hkdfSync('sha256', ikm, Buffer.alloc(0), info, len));
const u8 = (n: number) => Buffer.of(n);
const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
const u64 = (n: number) => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b; };
const gcmSeal = (key: Buffer, nonce: Buffer, aad: Buffer, plaintext: Buffer) => {
  const c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 });
  c.setAAD(aad);
  return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
};
/** AES-256-GCM open; undefined on a tag mismatch. */
const gcmOpen = (key: Buffer, nonce: Buffer, aad: Buffer, sealed: Buffer) => {
  try {
    const d = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 });
    d.setAAD(aad);
    d.setAuthTag(sealed.subarray(sealed.length - 16));
    return Buffer.concat([d.update(sealed.subarray(0, sealed.length - 16)), d.final()]);
  } catch {
    return undefined;
  }
};

// RFC 8410 PKCS#8 wrappers for raw 32-byte private keys.
const pkcs8 = (oid: string, raw: Buffer) => createPrivateKey({ key: Buffer.concat([hx(`302e020100300506032b65${oid}04220420`), raw]), format: 'der', type: 'pkcs8' });
const edPriv = (seed: Buffer) => pkcs8('70', seed);
const xPriv = (scalar: Buffer) => pkcs8('6e', scalar);
const rawPub = (k: KeyObject) => Buffer.from(createPublicKey(k).export({ format: 'jwk' }).x as string, 'base64url');
const okpPub = (crv: 'Ed25519' | 'X25519', raw: Buffer) => createPublicKey({ key: { kty: 'OKP', crv, x: raw.toString('base64url') }, format: 'jwk' });
const nodeIdOf = (pub: Buffer) => sha256(pub).toString('hex');
/** X25519 (§1.2); undefined when refused (OpenSSL throws for low-order keys) or all zero. */
const x25519 = (priv: KeyObject, pub: Buffer) => {
  try {
    const out = diffieHellman({ privateKey: priv, publicKey: okpPub('X25519', pub) });
    return out.every((x) => x === 0) ? undefined : out;
  } catch {
    return undefined;
  }
};

// §1.3: the Ed25519 acceptance rule, on top of OpenSSL's RFC 8032 verification.
const L = Buffer.from('edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010', 'hex');
const isSmallOrder = (p: Buffer) => SPEC.smallOrder.some((h) => { const q = Buffer.from(p); q[31]! &= 0x7f; return q.toString('hex') === h; });
const isCanonicalY = (p: Buffer) => { const y = Buffer.from(p); y[31]! &= 0x7f; return Buffer.compare(Buffer.from(y).reverse(), Buffer.from('7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffed', 'hex')) < 0; };
const validKey = (k: Buffer) => k.length === 32 && isCanonicalY(k) && !isSmallOrder(k);
const sLessThanL = (s: Buffer) => Buffer.compare(Buffer.from(s).reverse(), Buffer.from(L).reverse()) < 0;
function specVerify(key: Buffer, message: Buffer, sig: Buffer): boolean {
  if (sig.length !== 64 || !sLessThanL(sig.subarray(32)) || isSmallOrder(sig.subarray(0, 32))) return false;
  return nodeVerify(null, message, okpPub('Ed25519', key), sig);
}

/** Strict lowercase hex of an exact byte length (§1.1). */
function specHex(value: unknown, bytes: number): Buffer {
  assert.equal(typeof value, 'string');
  assert.match(value as string, new RegExp(`^[0-9a-f]{${2 * bytes}}$`));
  return hx(value as string);
}
const keySet = (o: object) => Object.keys(o).sort().join(',');

/** The canonical encodings of §4.1: JSON.stringify of the members in table order. */
const canonical = {
  step1: (m: { versions: number[]; e: Buffer; r: Buffer; signatures: boolean; framings: string[] }) =>
    JSON.stringify({ type: 'key_exchange', version: 2, step: 1, versions: m.versions, public_key: m.e.toString('hex'), random: m.r.toString('hex'), options: { signatures: m.signatures, framings: m.framings } }),
  step2: (m: { e: Buffer; r: Buffer; id: Buffer; signatures: boolean; framing: string; sig: Buffer; mac: Buffer }) =>
    JSON.stringify({ type: 'key_exchange', version: 2, step: 2, public_key: m.e.toString('hex'), random: m.r.toString('hex'), identity_key: m.id.toString('hex'), node_id: nodeIdOf(m.id), options: { signatures: m.signatures, framing: m.framing }, signature: m.sig.toString('hex'), mac: m.mac.toString('hex') }),
  step3: (ct: Buffer) => JSON.stringify({ type: 'key_exchange', version: 2, step: 3, ciphertext: ct.toString('hex') }),
};

/** T2 of §5.1. */
function specT2(m1: any, m2: any): Buffer {
  return Buffer.concat([
    SPEC.transcript,
    u8(2),
    u8(m1.versions.length),
    Buffer.from(m1.versions),
    hx(m1.public_key),
    hx(m1.random),
    u8(m1.options.signatures ? 1 : 0),
    u8(m1.options.framings.length),
    Buffer.from(m1.options.framings.map((f: string) => SPEC.framingCode[f]!)),
    hx(m2.public_key),
    hx(m2.random),
    hx(m2.identity_key),
    hx(m2.node_id),
    u8(m2.options.signatures ? 1 : 0),
    u8(SPEC.framingCode[m2.options.framing]!),
  ]);
}

describe('(c) independent re-derivation from PROTOCOL.md with node:crypto only', () => {
  const idv = readVector('v2-identity.json');

  test('§2: node id = hex(SHA-256(public key)); fingerprint = first 20 hex digits in groups of 4; key file fields', () => {
    for (const id of idv.identities) {
      const pub = rawPub(edPriv(hx(id.seed)));
      assert.equal(pub.toString('hex'), id.public_key);
      assert.equal(nodeIdOf(pub), id.node_id);
      assert.equal(id.node_id.slice(0, 20).replace(/(.{4})(?!$)/g, '$1-'), id.fingerprint);
    }
    const file = JSON.parse(idv.key_file);
    assert.equal(keySet(file), 'node_id,private_key,public_key,type,version');
    assert.equal(file.type, 'mcp-e2e-identity');
    assert.equal(file.version, 1);
    assert.equal(rawPub(edPriv(specHex(file.private_key, 32))).toString('hex'), file.public_key);
    assert.equal(nodeIdOf(hx(file.public_key)), file.node_id);
    assert.equal(idv.key_file, JSON.stringify(file, null, 2) + '\n', 'two-space indented JSON with a final newline');
  });

  test('§1.3: the Ed25519 acceptance rule gives the outcome of every case of curve25519-edge.json; X25519 edge inputs', () => {
    const edge = readVector('curve25519-edge.json');
    for (const c of edge.ed25519) {
      assert.equal(validKey(hx(c.public_key)), c.key_valid, c.name);
      if (c.key_valid) assert.equal(specVerify(hx(c.public_key), hx(c.message), hx(c.signature)), c.signature_valid, c.name);
    }
    for (const c of edge.x25519) assert.equal(x25519(xPriv(hx(c.private_key)), hx(c.public_key))!.toString('hex'), c.shared, c.name);
  });

  test('§6.7: the JSON-RPC rules, written from the spec, accept and refuse exactly the payloads of json-rpc.json', () => {
    const v = readVector('json-rpc.json');
    for (const c of v.accepted) assert.equal(specJsonRpc(Buffer.from(c.payload, 'utf8')), true, c.name);
    for (const c of v.refused) assert.equal(specJsonRpc(c.payload_hex ? hx(c.payload_hex) : Buffer.from(c.payload, 'utf8')), false, c.name);
  });

  for (const file of CASE_FILES) {
    test(`${file}: handshake messages, transcript, signatures, MACs, sealed step 3 and keys (§4-§5)`, () => {
      const v = readVector(file);
      const inp = v.inputs;
      const iSeed = hx(inp.initiator_identity_seed);
      const rSeed = hx(inp.responder_identity_seed);
      const iId = rawPub(edPriv(iSeed));
      const rId = rawPub(edPriv(rSeed));
      const iEph = xPriv(hx(inp.initiator_ephemeral_private));
      const rEph = xPriv(hx(inp.responder_ephemeral_private));
      const m1 = JSON.parse(v.handshake.step1);
      const m2 = JSON.parse(v.handshake.step2);
      const m3 = JSON.parse(v.handshake.step3);

      // §4.1: exact member sets.
      assert.equal(keySet(m1), 'options,public_key,random,step,type,version,versions');
      assert.equal(keySet(m2), 'identity_key,mac,node_id,options,public_key,random,signature,step,type,version');
      assert.equal(keySet(m3), 'ciphertext,step,type,version');
      for (const text of [v.handshake.step1, v.handshake.step2, v.handshake.step3]) assert.ok(Buffer.byteLength(text) <= 4096);

      // Step 1 from the inputs.
      const e_i = rawPub(iEph);
      const r_i = hx(inp.initiator_random);
      const offer = { signatures: inp.initiator_config.signatures as boolean, framings: inp.initiator_config.framings as string[] };
      assert.equal(canonical.step1({ versions: SPEC.supportedVersions, e: e_i, r: r_i, ...offer }), v.handshake.step1);

      // §4.2: the selection.
      const local = inp.responder_config;
      const framing = offer.framings.find((f) => local.framings.includes(f))!;
      const signatures = offer.signatures || local.signatures;
      assert.deepEqual(m2.options, { signatures, framing });

      // §5.1: the shared secret from both sides, T2, H2.
      const e_r = rawPub(rEph);
      const dh = x25519(iEph, specHex(m2.public_key, 32))!;
      assert.ok(dh.equals(x25519(rEph, specHex(m1.public_key, 32))!));
      assert.equal(dh.toString('hex'), v.handshake.shared_secret);
      const t2 = specT2(m1, m2);
      assert.equal(t2.length, 217 + m1.versions.length + offer.framings.length);
      assert.equal(t2.toString('hex'), v.handshake.t2);
      const h2 = sha256(t2);
      assert.equal(h2.toString('hex'), v.handshake.h2);

      // §5.2: handshake keys; the responder's signature and MAC; step 2.
      const hk = hkdf(dh, Buffer.concat([SPEC.handshakeKeys, h2]), 96);
      const [fkR, fkI, k3] = [hk.subarray(0, 32), hk.subarray(32, 64), hk.subarray(64, 96)];
      assert.deepEqual([fkR, fkI, k3].map((k) => k.toString('hex')), [v.handshake.finished_key_responder, v.handshake.finished_key_initiator, v.handshake.step3_key]);
      const sigR = nodeSign(null, Buffer.concat([SPEC.responderSignature, h2]), edPriv(rSeed));
      const macR = hmac(fkR, SPEC.responderFinished, h2);
      assert.equal(canonical.step2({ e: e_r, r: hx(inp.responder_random), id: rId, signatures, framing, sig: sigR, mac: macR }), v.handshake.step2);

      // §5.1-5.2: T3, H3, the initiator's signature and MAC, sealed in step 3.
      const t3 = Buffer.concat([t2, iId]);
      assert.equal(t3.toString('hex'), v.handshake.t3);
      const h3 = sha256(t3);
      assert.equal(h3.toString('hex'), v.handshake.h3);
      const sigI = nodeSign(null, Buffer.concat([SPEC.initiatorSignature, h3]), edPriv(iSeed));
      const macI = hmac(fkI, SPEC.initiatorFinished, h3);
      const plain3 = Buffer.concat([iId, sigI, macI]);
      assert.equal(plain3.toString('hex'), v.handshake.step3_plaintext);
      assert.equal(canonical.step3(gcmSeal(k3, Buffer.alloc(12), h2, plain3)), v.handshake.step3);
      // A passive observer sees nothing of the initiator's identity.
      assert.ok(![v.handshake.step1, v.handshake.step2, v.handshake.step3].join('').includes(iId.toString('hex')));

      // §5.3: session keys and session id; §7.2: the epoch 1 keys.
      const okm = hkdf(dh, Buffer.concat([SPEC.sessionKeys, h3]), 80);
      assert.equal(okm.subarray(0, 32).toString('hex'), v.session.initiator_to_responder_key);
      assert.equal(okm.subarray(32, 64).toString('hex'), v.session.responder_to_initiator_key);
      assert.equal(okm.subarray(64, 80).toString('hex'), v.session.session_id);
      const sid = okm.subarray(64, 80);
      assert.equal(hkdf(okm.subarray(0, 32), Buffer.concat([SPEC.keyUpdate, sid]), 32).toString('hex'), v.session.initiator_to_responder_key_epoch1);
      assert.equal(hkdf(okm.subarray(32, 64), Buffer.concat([SPEC.keyUpdate, sid]), 32).toString('hex'), v.session.responder_to_initiator_key_epoch1);
      assert.equal(v.session.framing, framing);
      assert.equal(v.session.signatures, signatures);
    });

    test(`${file}: records in both directions, both epochs, rebuilt byte for byte (§6-§7)`, () => {
      const v = readVector(file);
      const sid = hx(v.session.session_id);
      const framing: string = v.session.framing;
      for (const dir of ['initiator_to_responder', 'responder_to_initiator']) {
        const seed = hx(dir === 'initiator_to_responder' ? v.inputs.initiator_identity_seed : v.inputs.responder_identity_seed);
        const signer = edPriv(seed);
        const sender = nodeIdOf(rawPub(signer));
        let key = hx(dir === 'initiator_to_responder' ? v.session.initiator_to_responder_key : v.session.responder_to_initiator_key);
        let epoch = 0;
        for (const [counter, f] of (v.records[dir] as any[]).entries()) {
          // Sender rule used by the vectors: rotate after rekey_after_records records in an epoch.
          if (counter > 0 && counter % v.inputs.rekey_after_records === 0) {
            key = hkdf(key, Buffer.concat([SPEC.keyUpdate, sid]), 32);
            epoch++;
          }
          assert.equal(f.epoch, epoch);
          assert.equal(f.counter, counter);
          assert.equal(f.key, key.toString('hex'));
          const nonce = Buffer.concat([Buffer.alloc(4), u64(counter)]);
          assert.equal(nonce.toString('hex'), f.nonce);
          const aad = Buffer.concat([sid, u8(SPEC.direction[dir]!), u8(SPEC.framingCode[framing]!), u32(epoch), u64(counter)]);
          assert.equal(aad.toString('hex'), f.aad);
          // §6.5: entries, each u8(content type) || u32(length) || payload.
          const plaintext = Buffer.concat(f.entries.flatMap((e: any) => {
            const p = Buffer.from(e.payload, 'utf8');
            return [u8(e.content_type), u32(p.length), p];
          }));
          assert.equal(plaintext.toString('hex'), f.plaintext);
          const sealed = gcmSeal(key, nonce, aad, plaintext);
          assert.equal(sealed.toString('hex'), f.sealed);
          let signature: Buffer | undefined;
          if (v.session.signatures) {
            const input = Buffer.concat([SPEC.recordSignature, aad, sha256(sealed)]);
            assert.equal(input.toString('hex'), f.signature_input);
            signature = nodeSign(null, input, signer);
            assert.equal(signature.toString('hex'), f.signature);
          } else {
            assert.equal(f.signature, undefined);
          }
          // §6.1 / §6.2 wire forms.
          const wire =
            framing === 'json'
              ? JSON.stringify({
                  type: 'encrypted', epoch, nonce: nonce.toString('hex'), ciphertext: sealed.toString('hex'),
                  ...(signature ? { signature: signature.toString('hex') } : {}), sender,
                })
              : Buffer.concat([u8(0x01), u8(signature ? 0x01 : 0x00), u32(epoch), u64(counter), signature ?? Buffer.alloc(0), sealed]).toString('hex');
          assert.equal(wire, f.wire);
        }
      }
    });

    test(`${file}: an independent receiver written from §6.6 accepts the records and refuses each rejection with its code`, () => {
      const v = readVector(file);
      for (const dir of ['initiator_to_responder', 'responder_to_initiator'] as const) {
        const rx = specReceiver(v)[dir];
        for (const f of v.records[dir]) assert.deepEqual(rx(f.wire), f.entries);
      }
      for (const rej of v.rejections) {
        const rx = specReceiver(v, rej.max_message_bytes).initiator_to_responder;
        rej.records.slice(0, -1).forEach((w: string) => rx(w));
        assert.throws(() => rx(rej.records.at(-1)), (e: unknown) => e instanceof SpecError && e.code === rej.error, `${file}: ${rej.name}`);
      }
    });
  }

  test('v2-handshake-rejections.json: a handshake checker written from §4.3 refuses each case with its code', () => {
    const v = readVector('v2-handshake-rejections.json');
    const base = readVector(v.base);
    for (const c of v.cases) {
      const side = specHandshake(base, c.side, c.config ?? {});
      c.messages.slice(0, -1).forEach((m: string) => side(m));
      assert.throws(() => side(c.messages.at(-1)), (e: unknown) => e instanceof SpecError && e.code === c.error, c.name);
    }
    // And the genuine messages pass it, both ways.
    const r = specHandshake(base, 'responder', {});
    r(base.handshake.step1);
    r(base.handshake.step3);
    specHandshake(base, 'initiator', {})(base.handshake.step2);
  });
});

class SpecError extends Error {
  constructor(readonly code: string) {
    super(code);
  }
}
const fail = (code: string): never => {
  throw new SpecError(code);
};

/** §6.7, from the spec text: is `bytes` one JSON-RPC 2.0 message of MCP? */
function specJsonRpc(bytes: Buffer): boolean {
  let v: any;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    return false;
  }
  const obj = (x: unknown): x is Record<string, any> => typeof x === 'object' && x !== null && !Array.isArray(x);
  const int = (x: unknown) => typeof x === 'number' && Number.isInteger(x) && Math.abs(x) <= 2 ** 53 - 1;
  const id = (x: unknown) => typeof x === 'string' || int(x);
  const only = (o: object, names: string[]) => Object.keys(o).every((k) => names.includes(k));
  const own = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);
  if (!obj(v) || v.jsonrpc !== '2.0') return false;
  const paramsOk = (p: unknown) => {
    if (!obj(p)) return false;
    if (!own(p, '_meta')) return true;
    const m = p._meta;
    if (!obj(m)) return false;
    if (own(m, 'progressToken') && !id(m.progressToken)) return false;
    const t = m['io.modelcontextprotocol/related-task'];
    return !own(m, 'io.modelcontextprotocol/related-task') || (obj(t) && typeof t.taskId === 'string');
  };
  if (own(v, 'method')) return only(v, ['jsonrpc', 'id', 'method', 'params']) && typeof v.method === 'string' && (!own(v, 'id') || id(v.id)) && (!own(v, 'params') || paramsOk(v.params));
  if (own(v, 'result')) return only(v, ['jsonrpc', 'id', 'result']) && own(v, 'id') && id(v.id) && obj(v.result) && (!own(v.result, '_meta') || obj(v.result._meta));
  if (own(v, 'error')) return only(v, ['jsonrpc', 'id', 'error']) && (!own(v, 'id') || v.id === null || id(v.id)) && obj(v.error) && int(v.error.code) && typeof v.error.message === 'string';
  return false;
}

/**
 * A receiver written from PROTOCOL.md §6.6 alone, for both directions of one vector's session.
 * Returns functions that take a wire record (JSON text or binary as hex) and return its entries.
 */
function specReceiver(v: any, maxMessage = SPEC.maxMessage) {
  const sid = hx(v.session.session_id);
  const framing: string = v.session.framing;
  const signed: boolean = v.session.signatures;
  // §7.3: the record limit, and the frame limit derived from it.
  const recordLimit = 5 + Math.max(maxMessage, SPEC.maxControl, SPEC.maxCoalesced);
  const frameLimit = framing === 'binary' ? 14 + 64 + recordLimit + 16 : 309 + 2 * (recordLimit + 16);
  const build = (dir: 'initiator_to_responder' | 'responder_to_initiator') => {
    const peer = dir === 'initiator_to_responder' ? v.identities.initiator : v.identities.responder;
    let key = hx(dir === 'initiator_to_responder' ? v.session.initiator_to_responder_key : v.session.responder_to_initiator_key);
    let epoch = 0;
    let next = 0;
    let closed = false;
    const stop = (code: string): never => {
      closed = true;
      return fail(code);
    };
    return (wire: string) => {
      if (closed) fail('ERR_SESSION_CLOSED');
      let e: number;
      let counter: number;
      let sealed: Buffer;
      let sig: Buffer | undefined;
      if (wire.length / (framing === 'json' ? 1 : 2) > frameLimit) stop('ERR_FRAME_TOO_LARGE');
      if (framing === 'json') {
        // §6.1: exactly the canonical form.
        let d: any;
        try {
          d = JSON.parse(wire);
        } catch {
          return stop('ERR_FRAME_MALFORMED');
        }
        const keys = Object.keys(d ?? {}).join(',');
        if (keys !== 'type,epoch,nonce,ciphertext,sender' && keys !== 'type,epoch,nonce,ciphertext,signature,sender') return stop('ERR_FRAME_MALFORMED');
        if (d.type !== 'encrypted') return stop('ERR_FRAME_MALFORMED');
        if (!Number.isInteger(d.epoch) || d.epoch < 0 || d.epoch > 0xffffffff) return stop('ERR_FRAME_MALFORMED');
        if (typeof d.nonce !== 'string' || !/^00000000[0-9a-f]{16}$/.test(d.nonce)) return stop('ERR_FRAME_MALFORMED');
        const c = hx(d.nonce).readBigUInt64BE(4);
        if (c > BigInt(Number.MAX_SAFE_INTEGER)) return stop('ERR_FRAME_MALFORMED');
        if (typeof d.ciphertext !== 'string' || !/^([0-9a-f]{2}){21,}$/.test(d.ciphertext)) return stop('ERR_FRAME_MALFORMED');
        if ('signature' in d && (typeof d.signature !== 'string' || !/^[0-9a-f]{128}$/.test(d.signature))) return stop('ERR_FRAME_MALFORMED');
        if (typeof d.sender !== 'string' || !/^[0-9a-f]{64}$/.test(d.sender)) return stop('ERR_FRAME_MALFORMED');
        if (JSON.stringify(d) !== wire) return stop('ERR_FRAME_MALFORMED');
        if (d.sender !== peer.node_id) return stop('ERR_FRAME_SENDER');
        e = d.epoch;
        counter = Number(c);
        sealed = hx(d.ciphertext);
        sig = 'signature' in d ? hx(d.signature) : undefined;
      } else {
        const b = hx(wire);
        if (b.length < 14 + 21) return stop('ERR_FRAME_MALFORMED');
        if (b[0] !== 0x01) return stop('ERR_FRAME_MALFORMED');
        if ((b[1]! & 0xfe) !== 0) return stop('ERR_FRAME_MALFORMED');
        e = b.readUInt32BE(2);
        const c = b.readBigUInt64BE(6);
        if (c > BigInt(Number.MAX_SAFE_INTEGER)) return stop('ERR_FRAME_MALFORMED');
        counter = Number(c);
        if (b[1]! & 0x01) {
          if (b.length < 14 + 64 + 21) return stop('ERR_FRAME_MALFORMED');
          sig = b.subarray(14, 78);
          sealed = b.subarray(78);
        } else {
          sealed = b.subarray(14);
        }
      }
      if (sealed.length - 16 > recordLimit) return stop('ERR_FRAME_TOO_LARGE');
      if (e !== epoch && e !== epoch + 1) return stop('ERR_FRAME_EPOCH');
      if (counter !== next) return stop('ERR_FRAME_COUNTER');
      if (signed !== (sig !== undefined)) return stop('ERR_FRAME_SIGNATURE');
      // (Per-epoch limits of §7.1 cannot be reached by these short vectors.)
      const k = e === epoch ? key : hkdf(key, Buffer.concat([SPEC.keyUpdate, sid]), 32);
      const aad = Buffer.concat([sid, u8(SPEC.direction[dir]!), u8(SPEC.framingCode[framing]!), u32(e), u64(counter)]);
      const plaintext = gcmOpen(k, Buffer.concat([Buffer.alloc(4), u64(counter)]), aad, sealed);
      if (!plaintext) return stop('ERR_FRAME_DECRYPT');
      if (sig && !specVerify(hx(peer.public_key), Buffer.concat([SPEC.recordSignature, aad, sha256(sealed)]), sig)) return stop('ERR_FRAME_SIGNATURE');
      // Step 11: the entries, in order.
      const entries: Array<{ content_type: number; payload: string }> = [];
      let at = 0;
      while (at < plaintext.length) {
        if (plaintext.length - at < 5) return stop('ERR_ENTRIES_MALFORMED');
        if (entries.length === SPEC.maxRecordEntries) return stop('ERR_ENTRIES_MALFORMED');
        const type = plaintext[at]!;
        const len = plaintext.readUInt32BE(at + 1);
        at += 5;
        if (len > plaintext.length - at) return stop('ERR_ENTRIES_MALFORMED');
        const payload = plaintext.subarray(at, at + len);
        at += len;
        if (type === 0x01 && len > maxMessage) return stop('ERR_FRAME_TOO_LARGE');
        if (type === 0x02 && len > SPEC.maxControl) return stop('ERR_FRAME_TOO_LARGE');
        if (type === 0x03 && (len > 64 || (len > 0 && !/^[A-Z][A-Z0-9_]*$/.test(payload.toString('latin1'))) || at !== plaintext.length)) return stop('ERR_ENTRIES_MALFORMED');
        if (type !== 0x01 && type !== 0x02 && type !== 0x03) return stop('ERR_FRAME_CONTENT_TYPE');
        entries.push({ content_type: type, payload: payload.toString('utf8') });
      }
      if (entries.length > 1 && plaintext.length > SPEC.maxCoalesced) return stop('ERR_ENTRIES_MALFORMED');
      key = k;
      epoch = e;
      next++;
      if (entries.at(-1)!.content_type === 0x03) closed = true;
      return entries;
    };
  };
  return { initiator_to_responder: build('initiator_to_responder'), responder_to_initiator: build('responder_to_initiator') };
}

/**
 * One side of a handshake written from PROTOCOL.md §4.3 alone, with the inputs of a vector file:
 * returns a function taking each received message (an initiator has sent its step 1 first).
 */
function specHandshake(base: any, side: 'initiator' | 'responder', config: { signatures?: boolean; framings?: string[]; versions?: number[] }) {
  const inp = base.inputs;
  const mine = side === 'initiator' ? inp.initiator_config : inp.responder_config;
  const local = { signatures: config.signatures ?? mine.signatures, framings: config.framings ?? mine.framings, versions: config.versions ?? SPEC.supportedVersions };
  const seed = hx(side === 'initiator' ? inp.initiator_identity_seed : inp.responder_identity_seed);
  const eph = xPriv(hx(side === 'initiator' ? inp.initiator_ephemeral_private : inp.responder_ephemeral_private));
  const ownE = rawPub(eph);
  const ownR = hx(side === 'initiator' ? inp.initiator_random : inp.responder_random);
  const hexOf = (x: unknown, n: number) => (typeof x === 'string' && new RegExp(`^[0-9a-f]{${2 * n}}$`).test(x) ? hx(x) : fail('ERR_HANDSHAKE_MALFORMED'));
  const known = (f: unknown) => f === 'json' || f === 'binary';
  /** Decoding, every message: rules 1-7 and the canonical form. */
  const decode = (text: string): any => {
    if (Buffer.byteLength(text, 'utf8') > 4096) fail('ERR_FRAME_TOO_LARGE');
    let d: any;
    try {
      d = JSON.parse(text);
    } catch {
      return fail('ERR_HANDSHAKE_MALFORMED');
    }
    if (typeof d !== 'object' || d === null || Array.isArray(d)) fail('ERR_HANDSHAKE_MALFORMED');
    if (d.type !== 'key_exchange') fail('ERR_HANDSHAKE_MALFORMED');
    if (!Number.isInteger(d.version)) fail('ERR_HANDSHAKE_MALFORMED');
    if (d.version !== 2) fail('ERR_HANDSHAKE_UNSUPPORTED_VERSION');
    const members = ({ 1: 'options,public_key,random,step,type,version,versions', 2: 'identity_key,mac,node_id,options,public_key,random,signature,step,type,version', 3: 'ciphertext,step,type,version' } as Record<string, string>)[d.step];
    if (!members) fail('ERR_HANDSHAKE_MALFORMED');
    if (keySet(d) !== members) fail('ERR_HANDSHAKE_MALFORMED');
    if (d.step === 1) {
      const v = d.versions;
      if (!Array.isArray(v) || v.length < 1 || v.length > 8 || !v.every((x: unknown, i: number) => Number.isInteger(x) && (x as number) >= 1 && (x as number) <= 255 && (i === 0 || (x as number) < v[i - 1])) || !v.includes(2)) fail('ERR_HANDSHAKE_MALFORMED');
      hexOf(d.public_key, 32);
      hexOf(d.random, 32);
      if (typeof d.options !== 'object' || d.options === null || keySet(d.options) !== 'framings,signatures' || typeof d.options.signatures !== 'boolean') fail('ERR_HANDSHAKE_MALFORMED');
      const f = d.options.framings;
      if (!Array.isArray(f) || f.length < 1 || f.length > 2 || !f.every(known) || new Set(f).size !== f.length) fail('ERR_HANDSHAKE_OPTIONS');
      if (canonical.step1({ versions: v, e: hx(d.public_key), r: hx(d.random), signatures: d.options.signatures, framings: f }) !== text) fail('ERR_HANDSHAKE_MALFORMED');
    } else if (d.step === 2) {
      hexOf(d.public_key, 32);
      hexOf(d.random, 32);
      hexOf(d.identity_key, 32);
      hexOf(d.node_id, 32);
      if (typeof d.options !== 'object' || d.options === null || keySet(d.options) !== 'framing,signatures' || typeof d.options.signatures !== 'boolean') fail('ERR_HANDSHAKE_MALFORMED');
      if (!known(d.options.framing)) fail('ERR_HANDSHAKE_OPTIONS');
      hexOf(d.signature, 64);
      hexOf(d.mac, 32);
      const again = JSON.stringify({ type: 'key_exchange', version: 2, step: 2, public_key: d.public_key, random: d.random, identity_key: d.identity_key, node_id: d.node_id, options: { signatures: d.options.signatures, framing: d.options.framing }, signature: d.signature, mac: d.mac });
      if (again !== text) fail('ERR_HANDSHAKE_MALFORMED');
    } else {
      hexOf(d.ciphertext, 144);
      if (canonical.step3(hx(d.ciphertext)) !== text) fail('ERR_HANDSHAKE_MALFORMED');
    }
    return d;
  };
  let state = side === 'initiator' ? 'wait_2' : 'wait_1';
  const step1 = side === 'initiator' ? JSON.parse(canonical.step1({ versions: local.versions, e: ownE, r: ownR, signatures: local.signatures, framings: local.framings })) : undefined;
  let m1: any;
  let t2: Buffer;
  let h2: Buffer;
  let hk: Buffer;
  return (text: string) => {
    const d = decode(text);
    const expected = state === 'wait_1' ? 1 : state === 'wait_2' ? 2 : state === 'wait_3' ? 3 : 0;
    if (d.step !== expected) fail('ERR_HANDSHAKE_UNEXPECTED_MESSAGE');
    if (state === 'wait_1') {
      const best = Math.max(...d.versions.filter((x: number) => local.versions.includes(x)));
      if (best !== 2) fail('ERR_HANDSHAKE_DOWNGRADE');
      const framing = d.options.framings.find((f: string) => local.framings.includes(f));
      if (!framing) fail('ERR_HANDSHAKE_OPTIONS');
      if (hx(d.public_key).equals(ownE)) fail('ERR_HANDSHAKE_REFLECTION');
      const dh = x25519(eph, hx(d.public_key)) ?? fail('ERR_HANDSHAKE_LOW_ORDER_KEY');
      m1 = d;
      const rId = rawPub(edPriv(seed));
      t2 = specT2(d, { public_key: ownE.toString('hex'), random: ownR.toString('hex'), identity_key: rId.toString('hex'), node_id: nodeIdOf(rId), options: { signatures: d.options.signatures || local.signatures, framing } });
      h2 = sha256(t2);
      hk = hkdf(dh, Buffer.concat([SPEC.handshakeKeys, h2]), 96);
      state = 'wait_3';
      return;
    }
    if (state === 'wait_3') {
      const plain = gcmOpen(hk.subarray(64, 96), Buffer.alloc(12), h2, hx(d.ciphertext)) ?? fail('ERR_HANDSHAKE_BAD_MAC');
      const iKey = plain.subarray(0, 32);
      if (!validKey(iKey)) fail('ERR_HANDSHAKE_BAD_KEY');
      const h3 = sha256(t2, iKey);
      if (!hmac(hk.subarray(32, 64), SPEC.initiatorFinished, h3).equals(plain.subarray(96))) fail('ERR_HANDSHAKE_BAD_MAC');
      if (!specVerify(iKey, Buffer.concat([SPEC.initiatorSignature, h3]), plain.subarray(32, 96))) fail('ERR_HANDSHAKE_BAD_SIGNATURE');
      state = 'done';
      void m1;
      return;
    }
    // Initiator, on step 2.
    const sel = d.options;
    if (!step1!.options.framings.includes(sel.framing) || (step1!.options.signatures && !sel.signatures)) fail('ERR_HANDSHAKE_OPTIONS');
    if (hx(d.random).equals(ownR)) fail('ERR_HANDSHAKE_REFLECTION');
    if (nodeIdOf(hx(d.identity_key)) !== d.node_id) fail('ERR_HANDSHAKE_NODE_ID_MISMATCH');
    if (!validKey(hx(d.identity_key))) fail('ERR_HANDSHAKE_BAD_KEY');
    if (hx(d.public_key).equals(ownE)) fail('ERR_HANDSHAKE_REFLECTION');
    const dh = x25519(eph, hx(d.public_key)) ?? fail('ERR_HANDSHAKE_LOW_ORDER_KEY');
    const h = sha256(specT2(step1, d));
    const keys = hkdf(dh, Buffer.concat([SPEC.handshakeKeys, h]), 96);
    if (!hmac(keys.subarray(0, 32), SPEC.responderFinished, h).equals(hx(d.mac))) fail('ERR_HANDSHAKE_BAD_MAC');
    if (!specVerify(hx(d.identity_key), Buffer.concat([SPEC.responderSignature, h]), hx(d.signature))) fail('ERR_HANDSHAKE_BAD_SIGNATURE');
    state = 'done';
  };
}
