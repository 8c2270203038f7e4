/**
 * Test vectors (test/vectors/README.md):
 *  (a) the published RFC 7748, RFC 8032 and RFC 5869 vectors against src/crypto/primitives.ts;
 *  (b) our implementation reproduces every golden vector exactly, and accepts or refuses the stored frames;
 *  (c) an independent re-derivation of every golden vector from PROTOCOL.md with raw node:crypto only
 *      (nothing from src/ is imported for it): this is what shows that the spec and the code agree.
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
import { buildAll, CASES, INPUTS, REKEY_AFTER_FRAMES } from './vectors/generate.js';

const readVector = (name: string): any => JSON.parse(readFileSync(new URL(`../../test/vectors/${name}`, import.meta.url), 'utf8'));
const hx = (s: string) => Buffer.from(s, 'hex');
const CASE_FILES = CASES.map((c) => `v1-${c.name}.json`);

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

describe('(b) the implementation reproduces the golden vectors', () => {
  test('regenerating every vector file gives the stored files exactly', () => {
    const fresh = buildAll();
    for (const [name, doc] of Object.entries(fresh)) {
      assert.deepEqual(JSON.parse(JSON.stringify(doc)), readVector(name), name);
    }
  });

  test('identities: public keys, node ids, fingerprints and the key file', () => {
    const v = readVector('v1-identity.json');
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
    test(`${file}: each side answers the stored messages with the next stored message, byte for byte`, () => {
      const v = readVector(file);
      const hs = v.handshake;
      const initiator = NodeIdentity.fromPrivateKey(hx(INPUTS.initiator_identity_seed));
      const responder = NodeIdentity.fromPrivateKey(hx(INPUTS.responder_identity_seed));
      const i = new Handshake('initiator', initiator, {
        ...spec.initiator,
        ephemeralPrivateKey: hx(INPUTS.initiator_ephemeral_private),
        random: hx(INPUTS.initiator_random),
      });
      const r = new Handshake('responder', responder, {
        ...spec.responder,
        ephemeralPrivateKey: hx(INPUTS.responder_ephemeral_private),
        random: hx(INPUTS.responder_random),
      });
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

      // Session.open accepts the stored frames, in order, in both directions (including the epoch 1 frame).
      const opts = { rekeyAfterFrames: REKEY_AFTER_FRAMES, now: () => 0 };
      const si = new Session(iStep.result!, initiator, opts);
      const sr = new Session(rDone.result!, responder, opts);
      for (const [dir, receiver] of [['initiator_to_responder', sr], ['responder_to_initiator', si]] as const) {
        for (const f of v.frames[dir]) {
          const opened = receiver.open(v.session.framing === 'json' ? f.wire : hx(f.wire));
          assert.equal(opened.contentType, f.content_type);
          assert.equal(opened.payload.toString('utf8'), f.payload);
          assert.equal(receiver.recvEpoch, f.epoch);
        }
      }
      // And seals the same frames again.
      const si2 = new Session(rebuild(spec).initiator, initiator, opts);
      for (const f of v.frames.initiator_to_responder) {
        const wire = si2.seal(f.payload, f.content_type);
        assert.equal(typeof wire === 'string' ? wire : wire.toString('hex'), f.wire);
      }
    });

    test(`${file}: a fresh receiver refuses each rejection vector with its error code`, () => {
      const v = readVector(file);
      for (const rej of v.rejections) {
        const hs = rebuild(spec);
        const receiver = new Session(hs.responder, NodeIdentity.fromPrivateKey(hx(INPUTS.responder_identity_seed)));
        rej.frames.forEach((w: string, k: number) => {
          const frame = v.session.framing === 'json' ? w : hx(w);
          if (k < rej.frames.length - 1) {
            receiver.open(frame);
          } else {
            assert.throws(() => receiver.open(frame), (e: unknown) => e instanceof McpE2eError && e.code === rej.error, `${file}: ${rej.name}`);
            assert.ok(receiver.closed, 'a refused frame ends the session');
          }
        });
      }
    });
  }
});

/** A fresh pair of handshake results for one case (the stored messages replayed through new state machines). */
function rebuild(spec: (typeof CASES)[number]) {
  const initiator = NodeIdentity.fromPrivateKey(hx(INPUTS.initiator_identity_seed));
  const responder = NodeIdentity.fromPrivateKey(hx(INPUTS.responder_identity_seed));
  const i = new Handshake('initiator', initiator, { ...spec.initiator, ephemeralPrivateKey: hx(INPUTS.initiator_ephemeral_private), random: hx(INPUTS.initiator_random) });
  const r = new Handshake('responder', responder, { ...spec.responder, ephemeralPrivateKey: hx(INPUTS.responder_ephemeral_private), random: hx(INPUTS.responder_random) });
  const s2 = r.receive(i.start()).send!;
  const iStep = i.receive(s2);
  const rDone = r.receive(iStep.send!);
  return { initiator: iStep.result!, responder: rDone.result! };
}

