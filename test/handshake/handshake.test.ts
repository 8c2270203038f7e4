import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { NodeIdentity } from '../../src/identity/identity.js';
import { Handshake, selectOptions, type HandshakeConfig } from '../../src/handshake/handshake.js';
import { McpE2eError } from '../../src/errors.js';
import { LABEL } from '../../src/protocol.js';
import { handshakePair, throwsCode, flipBitText } from '../helpers/pair.js';
import { handshakeSecrets, initiatorProof, responderMac, sealStep3 } from '../helpers/craft.js';

const alice = NodeIdentity.fromPrivateKey(Buffer.alloc(32, 0xa1));
const bob = NodeIdentity.fromPrivateKey(Buffer.alloc(32, 0xb0));
const eve = NodeIdentity.fromPrivateKey(Buffer.alloc(32, 0xee));
const fixedI = { ephemeralPrivateKey: Buffer.alloc(32, 0x11), random: Buffer.alloc(32, 0x12) };
const fixedR = { ephemeralPrivateKey: Buffer.alloc(32, 0x21), random: Buffer.alloc(32, 0x22) };

/** The three messages of one deterministic handshake. */
function fixedTranscript() {
  return handshakePair(fixedI, fixedR, { alice, bob }).messages;
}

function edit(message: string, change: (doc: Record<string, unknown>) => void): string {
  const doc = JSON.parse(message);
  change(doc);
  return JSON.stringify(doc);
}

test('a handshake gives both sides the same session, opposite keys and each other\'s identity', () => {
  const p = handshakePair({}, {}, { alice, bob });
  assert.ok(p.initiator.sessionId.equals(p.responder.sessionId));
  assert.equal(p.initiator.sessionId.length, 16);
  assert.ok(p.initiator.transcriptHash.equals(p.responder.transcriptHash));
  assert.ok(p.initiator.sendKey.equals(p.responder.recvKey));
  assert.ok(p.initiator.recvKey.equals(p.responder.sendKey));
  assert.ok(!p.initiator.sendKey.equals(p.initiator.recvKey));
  assert.equal(p.initiator.peer.nodeId, bob.nodeId);
  assert.equal(p.responder.peer.nodeId, alice.nodeId);
  assert.deepEqual([p.initiator.framing, p.initiator.signatures], ['binary', true]);
  assert.deepEqual([p.responder.framing, p.responder.signatures], ['binary', true]);
});

test('messages use the seed vocabulary and exact field sets; step 3 carries no identity in clear', () => {
  const texts = fixedTranscript();
  const [m1, m2, m3] = texts.map((m) => JSON.parse(m));
  assert.deepEqual(Object.keys(m1), ['type', 'version', 'step', 'versions', 'public_key', 'random', 'options']);
  assert.deepEqual(Object.keys(m2), ['type', 'version', 'step', 'public_key', 'random', 'identity_key', 'node_id', 'options', 'signature', 'mac']);
  assert.deepEqual(Object.keys(m3), ['type', 'version', 'step', 'ciphertext']);
  for (const m of [m1, m2, m3]) assert.equal(m.type, 'key_exchange');
  assert.deepEqual(m1.versions, [2]);
  assert.equal(m2.node_id, bob.nodeId);
  assert.equal(m3.ciphertext.length, 2 * (128 + 16));
  // A passive observer sees the responder's identity, never the initiator's.
  const all = texts.join('');
  assert.ok(all.includes(bob.publicKey.toString('hex')));
  for (const secret of [alice.publicKey.toString('hex'), alice.nodeId]) assert.ok(!all.includes(secret));
});

test('every handshake is fresh: new ephemeral keys and session keys each time', () => {
  const a = handshakePair({}, {}, { alice, bob });
  const b = handshakePair({}, {}, { alice, bob });
  assert.ok(!a.initiator.sessionId.equals(b.initiator.sessionId));
  assert.ok(!a.initiator.sendKey.equals(b.initiator.sendKey));
  assert.notEqual(JSON.parse(a.messages[0]).public_key, JSON.parse(b.messages[0]).public_key);
});

