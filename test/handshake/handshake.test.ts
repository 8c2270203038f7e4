import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { NodeIdentity } from '../../src/identity/identity.js';
import { Handshake, selectOptions, type HandshakeConfig } from '../../src/handshake/handshake.js';
import { McpE2eError } from '../../src/errors.js';
import { handshakePair, throwsCode, flipBitText } from '../helpers/pair.js';

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

test('messages use the seed vocabulary and exact field sets', () => {
  const [m1, m2, m3] = fixedTranscript().map((m) => JSON.parse(m));
  assert.deepEqual(Object.keys(m1), ['type', 'version', 'step', 'public_key', 'random', 'options']);
  assert.deepEqual(Object.keys(m2), ['type', 'version', 'step', 'public_key', 'random', 'identity_key', 'node_id', 'options', 'signature', 'mac']);
  assert.deepEqual(Object.keys(m3), ['type', 'version', 'step', 'identity_key', 'node_id', 'signature', 'mac']);
  for (const m of [m1, m2, m3]) assert.equal(m.type, 'key_exchange');
  assert.equal(m2.node_id, bob.nodeId);
  assert.equal(m3.node_id, alice.nodeId);
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

test('specific tampering maps to specific codes', () => {
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
  throwsCode(initiatorGets(edit(m2, (d) => (d.public_key = (d.public_key as string).slice(2)))), 'ERR_HANDSHAKE_BAD_KEY');
  throwsCode(initiatorGets(edit(m2, (d) => (d.random = 'ab'.repeat(32)))), 'ERR_HANDSHAKE_BAD_SIGNATURE');
  throwsCode(initiatorGets(edit(m2, (d) => (d.mac = '00'.repeat(32)))), 'ERR_HANDSHAKE_BAD_MAC');
  throwsCode(initiatorGets(edit(m2, (d) => (d.signature = '00'.repeat(64)))), 'ERR_HANDSHAKE_BAD_SIGNATURE');
  throwsCode(initiatorGets(edit(m2, (d) => (d.version = 2))), 'ERR_HANDSHAKE_UNSUPPORTED_VERSION');
  throwsCode(initiatorGets(edit(m2, (d) => (d.extra = 1))), 'ERR_HANDSHAKE_MALFORMED');
  throwsCode(initiatorGets(edit(m2, (d) => (d.public_key = (d.public_key as string).toUpperCase()))), 'ERR_HANDSHAKE_MALFORMED');
  throwsCode(initiatorGets(m2.slice(0, -1)), 'ERR_HANDSHAKE_MALFORMED');
  throwsCode(initiatorGets('x'.repeat(5000)), 'ERR_HANDSHAKE_MALFORMED');
  // Step 3
  throwsCode(responderGetsConfirm(edit(m3, (d) => (d.node_id = eve.nodeId))), 'ERR_HANDSHAKE_NODE_ID_MISMATCH');
  throwsCode(responderGetsConfirm(edit(m3, (d) => (d.mac = '00'.repeat(32)))), 'ERR_HANDSHAKE_BAD_MAC');
  throwsCode(responderGetsConfirm(edit(m3, (d) => (d.signature = 'ff'.repeat(64)))), 'ERR_HANDSHAKE_BAD_SIGNATURE');
  throwsCode(responderGetsConfirm(edit(m3, (d) => (d.identity_key = (d.identity_key as string) + '00'))), 'ERR_HANDSHAKE_BAD_KEY');
  // Step 1
  throwsCode(() => new Handshake('responder', bob).receive(edit(m1, (d) => (d.version = 0))), 'ERR_HANDSHAKE_UNSUPPORTED_VERSION');
  throwsCode(() => new Handshake('responder', bob).receive(edit(m1, (d) => ((d.options as { framings: string[] }).framings = ['xml']))), 'ERR_HANDSHAKE_OPTIONS');
  throwsCode(() => new Handshake('responder', bob).receive(edit(m1, (d) => ((d.options as { framings: string[] }).framings = ['json', 'json']))), 'ERR_HANDSHAKE_OPTIONS');
  throwsCode(() => new Handshake('responder', bob).receive(edit(m1, (d) => (d.type = 'encrypted'))), 'ERR_HANDSHAKE_MALFORMED');
  throwsCode(() => new Handshake('responder', bob).receive(edit(m1, (d) => (d.public_key = '00'.repeat(33)))), 'ERR_HANDSHAKE_BAD_KEY');
});

test('tampered negotiated options fail the handshake', () => {
  // A man in the middle turns off signatures in the offer: the responder,
  // which does not insist on them, agrees; the initiator refuses.
  const ini = new Handshake('initiator', alice, { signatures: true });
  const m1 = edit(ini.start(), (d) => ((d.options as { signatures: boolean }).signatures = false));
  const m2 = new Handshake('responder', bob, { signatures: false }).receive(m1).send!;
  throwsCode(() => ini.receive(m2), 'ERR_HANDSHAKE_OPTIONS');

  // The MITM reorders the framings so the responder picks json: the
  // selection is allowed, but the transcripts differ, so the signature fails.
  const ini2 = new Handshake('initiator', alice, { framings: ['binary', 'json'] });
  const m1b = edit(ini2.start(), (d) => ((d.options as { framings: string[] }).framings = ['json', 'binary']));
  const m2b = new Handshake('responder', bob).receive(m1b).send!;
  assert.equal(JSON.parse(m2b).options.framing, 'json');
  throwsCode(() => ini2.receive(m2b), 'ERR_HANDSHAKE_BAD_SIGNATURE');

  // The MITM rewrites the selection in step 2.
  const ini3 = new Handshake('initiator', alice);
  const m2c = new Handshake('responder', bob).receive(ini3.start()).send!;
  throwsCode(() => ini3.receive(edit(m2c, (d) => ((d.options as { framing: string }).framing = 'json'))), 'ERR_HANDSHAKE_BAD_SIGNATURE');
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
  throwsCode(() => r.receive(m3), 'ERR_HANDSHAKE_BAD_SIGNATURE');
});

test('identity misbinding: a relaying attacker cannot claim the initiator\'s handshake as its own', () => {
  // Eve relays Alice's steps 1 and 2 with Bob, then replaces step 3 with her
  // own identity and a valid signature over the public transcript. Without
  // the shared secret she cannot make the finished MAC, so Bob refuses.
  const [m1, m2, m3] = fixedTranscript();
  const d1 = JSON.parse(m1);
  const d2 = JSON.parse(m2);
  const hex = (s: string) => Buffer.from(s, 'hex');
  const code: Record<string, number> = { json: 1, binary: 2 };
  const t2 = Buffer.concat([
    Buffer.from('mcp-e2e/1 handshake'),
    Buffer.of(1),
    hex(d1.public_key),
    hex(d1.random),
    Buffer.of(d1.options.signatures ? 1 : 0, d1.options.framings.length, ...d1.options.framings.map((f: string) => code[f])),
    hex(d2.public_key),
    hex(d2.random),
    hex(d2.identity_key),
    hex(d2.node_id),
    Buffer.of(d2.options.signatures ? 1 : 0, code[d2.options.framing]!),
  ]);
  const h3 = createHash('sha256').update(t2).update(eve.publicKey).update(hex(eve.nodeId)).digest();
  const forged = edit(m3, (d) => {
    d.identity_key = eve.publicKey.toString('hex');
    d.node_id = eve.nodeId;
    d.signature = eve.sign(Buffer.from('mcp-e2e/1 initiator signature\0'), h3).toString('hex');
    // Best guesses without the secret: Alice's MAC, or a MAC under a made-up key.
    d.mac = createHmac('sha256', Buffer.alloc(32)).update('mcp-e2e/1 initiator finished\0').update(h3).digest('hex');
  });
  const r = new Handshake('responder', bob, fixedR);
  r.receive(m1);
  throwsCode(() => r.receive(forged), 'ERR_HANDSHAKE_BAD_MAC');
  const withAlicesMac = edit(forged, (d) => (d.mac = JSON.parse(m3).mac));
  const r2 = new Handshake('responder', bob, fixedR);
  r2.receive(m1);
  throwsCode(() => r2.receive(withAlicesMac), 'ERR_HANDSHAKE_BAD_MAC');
  // Sanity: the signature part of the forgery was valid, so the MAC is what stopped it.
  const r3 = new Handshake('responder', bob, fixedR);
  r3.receive(m1);
  assert.ok(r3.receive(m3).result);
});

test('a man in the middle substituting its own ephemeral key cannot complete either side', () => {
  const ini = new Handshake('initiator', alice);
  const m1 = ini.start();
  const eveAsResponder = new Handshake('responder', eve);
  // Eve answers Alice herself but claims Bob's identity: she cannot sign as Bob.
  const m2 = eveAsResponder.receive(m1).send!;
  const forged = edit(m2, (d) => {
    d.identity_key = bob.publicKey.toString('hex');
    d.node_id = bob.nodeId;
  });
  throwsCode(() => ini.receive(forged), 'ERR_HANDSHAKE_BAD_SIGNATURE');
});

test('constructor argument mistakes are TypeError/RangeError', () => {
  assert.throws(() => new Handshake('initiator', alice, { framings: [] }), RangeError);
  assert.throws(() => new Handshake('initiator', alice, { framings: ['json', 'json'] }), RangeError);
  assert.throws(() => new Handshake('initiator', alice, { random: Buffer.alloc(5) }), RangeError);
  assert.throws(() => new Handshake('initiator', alice, { ephemeralPrivateKey: Buffer.alloc(5) }), RangeError);
});