// ---------------------------------------------------------------------------------------------
// (c) Independent re-derivation from PROTOCOL.md with raw node:crypto
// ---------------------------------------------------------------------------------------------
// Everything below follows PROTOCOL.md and uses node:crypto only. Labels, codes and layouts are
// written out here from the spec text, not imported from src/protocol.ts.

const ascii = (s: string) => Buffer.from(s, 'ascii');
const SPEC = {
  transcript: ascii('mcp-e2e/1 handshake'),
  responderSignature: ascii('mcp-e2e/1 responder signature\0'),
  initiatorSignature: ascii('mcp-e2e/1 initiator signature\0'),
  responderFinished: ascii('mcp-e2e/1 responder finished\0'),
  initiatorFinished: ascii('mcp-e2e/1 initiator finished\0'),
  finishedKeys: ascii('mcp-e2e/1 finished keys'),
  sessionKeys: ascii('mcp-e2e/1 session keys'),
  keyUpdate: ascii('mcp-e2e/1 key update'),
  frameSignature: ascii('mcp-e2e/1 frame signature\0'),
  framingCode: { json: 0x01, binary: 0x02 } as Record<string, number>,
  direction: { initiator_to_responder: 0x01, responder_to_initiator: 0x02 } as Record<string, number>,
};

const sha256 = (...parts: Buffer[]) => parts.reduce((h, p) => h.update(p), createHash('sha256')).digest();
const hmac = (key: Buffer, ...parts: Buffer[]) => parts.reduce((h, p) => h.update(p), createHmac('sha256', key)).digest();
const hkdf = (ikm: Buffer, salt: Buffer, info: Buffer, len: number) => Buffer.from(hkdfSync('sha256', ikm, salt, info, len));
const u8 = (n: number) => Buffer.of(n);
const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
const u64 = (n: number) => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b; };

// RFC 8410 PKCS#8 wrappers for raw 32-byte private keys.
const pkcs8 = (oid: string, raw: Buffer) => createPrivateKey({ key: Buffer.concat([hx(`302e020100300506032b65${oid}04220420`), raw]), format: 'der', type: 'pkcs8' });
const edPriv = (seed: Buffer) => pkcs8('70', seed);
const xPriv = (scalar: Buffer) => pkcs8('6e', scalar);
const rawPub = (k: KeyObject) => Buffer.from(createPublicKey(k).export({ format: 'jwk' }).x as string, 'base64url');
const okpPub = (crv: 'Ed25519' | 'X25519', raw: Buffer) => createPublicKey({ key: { kty: 'OKP', crv, x: raw.toString('base64url') }, format: 'jwk' });
const nodeIdOf = (pub: Buffer) => sha256(pub).toString('hex');

/** Strict lowercase hex of an exact byte length (§1.1). */
function specHex(value: unknown, bytes: number): Buffer {
  assert.equal(typeof value, 'string');
  assert.match(value as string, new RegExp(`^[0-9a-f]{${2 * bytes}}$`));
  return hx(value as string);
}
const keySet = (o: object) => Object.keys(o).sort().join(',');