test('fixed inputs give a byte-identical transcript (pure state machine)', () => {
  assert.deepEqual(fixedTranscript(), fixedTranscript());
});

test('option negotiation: framing from the initiator\'s order, signatures if either side wants them', () => {
  assert.deepEqual(selectOptions({ signatures: false, framings: ['json', 'binary'] }, { signatures: false, framings: ['binary', 'json'] }), { signatures: false, framing: 'json' });
  assert.deepEqual(selectOptions({ signatures: false, framings: ['binary'] }, { signatures: true, framings: ['binary', 'json'] }), { signatures: true, framing: 'binary' });
  throwsCode(() => selectOptions({ signatures: true, framings: ['binary'] }, { signatures: true, framings: ['json'] }), 'ERR_HANDSHAKE_OPTIONS');
  const cases: Array<[HandshakeConfig, HandshakeConfig, string, boolean]> = [
    [{ signatures: false, framings: ['json'] }, { signatures: false }, 'json', false],
    [{ signatures: false, framings: ['binary', 'json'] }, { signatures: true }, 'binary', true],
    [{ signatures: true, framings: ['json', 'binary'] }, { signatures: false, framings: ['binary'] }, 'binary', true],
  ];
  for (const [i, r, framing, sigs] of cases) {
    const p = handshakePair(i, r);
    assert.deepEqual([p.initiator.framing, p.initiator.signatures, p.responder.framing, p.responder.signatures], [framing, sigs, framing, sigs]);
  }
});

test('every single-bit flip of every handshake message is refused', () => {
  const [m1, m2, m3] = fixedTranscript();
  let cases = 0;
  const expectFailure = (run: () => void, where: string) => {
    cases++;
    try {
      run();
    } catch (err) {
      assert.ok(err instanceof McpE2eError, `${where}: ${String(err)}`);
      assert.match(err.code, /^ERR_HANDSHAKE_/, where);
      return;
    }
    assert.fail(`${where}: tampered handshake was accepted`);
  };
  for (let i = 0; i < Buffer.byteLength(m1); i++) {
    for (let bit = 0; bit < 8; bit++) {
      const bad = flipBitText(m1, i, bit);
      expectFailure(() => {
        // A flipped step 1 may still parse; then the initiator must refuse step 2.
        const m2x = new Handshake('responder', bob, fixedR).receive(bad).send!;
        const ini = new Handshake('initiator', alice, fixedI);
        ini.start();
        ini.receive(m2x);
      }, `m1 byte ${i} bit ${bit}`);
    }
  }
  for (let i = 0; i < Buffer.byteLength(m2); i++) {
    for (let bit = 0; bit < 8; bit++) {
      const ini = new Handshake('initiator', alice, fixedI);
      ini.start();
      expectFailure(() => ini.receive(flipBitText(m2, i, bit)), `m2 byte ${i} bit ${bit}`);
    }
  }
  for (let i = 0; i < Buffer.byteLength(m3); i++) {
    for (let bit = 0; bit < 8; bit++) {
      const resp = new Handshake('responder', bob, fixedR);
      resp.receive(m1);
      expectFailure(() => resp.receive(flipBitText(m3, i, bit)), `m3 byte ${i} bit ${bit}`);
    }
  }
  assert.equal(cases, 8 * (m1.length + m2.length + m3.length));
});