describe('(c) independent re-derivation from PROTOCOL.md with node:crypto only', () => {
  const idv = readVector('v1-identity.json');

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

  for (const file of CASE_FILES) {
    test(`${file}: handshake messages, transcript, signatures, MACs and keys (§4-§5)`, () => {
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

      // §4.1: exact key sets and field encodings.
      assert.equal(keySet(m1), 'options,public_key,random,step,type,version');
      assert.equal(keySet(m2), 'identity_key,mac,node_id,options,public_key,random,signature,step,type,version');
      assert.equal(keySet(m3), 'identity_key,mac,node_id,signature,step,type,version');
      assert.equal(keySet(m1.options), 'framings,signatures');
      assert.equal(keySet(m2.options), 'framing,signatures');
      for (const [m, step] of [[m1, 1], [m2, 2], [m3, 3]] as const) {
        assert.equal(m.type, 'key_exchange');
        assert.equal(m.version, 1);
        assert.equal(m.step, step);
      }
      for (const text of [v.handshake.step1, v.handshake.step2, v.handshake.step3]) assert.ok(Buffer.byteLength(text) <= 4096);

      // §4.1 step 1 from the inputs, in the canonical encoding.
      const e_i = rawPub(iEph);
      const r_i = hx(inp.initiator_random);
      const offer = { signatures: inp.initiator_config.signatures as boolean, framings: inp.initiator_config.framings as string[] };
      const step1 = JSON.stringify({ type: 'key_exchange', version: 1, step: 1, public_key: e_i.toString('hex'), random: r_i.toString('hex'), options: offer });
      assert.equal(step1, v.handshake.step1);

      // §4.2: the responder's selection.
      const local = inp.responder_config;
      const framing = offer.framings.find((f) => local.framings.includes(f))!;
      const signatures = offer.signatures || local.signatures;
      assert.deepEqual(m2.options, { signatures, framing });

      // §5.1: the X25519 output, from both sides.
      const e_r = rawPub(rEph);
      const dh = diffieHellman({ privateKey: iEph, publicKey: okpPub('X25519', specHex(m2.public_key, 32)) });
      assert.ok(dh.equals(diffieHellman({ privateKey: rEph, publicKey: okpPub('X25519', specHex(m1.public_key, 32)) })));
      assert.equal(dh.toString('hex'), v.handshake.shared_secret);
      assert.notEqual(dh.toString('hex'), '00'.repeat(32));

      // §5.1: T2 and H2.
      const t2 = Buffer.concat([
        SPEC.transcript,
        u8(1),
        e_i,
        r_i,
        u8(offer.signatures ? 1 : 0),
        u8(offer.framings.length),
        Buffer.from(offer.framings.map((f) => SPEC.framingCode[f]!)),
        e_r,
        hx(inp.responder_random),
        rId,
        sha256(rId),
        u8(signatures ? 1 : 0),
        u8(SPEC.framingCode[framing]!),
      ]);
      assert.equal(t2.length, 216 + offer.framings.length);
      assert.equal(t2.toString('hex'), v.handshake.t2);
      const h2 = sha256(t2);
      assert.equal(h2.toString('hex'), v.handshake.h2);

      // §5.2: finished keys, the responder's signature and MAC; step 2 in the canonical encoding.
      const fk = hkdf(dh, h2, SPEC.finishedKeys, 64);
      const fkR = fk.subarray(0, 32);
      const fkI = fk.subarray(32, 64);
      assert.equal(fkR.toString('hex'), v.handshake.finished_key_responder);
      assert.equal(fkI.toString('hex'), v.handshake.finished_key_initiator);
      const sigR = nodeSign(null, Buffer.concat([SPEC.responderSignature, h2]), edPriv(rSeed));
      const macR = hmac(fkR, SPEC.responderFinished, h2);
      assert.ok(nodeVerify(null, Buffer.concat([SPEC.responderSignature, h2]), okpPub('Ed25519', specHex(m2.identity_key, 32)), specHex(m2.signature, 64)));
      const step2 = JSON.stringify({
        type: 'key_exchange', version: 1, step: 2,
        public_key: e_r.toString('hex'), random: inp.responder_random, identity_key: rId.toString('hex'), node_id: nodeIdOf(rId),
        options: { signatures, framing }, signature: sigR.toString('hex'), mac: macR.toString('hex'),
      });
      assert.equal(step2, v.handshake.step2);

      // §5.1-5.2: T3, H3, the initiator's signature and MAC; step 3.
      const t3 = Buffer.concat([t2, iId, sha256(iId)]);
      assert.equal(t3.toString('hex'), v.handshake.t3);
      const h3 = sha256(t3);
      assert.equal(h3.toString('hex'), v.handshake.h3);
      const sigI = nodeSign(null, Buffer.concat([SPEC.initiatorSignature, h3]), edPriv(iSeed));
      const macI = hmac(fkI, SPEC.initiatorFinished, h3);
      const step3 = JSON.stringify({
        type: 'key_exchange', version: 1, step: 3,
        identity_key: iId.toString('hex'), node_id: nodeIdOf(iId), signature: sigI.toString('hex'), mac: macI.toString('hex'),
      });
      assert.equal(step3, v.handshake.step3);

      // §5.3: session keys and session id; §7.2: the epoch 1 keys.
      const okm = hkdf(dh, h3, SPEC.sessionKeys, 80);
      assert.equal(okm.subarray(0, 32).toString('hex'), v.session.initiator_to_responder_key);
      assert.equal(okm.subarray(32, 64).toString('hex'), v.session.responder_to_initiator_key);
      assert.equal(okm.subarray(64, 80).toString('hex'), v.session.session_id);
      const sid = okm.subarray(64, 80);
      assert.equal(hkdf(okm.subarray(0, 32), sid, SPEC.keyUpdate, 32).toString('hex'), v.session.initiator_to_responder_key_epoch1);
      assert.equal(hkdf(okm.subarray(32, 64), sid, SPEC.keyUpdate, 32).toString('hex'), v.session.responder_to_initiator_key_epoch1);
      assert.equal(v.session.framing, framing);
      assert.equal(v.session.signatures, signatures);
    });

    test(`${file}: frames in both directions, both epochs, rebuilt byte for byte (§6-§7)`, () => {
      const v = readVector(file);
      const sid = hx(v.session.session_id);
      const framing: string = v.session.framing;
      for (const dir of ['initiator_to_responder', 'responder_to_initiator']) {
        const seed = hx(dir === 'initiator_to_responder' ? v.inputs.initiator_identity_seed : v.inputs.responder_identity_seed);
        const signer = edPriv(seed);
        const sender = nodeIdOf(rawPub(signer));
        let key = hx(dir === 'initiator_to_responder' ? v.session.initiator_to_responder_key : v.session.responder_to_initiator_key);
        let epoch = 0;
        for (const [counter, f] of (v.frames[dir] as any[]).entries()) {
          // Sender rule used by the vectors: rotate after rekey_after_frames frames in an epoch.
          if (counter > 0 && counter % v.inputs.rekey_after_frames === 0) {
            key = hkdf(key, sid, SPEC.keyUpdate, 32);
            epoch++;
          }
          assert.equal(f.epoch, epoch);
          assert.equal(f.counter, counter);
          assert.equal(f.key, key.toString('hex'));
          const nonce = Buffer.concat([Buffer.alloc(4), u64(counter)]);
          assert.equal(nonce.toString('hex'), f.nonce);
          const aad = Buffer.concat([sid, u8(SPEC.direction[dir]!), u8(SPEC.framingCode[framing]!), u32(epoch), u64(counter)]);
          assert.equal(aad.length, 30);
          assert.equal(aad.toString('hex'), f.aad);
          const plaintext = Buffer.concat([u8(f.content_type), Buffer.from(f.payload, 'utf8')]);
          assert.equal(plaintext.toString('hex'), f.plaintext);
          const c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 });
          c.setAAD(aad);
          const sealed = Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
          assert.equal(sealed.toString('hex'), f.sealed);
          let signature: Buffer | undefined;
          if (v.session.signatures) {
            const input = Buffer.concat([SPEC.frameSignature, aad, sha256(sealed)]);
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

    test(`${file}: an independent receiver written from §6.6 accepts the frames and refuses each rejection with its code`, () => {
      const v = readVector(file);
      const make = () => specReceiver(v);
      for (const dir of ['initiator_to_responder', 'responder_to_initiator'] as const) {
        const rx = make()[dir];
        for (const f of v.frames[dir]) assert.deepEqual(rx(f.wire), { contentType: f.content_type, payload: f.payload });
      }
      for (const rej of v.rejections) {
        const rx = make().initiator_to_responder;
        rej.frames.slice(0, -1).forEach((w: string) => rx(w));
        assert.throws(() => rx(rej.frames.at(-1)), (e: unknown) => e instanceof SpecError && e.code === rej.error, `${file}: ${rej.name}`);
      }
    });
  }
});

class SpecError extends Error {
  constructor(readonly code: string) {
    super(code);
  }
}

/**
 * A receiver written from PROTOCOL.md §6.6 alone, for both directions of one vector's session.
 * Returns functions that take a wire frame (JSON text or binary as hex) and return the content type and payload.
 */
function specReceiver(v: any) {
  const sid = hx(v.session.session_id);
  const framing: string = v.session.framing;
  const signed: boolean = v.session.signatures;
  const MAX_MESSAGE = 16 * 1024 * 1024;
  const build = (dir: 'initiator_to_responder' | 'responder_to_initiator') => {
    const peer = dir === 'initiator_to_responder' ? v.identities.initiator : v.identities.responder;
    const peerKey = okpPub('Ed25519', hx(peer.public_key));
    let key = hx(dir === 'initiator_to_responder' ? v.session.initiator_to_responder_key : v.session.responder_to_initiator_key);
    let epoch = 0;
    let next = 0;
    let closed = false;
    const fail = (code: string): never => {
      closed = true;
      throw new SpecError(code);
    };
    return (wire: string) => {
      if (closed) throw new SpecError('ERR_SESSION_CLOSED');
      let e: number;
      let counter: number;
      let sealed: Buffer;
      let sig: Buffer | undefined;
      if (framing === 'json') {
        let d: any;
        try {
          d = JSON.parse(wire);
        } catch {
          return fail('ERR_FRAME_MALFORMED');
        }
        const keys = keySet(d);
        if (keys !== 'ciphertext,epoch,nonce,sender,type' && keys !== 'ciphertext,epoch,nonce,sender,signature,type') return fail('ERR_FRAME_MALFORMED');
        if (d.type !== 'encrypted') return fail('ERR_FRAME_MALFORMED');
        if (!Number.isInteger(d.epoch) || d.epoch < 0 || d.epoch > 0xffffffff) return fail('ERR_FRAME_MALFORMED');
        if (typeof d.nonce !== 'string' || !/^00000000[0-9a-f]{16}$/.test(d.nonce)) return fail('ERR_FRAME_MALFORMED');
        const c = hx(d.nonce).readBigUInt64BE(4);
        if (c > BigInt(Number.MAX_SAFE_INTEGER)) return fail('ERR_FRAME_MALFORMED');
        if (typeof d.ciphertext !== 'string' || !/^([0-9a-f]{2}){17,}$/.test(d.ciphertext)) return fail('ERR_FRAME_MALFORMED');
        if ('signature' in d && (typeof d.signature !== 'string' || !/^[0-9a-f]{128}$/.test(d.signature))) return fail('ERR_FRAME_MALFORMED');
        if (typeof d.sender !== 'string' || !/^[0-9a-f]{64}$/.test(d.sender)) return fail('ERR_FRAME_MALFORMED');
        if (d.sender !== peer.node_id) return fail('ERR_FRAME_SENDER');
        e = d.epoch;
        counter = Number(c);
        sealed = hx(d.ciphertext);
        sig = 'signature' in d ? hx(d.signature) : undefined;
      } else {
        const b = hx(wire);
        if (b.length < 14 + 17) return fail('ERR_FRAME_MALFORMED');
        if (b[0] !== 0x01) return fail('ERR_FRAME_MALFORMED');
        if ((b[1]! & 0xfe) !== 0) return fail('ERR_FRAME_MALFORMED');
        e = b.readUInt32BE(2);
        const c = b.readBigUInt64BE(6);
        if (c > BigInt(Number.MAX_SAFE_INTEGER)) return fail('ERR_FRAME_MALFORMED');
        counter = Number(c);
        if (b[1]! & 0x01) {
          if (b.length < 14 + 64 + 17) return fail('ERR_FRAME_MALFORMED');
          sig = b.subarray(14, 78);
          sealed = b.subarray(78);
        } else {
          sealed = b.subarray(14);
        }
      }
      if (sealed.length - 17 > MAX_MESSAGE) return fail('ERR_FRAME_TOO_LARGE');
      if (e !== epoch && e !== epoch + 1) return fail('ERR_FRAME_EPOCH');
      if (counter !== next) return fail('ERR_FRAME_COUNTER');
      if (signed !== (sig !== undefined)) return fail('ERR_FRAME_SIGNATURE');
      // (Per-epoch limits of §7.1 cannot be reached by these short vectors.)
      const k = e === epoch ? key : hkdf(key, sid, SPEC.keyUpdate, 32);
      const aad = Buffer.concat([sid, u8(SPEC.direction[dir]!), u8(SPEC.framingCode[framing]!), u32(e), u64(counter)]);
      const nonce = Buffer.concat([Buffer.alloc(4), u64(counter)]);
      let plaintext: Buffer;
      try {
        const d = createDecipheriv('aes-256-gcm', k, nonce, { authTagLength: 16 });
        d.setAAD(aad);
        d.setAuthTag(sealed.subarray(sealed.length - 16));
        plaintext = Buffer.concat([d.update(sealed.subarray(0, sealed.length - 16)), d.final()]);
      } catch {
        return fail('ERR_FRAME_DECRYPT');
      }
      if (sig && !nodeVerify(null, Buffer.concat([SPEC.frameSignature, aad, sha256(sealed)]), peerKey, sig)) return fail('ERR_FRAME_SIGNATURE');
      const contentType = plaintext[0]!;
      if (contentType !== 0x01 && contentType !== 0x02) return fail('ERR_FRAME_CONTENT_TYPE');
      key = k;
      epoch = e;
      next++;
      return { contentType, payload: plaintext.subarray(1).toString('utf8') };
    };
  };
  return { initiator_to_responder: build('initiator_to_responder'), responder_to_initiator: build('responder_to_initiator') };
}