test('specific tampering maps to specific codes, in the validation order of PROTOCOL.md §4.3', () => {
  const [m1, m2, m3] = fixedTranscript();
  const initiatorGets = (m: string) => {
    const ini = new Handshake('initiator', alice, fixedI);
    ini.start();
    return () => ini.receive(m);
  };
  const responderGetsConfirm = (m: string) => {
    const r = new Handshake('responder', bob, fixedR);
    r.receive(m1);
    return () => r.receive(m);
  };
  // Step 2
  throwsCode(initiatorGets(edit(m2, (d) => (d.node_id = eve.nodeId))), 'ERR_HANDSHAKE_NODE_ID_MISMATCH');
  throwsCode(initiatorGets(edit(m2, (d) => (d.identity_key = eve.publicKey.toString('hex')))), 'ERR_HANDSHAKE_NODE_ID_MISMATCH');
  throwsCode(initiatorGets(edit(m2, (d) => (d.public_key = (d.public_key as string).slice(2)))), 'ERR_HANDSHAKE_MALFORMED');
  // Edited values change H2: the MAC (checked before the signature) fails.
  throwsCode(initiatorGets(edit(m2, (d) => (d.random = 'ab'.repeat(32)))), 'ERR_HANDSHAKE_BAD_MAC');
  throwsCode(initiatorGets(edit(m2, (d) => (d.mac = '00'.repeat(32)))), 'ERR_HANDSHAKE_BAD_MAC');
  throwsCode(initiatorGets(edit(m2, (d) => (d.signature = '00'.repeat(64)))), 'ERR_HANDSHAKE_BAD_SIGNATURE');
  throwsCode(initiatorGets(edit(m2, (d) => (d.version = 3))), 'ERR_HANDSHAKE_UNSUPPORTED_VERSION');
  throwsCode(initiatorGets(edit(m2, (d) => (d.extra = 1))), 'ERR_HANDSHAKE_MALFORMED');
  throwsCode(initiatorGets(edit(m2, (d) => (d.public_key = (d.public_key as string).toUpperCase()))), 'ERR_HANDSHAKE_MALFORMED');
  throwsCode(initiatorGets(m2.slice(0, -1)), 'ERR_HANDSHAKE_MALFORMED');
  throwsCode(initiatorGets('x'.repeat(5000)), 'ERR_FRAME_TOO_LARGE');
  // Not the canonical encoding: whitespace, another member order, 2.0, a duplicate member.
  throwsCode(initiatorGets(JSON.stringify(JSON.parse(m2), null, 1)), 'ERR_HANDSHAKE_MALFORMED');
  throwsCode(initiatorGets(m2.replace('"step":2', '"step":2.0')), 'ERR_HANDSHAKE_MALFORMED');
  throwsCode(initiatorGets(m2.replace('{"type":"key_exchange",', '{"type":"key_exchange","type":"key_exchange",')), 'ERR_HANDSHAKE_MALFORMED');
  throwsCode(initiatorGets(edit(m2, (d) => { const { type, ...rest } = d; Object.assign(d, rest); delete d.type; d.type = type; })), 'ERR_HANDSHAKE_MALFORMED');
  // Identity keys that break the rule of §1.3, with a node id that matches them.
  const hexKey = (h: string) => (d: Record<string, unknown>) => {
    d.identity_key = h;
    d.node_id = createHash('sha256').update(Buffer.from(h, 'hex')).digest('hex');
  };
  throwsCode(initiatorGets(edit(m2, hexKey('01' + '00'.repeat(31)))), 'ERR_HANDSHAKE_BAD_KEY'); // small order
  throwsCode(initiatorGets(edit(m2, hexKey('f1' + 'ff'.repeat(30) + '7f'))), 'ERR_HANDSHAKE_BAD_KEY'); // y >= p
  // Step 3: the ciphertext is authenticated under a key from the shared secret.
  const ct = JSON.parse(m3).ciphertext as string;
  throwsCode(responderGetsConfirm(edit(m3, (d) => (d.ciphertext = (ct[0] === '0' ? '1' : '0') + ct.slice(1)))), 'ERR_HANDSHAKE_BAD_MAC');
  throwsCode(responderGetsConfirm(edit(m3, (d) => (d.ciphertext = ct.slice(0, -2)))), 'ERR_HANDSHAKE_MALFORMED');
  // Behind a valid encryption (built here with the responder's ephemeral key): a bad key, a bad MAC, a bad signature.
  const secrets = handshakeSecrets(m1, m2, fixedR.ephemeralPrivateKey, 'responder');
  const { mac, h3 } = initiatorProof(secrets, alice.publicKey);
  const sig = alice.sign(LABEL.INITIATOR_SIGNATURE, h3);
  assert.ok(responderGetsConfirm(sealStep3(secrets, Buffer.concat([alice.publicKey, sig, mac])))().result, 'the crafted step 3 is genuine');
  throwsCode(responderGetsConfirm(sealStep3(secrets, Buffer.concat([Buffer.from('01' + '00'.repeat(31), 'hex'), sig, mac]))), 'ERR_HANDSHAKE_BAD_KEY');
  throwsCode(responderGetsConfirm(sealStep3(secrets, Buffer.concat([alice.publicKey, sig, Buffer.alloc(32)]))), 'ERR_HANDSHAKE_BAD_MAC');
  throwsCode(responderGetsConfirm(sealStep3(secrets, Buffer.concat([alice.publicKey, Buffer.alloc(64, 1), mac]))), 'ERR_HANDSHAKE_BAD_SIGNATURE');
  // Both wrong: the cheap MAC is checked before the Ed25519 signature (§4.3),
  // so a peer without the shared secret never costs us a verification.
  throwsCode(responderGetsConfirm(sealStep3(secrets, Buffer.concat([alice.publicKey, Buffer.alloc(64, 1), Buffer.alloc(32)]))), 'ERR_HANDSHAKE_BAD_MAC');
  // Step 1
  throwsCode(() => new Handshake('responder', bob).receive(edit(m1, (d) => (d.version = 1))), 'ERR_HANDSHAKE_UNSUPPORTED_VERSION');
  throwsCode(() => new Handshake('responder', bob).receive(edit(m1, (d) => ((d.options as { framings: string[] }).framings = ['xml']))), 'ERR_HANDSHAKE_OPTIONS');
  throwsCode(() => new Handshake('responder', bob).receive(edit(m1, (d) => ((d.options as { framings: string[] }).framings = ['json', 'json']))), 'ERR_HANDSHAKE_OPTIONS');
  throwsCode(() => new Handshake('responder', bob).receive(edit(m1, (d) => (d.type = 'encrypted'))), 'ERR_HANDSHAKE_MALFORMED');
  throwsCode(() => new Handshake('responder', bob).receive(edit(m1, (d) => (d.public_key = '00'.repeat(33)))), 'ERR_HANDSHAKE_MALFORMED');
  for (const versions of [[], [1], [2, 3], [2, 2], [2, 0], [256, 2], ['2']]) {
    throwsCode(() => new Handshake('responder', bob).receive(edit(m1, (d) => (d.versions = versions))), 'ERR_HANDSHAKE_MALFORMED');
  }
});

test('versions: an initiator that also speaks a later version is refused on a version 2 connection by a responder that speaks it too (downgrade)', () => {
  const step1 = new Handshake('initiator', alice, { versions: [3, 2] }).start();
  throwsCode(() => new Handshake('responder', bob, { versions: [3, 2] }).receive(step1), 'ERR_HANDSHAKE_DOWNGRADE');
  // A responder without version 3 has nothing better to offer: the handshake goes on, with [3, 2] in the transcript.
  const ini = new Handshake('initiator', alice, { versions: [3, 2] });
  const res = new Handshake('responder', bob);
  const step2 = res.receive(ini.start()).send!;
  const done = ini.receive(step2);
  assert.ok(res.receive(done.send!).result);
  // An attacker who edits the list (to hide version 3 from such a responder) breaks the transcript.
  const ini2 = new Handshake('initiator', alice, { versions: [3, 2] });
  const stripped = edit(ini2.start(), (d) => (d.versions = [2]));
  throwsCode(() => ini2.receive(new Handshake('responder', bob, { versions: [3, 2] }).receive(stripped).send!), 'ERR_HANDSHAKE_BAD_MAC');
});

test('tampered negotiated options fail the handshake', () => {
  // A man in the middle turns off signatures in the offer: the responder,
  // which does not insist on them, agrees; the initiator refuses.
  const ini = new Handshake('initiator', alice, { signatures: true });
  const m1 = edit(ini.start(), (d) => ((d.options as { signatures: boolean }).signatures = false));
  const m2 = new Handshake('responder', bob, { signatures: false }).receive(m1).send!;
  throwsCode(() => ini.receive(m2), 'ERR_HANDSHAKE_OPTIONS');

  // The MITM reorders the framings so the responder picks json: the
  // selection is allowed, but the transcripts differ, so the MAC fails.
  const ini2 = new Handshake('initiator', alice, { framings: ['binary', 'json'] });
  const m1b = edit(ini2.start(), (d) => ((d.options as { framings: string[] }).framings = ['json', 'binary']));
  const m2b = new Handshake('responder', bob).receive(m1b).send!;
  assert.equal(JSON.parse(m2b).options.framing, 'json');
  throwsCode(() => ini2.receive(m2b), 'ERR_HANDSHAKE_BAD_MAC');

  // The MITM rewrites the selection in step 2.
  const ini3 = new Handshake('initiator', alice);
  const m2c = new Handshake('responder', bob).receive(ini3.start()).send!;
  throwsCode(() => ini3.receive(edit(m2c, (d) => ((d.options as { framing: string }).framing = 'json'))), 'ERR_HANDSHAKE_BAD_MAC');
  // ...or turns signatures off in the selection.
  const ini4 = new Handshake('initiator', alice);
  const m2d = new Handshake('responder', bob).receive(ini4.start()).send!;
  throwsCode(() => ini4.receive(edit(m2d, (d) => ((d.options as { signatures: boolean }).signatures = false))), 'ERR_HANDSHAKE_OPTIONS');
});

test('low-order X25519 public keys are refused (RFC 7748 §6.1 / small-subgroup points)', () => {
  const p = 2n ** 255n - 19n;
  const le = (n: bigint) => Buffer.from(n.toString(16).padStart(64, '0'), 'hex').reverse().toString('hex');
  const lowOrder = [
    0n,
    1n,
    // Points of order 8 (from the libsodium/curve25519 blocklist).
    BigInt('0x' + Buffer.from('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800', 'hex').reverse().toString('hex')),
    BigInt('0x' + Buffer.from('5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157', 'hex').reverse().toString('hex')),
    p - 1n,
    p,
    p + 1n,
  ];
  const [m1] = fixedTranscript();
  for (const u of lowOrder) {
    throwsCode(() => new Handshake('responder', bob).receive(edit(m1, (d) => (d.public_key = le(u)))), 'ERR_HANDSHAKE_LOW_ORDER_KEY');
  }
  // And on the initiator's side, in step 2.
  const ini = new Handshake('initiator', alice, fixedI);
  ini.start();
  const [, m2] = fixedTranscript();
  throwsCode(() => ini.receive(edit(m2, (d) => (d.public_key = le(0n)))), 'ERR_HANDSHAKE_LOW_ORDER_KEY');
});

test('repeated, out-of-order and reflected messages are refused', () => {
  const [m1, m2, m3] = fixedTranscript();
  const r = new Handshake('responder', bob, fixedR);
  r.receive(m1);
  throwsCode(() => r.receive(m1), 'ERR_HANDSHAKE_UNEXPECTED_MESSAGE');
  throwsCode(() => r.receive(m3), 'ERR_HANDSHAKE_UNEXPECTED_MESSAGE'); // failed state is terminal

  throwsCode(() => new Handshake('responder', bob).receive(m2), 'ERR_HANDSHAKE_UNEXPECTED_MESSAGE');
  throwsCode(() => new Handshake('responder', bob).receive(m3), 'ERR_HANDSHAKE_UNEXPECTED_MESSAGE');
  const ini = new Handshake('initiator', alice, fixedI);
  throwsCode(() => ini.receive(m2), 'ERR_HANDSHAKE_UNEXPECTED_MESSAGE'); // before start()
  const ini2 = new Handshake('initiator', alice, fixedI);
  ini2.start();
  throwsCode(() => ini2.start(), 'ERR_HANDSHAKE_UNEXPECTED_MESSAGE');
  const ini3 = new Handshake('initiator', alice, fixedI);
  ini3.start();
  throwsCode(() => ini3.receive(m1), 'ERR_HANDSHAKE_UNEXPECTED_MESSAGE'); // our own step 1 reflected
  const ini4 = new Handshake('initiator', alice, fixedI);
  ini4.start();
  ini4.receive(m2);
  throwsCode(() => ini4.receive(m2), 'ERR_HANDSHAKE_UNEXPECTED_MESSAGE'); // step 2 replayed after completion
  // A "responder" that echoes our ephemeral key.
  const ini5 = new Handshake('initiator', alice, fixedI);
  const own = JSON.parse(ini5.start()).public_key;
  throwsCode(() => ini5.receive(edit(m2, (d) => (d.public_key = own))), 'ERR_HANDSHAKE_REFLECTION');
});

test('a recorded step 3 cannot be replayed into a new handshake', () => {
  const [m1, , m3] = fixedTranscript();
  // Bob's new handshake has fresh randomness: the old confirm no longer matches.
  const r = new Handshake('responder', bob);
  r.receive(m1);
  throwsCode(() => r.receive(m3), 'ERR_HANDSHAKE_BAD_MAC');
});

test('identity misbinding: a relaying attacker cannot claim the initiator\'s handshake as its own', () => {
  // Eve relays Alice's steps 1 and 2 with Bob, then replaces step 3 by her
  // own identity and a valid signature over the transcript naming her.
  // Without the shared secret she can neither seal step 3 nor make the
  // finished MAC; even given the step 3 key (here: computed from Bob's
  // ephemeral key, which she does not have), the MAC still refuses her.
  const [m1, m2, m3] = fixedTranscript();
  const secrets = handshakeSecrets(m1, m2, fixedR.ephemeralPrivateKey, 'responder');
  const { h3 } = initiatorProof(secrets, eve.publicKey);
  const eveSig = eve.sign(LABEL.INITIATOR_SIGNATURE, h3);
  const guessedMac = createHmac('sha256', Buffer.alloc(32)).update(LABEL.INITIATOR_FINISHED).update(h3).digest();
  const withKey = (k: Buffer) => sealStep3({ ...secrets, step3Key: k }, Buffer.concat([eve.publicKey, eveSig, guessedMac]));
  const responder = () => {
    const r = new Handshake('responder', bob, fixedR);
    r.receive(m1);
    return r;
  };
  const r1 = responder();
  throwsCode(() => r1.receive(withKey(Buffer.alloc(32, 7))), 'ERR_HANDSHAKE_BAD_MAC');
  const r2 = responder();
  throwsCode(() => r2.receive(withKey(secrets.step3Key)), 'ERR_HANDSHAKE_BAD_MAC');
  // Sanity: the genuine step 3 is accepted.
  assert.ok(responder().receive(m3).result);
});

test('a man in the middle substituting its own ephemeral key cannot complete either side', () => {
  const ini = new Handshake('initiator', alice);
  const m1 = ini.start();
  const eveKey = Buffer.alloc(32, 0x5e);
  // Eve answers Alice herself but claims Bob's identity. She shares the secret
  // with Alice, so she can make the MAC for the transcript naming Bob; she
  // cannot sign as Bob.
  const m2 = new Handshake('responder', eve, { ephemeralPrivateKey: eveKey }).receive(m1).send!;
  const forged = edit(m2, (d) => {
    d.identity_key = bob.publicKey.toString('hex');
    d.node_id = bob.nodeId;
  });
  const remac = edit(forged, (d) => (d.mac = responderMac(handshakeSecrets(m1, forged, eveKey, 'responder')).toString('hex')));
  throwsCode(() => ini.receive(remac), 'ERR_HANDSHAKE_BAD_SIGNATURE');
});

test('constructor argument mistakes are TypeError/RangeError', () => {
  assert.throws(() => new Handshake('initiator', alice, { framings: [] }), RangeError);
  assert.throws(() => new Handshake('initiator', alice, { framings: ['json', 'json'] }), RangeError);
  assert.throws(() => new Handshake('initiator', alice, { random: Buffer.alloc(5) }), RangeError);
  assert.throws(() => new Handshake('initiator', alice, { ephemeralPrivateKey: Buffer.alloc(5) }), RangeError);
});
