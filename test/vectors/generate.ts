/**
 * Generator of the golden vectors of protocol version 1 (PROTOCOL.md §11).
 *
 * Everything is fixed: identity seeds, ephemeral X25519 keys, handshake
 * randoms and the clock. Ed25519 signatures (RFC 8032) and AES-GCM under a
 * given key and nonce are deterministic, so the output is the same on every
 * run. The handshake messages, H3, session keys, session id and frames come
 * from our implementation (src/handshake, src/session); the intermediate
 * values an implementation keeps private (the X25519 output, T2, H2, the
 * finished keys) are recomputed here from primitives and checked against the
 * messages before anything is written.
 *
 * Run: node dist/test/vectors/generate.js   (writes test/vectors/v1-*.json)
 * test/vectors.test.ts checks the files against the code, and re-derives
 * them independently from PROTOCOL.md with node:crypto.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { NodeIdentity } from '../../src/identity/identity.js';
import { Handshake, type HandshakeConfig, type HandshakeResult } from '../../src/handshake/handshake.js';
import { Session } from '../../src/session/session.js';
import { McpE2eError } from '../../src/errors.js';
import {
  ed25519Verify,
  hkdfSha256,
  hmacSha256,
  sha256,
  x25519,
  x25519FromPrivate,
} from '../../src/crypto/primitives.js';
import { nonceOf } from '../../src/framing/envelope.js';
import { buildCurveEdge, loadSodium } from './curve-edge.js';
import { nextEpochKey } from '../../src/session/session.js';
import { ContentType, DIRECTION, FRAMING_CODE, LABEL, PROTOCOL_VERSION, type Framing } from '../../src/protocol.js';

const seq = (start: number) => Buffer.from(Array.from({ length: 32 }, (_, i) => start + i));

/** The fixed inputs shared by every case. */
export const INPUTS = Object.freeze({
  initiator_identity_seed: seq(0x00).toString('hex'),
  responder_identity_seed: seq(0x20).toString('hex'),
  initiator_ephemeral_private: seq(0x40).toString('hex'),
  responder_ephemeral_private: seq(0x60).toString('hex'),
  initiator_random: seq(0x80).toString('hex'),
  responder_random: seq(0xa0).toString('hex'),
});

interface Side {
  signatures: boolean;
  framings: Framing[];
}

interface CaseSpec {
  name: string;
  description: string;
  initiator: Side;
  responder: Side;
}

/** One case per framing and signature setting; the offers also exercise the selection rules of §4.2. */
export const CASES: readonly CaseSpec[] = Object.freeze([
  {
    name: 'binary-signed',
    description: 'Both sides default: signatures on, framings [binary, json]; binary framing, signed frames.',
    initiator: { signatures: true, framings: ['binary', 'json'] },
    responder: { signatures: true, framings: ['binary', 'json'] },
  },
  {
    name: 'binary-unsigned',
    description: 'Neither side asks for signatures; the responder accepts only binary.',
    initiator: { signatures: false, framings: ['binary', 'json'] },
    responder: { signatures: false, framings: ['binary'] },
  },
  {
    name: 'json-signed',
    description:
      'The initiator does not ask for signatures but the responder requires them (the selection is the OR); ' +
      'the initiator prefers json, the responder binary: the initiator\'s preference wins.',
    initiator: { signatures: false, framings: ['json', 'binary'] },
    responder: { signatures: true, framings: ['binary', 'json'] },
  },
  {
    name: 'json-unsigned',
    description: 'The initiator offers only json and no signatures; the responder does not require them.',
    initiator: { signatures: false, framings: ['json'] },
    responder: { signatures: false, framings: ['json', 'binary'] },
  },
]);

/** The messages each direction sends, in order. With rekeyAfterFrames = 2 the third frame is the first of epoch 1. */
export const TRAFFIC = Object.freeze({
  initiator_to_responder: [
    { content_type: ContentType.MCP, payload: '{"jsonrpc":"2.0","id":1,"method":"ping"}' },
    { content_type: ContentType.CONTROL, payload: '{}' },
    { content_type: ContentType.MCP, payload: '{"jsonrpc":"2.0","method":"notifications/initialized"}' },
  ],
  responder_to_initiator: [
    { content_type: ContentType.MCP, payload: '{"jsonrpc":"2.0","id":1,"result":{}}' },
    { content_type: ContentType.MCP, payload: '{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"héllo"}}' },
    { content_type: ContentType.MCP, payload: '{"jsonrpc":"2.0","id":2,"result":{"tools":[]}}' },
  ],
});
export const REKEY_AFTER_FRAMES = 2;

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const u8 = (n: number) => Buffer.of(n);

function identities() {
  return {
    initiator: NodeIdentity.fromPrivateKey(Buffer.from(INPUTS.initiator_identity_seed, 'hex')),
    responder: NodeIdentity.fromPrivateKey(Buffer.from(INPUTS.responder_identity_seed, 'hex')),
  };
}

/** Run the handshake of one case with the fixed inputs. */
export function runHandshake(c: CaseSpec) {
  const ids = identities();
  const iConfig: HandshakeConfig = {
    ...c.initiator,
    ephemeralPrivateKey: Buffer.from(INPUTS.initiator_ephemeral_private, 'hex'),
    random: Buffer.from(INPUTS.initiator_random, 'hex'),
  };
  const rConfig: HandshakeConfig = {
    ...c.responder,
    ephemeralPrivateKey: Buffer.from(INPUTS.responder_ephemeral_private, 'hex'),
    random: Buffer.from(INPUTS.responder_random, 'hex'),
  };
  const i = new Handshake('initiator', ids.initiator, iConfig);
  const r = new Handshake('responder', ids.responder, rConfig);
  const step1 = i.start();
  const step2 = r.receive(step1).send!;
  const iStep = i.receive(step2);
  const step3 = iStep.send!;
  const rDone = r.receive(step3);
  return { ids, messages: { step1, step2, step3 }, initiator: iStep.result!, responder: rDone.result! };
}

/** Sessions of one case: the senders rotate after REKEY_AFTER_FRAMES frames; the clock is fixed. */
export function sessionsOf(h: { ids: ReturnType<typeof identities>; initiator: HandshakeResult; responder: HandshakeResult }) {
  const opts = { rekeyAfterFrames: REKEY_AFTER_FRAMES, now: () => 0 };
  return { initiator: new Session(h.initiator, h.ids.initiator, opts), responder: new Session(h.responder, h.ids.responder, opts) };
}

const wireOf = (frame: string | Buffer) => (typeof frame === 'string' ? frame : frame.toString('hex'));
const frameOf = (framing: Framing, wire: string) => (framing === 'json' ? wire : Buffer.from(wire, 'hex'));

function context(sessionId: Buffer, direction: number, framing: Framing, epoch: number, counter: number): Buffer {
  const c = Buffer.alloc(30);
  sessionId.copy(c, 0);
  c[16] = direction;
  c[17] = FRAMING_CODE[framing];
  c.writeUInt32BE(epoch, 18);
  c.writeBigUInt64BE(BigInt(counter), 22);
  return c;
}

/** Build one case. Throws if the implementation and the derivations recomputed here disagree. */
export function buildCase(c: CaseSpec): Record<string, unknown> {
  const h = runHandshake(c);
  const m1 = JSON.parse(h.messages.step1);
  const m2 = JSON.parse(h.messages.step2);
  const m3 = JSON.parse(h.messages.step3);
  const b = (s: string) => Buffer.from(s, 'hex');

  // Intermediate values, recomputed from the messages (PROTOCOL.md §5).
  const iEph = x25519FromPrivate(b(INPUTS.initiator_ephemeral_private));
  const rEph = x25519FromPrivate(b(INPUTS.responder_ephemeral_private));
  const dh = x25519(iEph, b(m2.public_key));
  assert.ok(dh.equals(x25519(rEph, b(m1.public_key))));
  const t2 = Buffer.concat([
    LABEL.TRANSCRIPT,
    u8(PROTOCOL_VERSION),
    b(m1.public_key),
    b(m1.random),
    u8(m1.options.signatures ? 1 : 0),
    u8(m1.options.framings.length),
    Buffer.from(m1.options.framings.map((f: Framing) => FRAMING_CODE[f])),
    b(m2.public_key),
    b(m2.random),
    b(m2.identity_key),
    b(m2.node_id),
    u8(m2.options.signatures ? 1 : 0),
    u8(FRAMING_CODE[m2.options.framing as Framing]),
  ]);
  const h2 = sha256(t2);
  const t3 = Buffer.concat([t2, b(m3.identity_key), b(m3.node_id)]);
  const h3 = sha256(t3);
  const fk = hkdfSha256(dh, h2, LABEL.FINISHED_KEYS, 64);
  const fkR = fk.subarray(0, 32);
  const fkI = fk.subarray(32, 64);
  const okm = hkdfSha256(dh, h3, LABEL.SESSION_KEYS, 80);

  // Cross-checks against what the implementation sent and derived.
  assert.ok(ed25519Verify(h.ids.responder.verifyKey, Buffer.concat([LABEL.RESPONDER_SIGNATURE, h2]), b(m2.signature)));
  assert.ok(ed25519Verify(h.ids.initiator.verifyKey, Buffer.concat([LABEL.INITIATOR_SIGNATURE, h3]), b(m3.signature)));
  assert.equal(hex(hmacSha256(fkR, LABEL.RESPONDER_FINISHED, h2)), m2.mac);
  assert.equal(hex(hmacSha256(fkI, LABEL.INITIATOR_FINISHED, h3)), m3.mac);
  assert.ok(h.initiator.transcriptHash.equals(h3) && h.responder.transcriptHash.equals(h3));
  assert.ok(h.initiator.sendKey.equals(okm.subarray(0, 32)) && h.responder.recvKey.equals(okm.subarray(0, 32)));
  assert.ok(h.initiator.recvKey.equals(okm.subarray(32, 64)) && h.responder.sendKey.equals(okm.subarray(32, 64)));
  assert.ok(h.initiator.sessionId.equals(okm.subarray(64, 80)) && h.responder.sessionId.equals(okm.subarray(64, 80)));

  const framing = h.initiator.framing;
  const signatures = h.initiator.signatures;
  const sessionId = h.initiator.sessionId;
  const k0 = { initiator_to_responder: Buffer.from(okm.subarray(0, 32)), responder_to_initiator: Buffer.from(okm.subarray(32, 64)) };
  const epochKeys = {
    initiator_to_responder: [k0.initiator_to_responder, nextEpochKey(k0.initiator_to_responder, sessionId)],
    responder_to_initiator: [k0.responder_to_initiator, nextEpochKey(k0.responder_to_initiator, sessionId)],
  };

  // Frames: sealed by one session, opened by the other.
  const s = sessionsOf(h);
  const frames: Record<string, unknown[]> = {};
  for (const dir of ['initiator_to_responder', 'responder_to_initiator'] as const) {
    const [sender, receiver] = dir === 'initiator_to_responder' ? [s.initiator, s.responder] : [s.responder, s.initiator];
    const direction = dir === 'initiator_to_responder' ? DIRECTION.INITIATOR_TO_RESPONDER : DIRECTION.RESPONDER_TO_INITIATOR;
    frames[dir] = TRAFFIC[dir].map((msg, counter) => {
      const wire = sender.seal(msg.payload, msg.content_type);
      const opened = receiver.open(wire);
      assert.equal(opened.contentType, msg.content_type);
      assert.equal(opened.payload.toString('utf8'), msg.payload);
      const epoch = Math.floor(counter / REKEY_AFTER_FRAMES);
      assert.equal(sender.sendEpoch, epoch);
      const aad = context(sessionId, direction, framing, epoch, counter);
      const plaintext = Buffer.concat([u8(msg.content_type), Buffer.from(msg.payload, 'utf8')]);
      const out: Record<string, unknown> = {
        epoch,
        counter,
        content_type: msg.content_type,
        payload: msg.payload,
        plaintext: hex(plaintext),
        key: hex(epochKeys[dir][epoch]!),
        nonce: hex(nonceOf(counter)),
        aad: hex(aad),
      };
      // The sealed bytes and signature, read back from the wire form.
      const w = wireOf(wire);
      let sealed: Buffer;
      let signature: Buffer | undefined;
      if (typeof wire === 'string') {
        const env = JSON.parse(wire);
        sealed = b(env.ciphertext);
        signature = env.signature === undefined ? undefined : b(env.signature);
      } else {
        signature = wire[1] === 1 ? wire.subarray(14, 78) : undefined;
        sealed = wire.subarray(signature ? 78 : 14);
      }
      out.sealed = hex(sealed);
      if (signatures) {
        assert.ok(signature);
        const input = Buffer.concat([LABEL.FRAME_SIGNATURE, aad, sha256(sealed)]);
        const signer = dir === 'initiator_to_responder' ? h.ids.initiator : h.ids.responder;
        assert.ok(ed25519Verify(signer.verifyKey, input, signature));
        out.signature_input = hex(input);
        out.signature = hex(signature);
      } else {
        assert.equal(signature, undefined);
      }
      out.wire = w;
      return out;
    });
  }
  s.initiator.close();
  s.responder.close();

  return {
    description: `mcp-e2e protocol version 1, golden vector "${c.name}". ${c.description} Generated by test/vectors/generate.ts; see test/vectors/README.md.`,
    inputs: {
      ...INPUTS,
      initiator_config: c.initiator,
      responder_config: c.responder,
      rekey_after_frames: REKEY_AFTER_FRAMES,
    },
    identities: {
      initiator: { public_key: hex(h.ids.initiator.publicKey), node_id: h.ids.initiator.nodeId, fingerprint: h.ids.initiator.fingerprint },
      responder: { public_key: hex(h.ids.responder.publicKey), node_id: h.ids.responder.nodeId, fingerprint: h.ids.responder.fingerprint },
    },
    handshake: {
      initiator_ephemeral_public: hex(iEph.publicKey),
      responder_ephemeral_public: hex(rEph.publicKey),
      step1: h.messages.step1,
      step2: h.messages.step2,
      step3: h.messages.step3,
      shared_secret: hex(dh),
      t2: hex(t2),
      h2: hex(h2),
      finished_key_responder: hex(fkR),
      finished_key_initiator: hex(fkI),
      t3: hex(t3),
      h3: hex(h3),
    },
    session: {
      framing,
      signatures,
      session_id: hex(sessionId),
      initiator_to_responder_key: hex(k0.initiator_to_responder),
      responder_to_initiator_key: hex(k0.responder_to_initiator),
      initiator_to_responder_key_epoch1: hex(epochKeys.initiator_to_responder[1]!),
      responder_to_initiator_key_epoch1: hex(epochKeys.responder_to_initiator[1]!),
    },
    frames,
    rejections: buildRejections(c, framing, signatures, frames.initiator_to_responder as Array<{ wire: string }>),
  };
}

/**
 * Frames a fresh responder-side session must refuse, each with the error code
 * of PROTOCOL.md §6.6. `frames` are fed in order to a new receiver; all but
 * the last are accepted, the last raises `error`.
 */
function buildRejections(c: CaseSpec, framing: Framing, signatures: boolean, good: Array<{ wire: string }>) {
  const f0 = good[0]!.wire;
  const f1 = good[1]!.wire;
  const f2 = good[2]!.wire;
  const out: Array<{ name: string; frames: string[]; error: string }> = [];
  const add = (name: string, frames: string[], error: string) => out.push({ name, frames, error });
  const flipHex = (w: string, byte: number) => {
    const buf = Buffer.from(w, 'hex');
    buf[byte] = buf[byte]! ^ 0x01;
    return buf.toString('hex');
  };
  const editJson = (w: string, fn: (d: Record<string, unknown>) => void) => {
    const d = JSON.parse(w);
    fn(d);
    return JSON.stringify(d);
  };
  add('replayed frame', [f0, f0], 'ERR_FRAME_COUNTER');
  add('dropped frame (counter 1 first)', [f1], 'ERR_FRAME_COUNTER');
  add('epoch 1 frame after counter 0 (dropped frame)', [f0, f2], 'ERR_FRAME_COUNTER');

  // A frame whose content type is unknown (0x03), otherwise valid: sealed by a fresh session of the same handshake.
  const h = runHandshake(c);
  const s = sessionsOf(h);
  const badType = wireOf(s.initiator.seal('{}', 0x03 as typeof ContentType.MCP));
  s.initiator.close();
  s.responder.close();
  add('unknown content type 0x03', [badType], 'ERR_FRAME_CONTENT_TYPE');

  if (framing === 'binary') {
    const sealedStart = signatures ? 78 : 14;
    add('last byte of the tag flipped', [flipHex(f0, Buffer.from(f0, 'hex').length - 1)], 'ERR_FRAME_DECRYPT');
    add('first ciphertext byte flipped', [flipHex(f0, sealedStart)], 'ERR_FRAME_DECRYPT');
    add('epoch 2', [(() => { const x = Buffer.from(f0, 'hex'); x.writeUInt32BE(2, 2); return x.toString('hex'); })()], 'ERR_FRAME_EPOCH');
    add('epoch 1 with the epoch 0 key (header edited)', [(() => { const x = Buffer.from(f0, 'hex'); x.writeUInt32BE(1, 2); return x.toString('hex'); })()], 'ERR_FRAME_DECRYPT');
    add('reserved flag bit set', [(() => { const x = Buffer.from(f0, 'hex'); x[1] = x[1]! | 0x80; return x.toString('hex'); })()], 'ERR_FRAME_MALFORMED');
    add('unknown frame type', [(() => { const x = Buffer.from(f0, 'hex'); x[0] = 0x02; return x.toString('hex'); })()], 'ERR_FRAME_MALFORMED');
    add('shorter than header + content type + tag', [f0.slice(0, 2 * (sealedStart + 16))], 'ERR_FRAME_MALFORMED');
    if (signatures) {
      add('signature byte flipped', [flipHex(f0, 14)], 'ERR_FRAME_SIGNATURE');
      add('signature stripped (flag cleared)', [(() => { const x = Buffer.from(f0, 'hex'); return Buffer.concat([Buffer.of(0x01, 0x00), x.subarray(2, 14), x.subarray(78)]).toString('hex'); })()], 'ERR_FRAME_SIGNATURE');
    } else {
      add('signature flag set in an unsigned session', [(() => { const x = Buffer.from(f0, 'hex'); return Buffer.concat([Buffer.of(0x01, 0x01), x.subarray(2, 14), Buffer.alloc(64), x.subarray(14)]).toString('hex'); })()], 'ERR_FRAME_SIGNATURE');
    }
  } else {
    const ct = (d: Record<string, unknown>) => d.ciphertext as string;
    add('last byte of the tag flipped', [editJson(f0, (d) => { const x = ct(d); d.ciphertext = x.slice(0, -2) + (parseInt(x.slice(-2), 16) ^ 1).toString(16).padStart(2, '0'); })], 'ERR_FRAME_DECRYPT');
    add('epoch 2', [editJson(f0, (d) => { d.epoch = 2; })], 'ERR_FRAME_EPOCH');
    add('epoch 1 with the epoch 0 key (header edited)', [editJson(f0, (d) => { d.epoch = 1; })], 'ERR_FRAME_DECRYPT');
    add('sender is not the authenticated peer', [editJson(f0, (d) => { d.sender = 'ab'.repeat(32); })], 'ERR_FRAME_SENDER');
    add('nonce with a nonzero prefix', [editJson(f0, (d) => { d.nonce = '00000001' + (d.nonce as string).slice(8); })], 'ERR_FRAME_MALFORMED');
    add('uppercase hex', [editJson(f0, (d) => { d.ciphertext = ct(d).toUpperCase(); })], 'ERR_FRAME_MALFORMED');
    add('unknown field', [editJson(f0, (d) => { d.extra = 1; })], 'ERR_FRAME_MALFORMED');
    add('type is not "encrypted"', [editJson(f0, (d) => { d.type = 'plaintext'; })], 'ERR_FRAME_MALFORMED');
    if (signatures) {
      add('signature byte flipped', [editJson(f0, (d) => { const x = d.signature as string; d.signature = (parseInt(x.slice(0, 2), 16) ^ 1).toString(16).padStart(2, '0') + x.slice(2); })], 'ERR_FRAME_SIGNATURE');
      add('signature removed', [editJson(f0, (d) => { delete d.signature; })], 'ERR_FRAME_SIGNATURE');
    } else {
      add('signature present in an unsigned session', [editJson(f0, (d) => { d.signature = '00'.repeat(64); })], 'ERR_FRAME_SIGNATURE');
    }
  }

  // Check every rejection against the implementation before writing it.
  for (const r of out) {
    const hs = runHandshake(c);
    const { responder, initiator } = sessionsOf(hs);
    initiator.close();
    r.frames.forEach((w, i) => {
      if (i < r.frames.length - 1) {
        responder.open(frameOf(framing, w));
        return;
      }
      assert.throws(
        () => responder.open(frameOf(framing, w)),
        (err: unknown) => err instanceof McpE2eError && err.code === r.error,
        `${c.name}: rejection "${r.name}" expected ${r.error}`,
      );
    });
  }
  return out;
}

/** The key file the initiator's identity is saved as (PROTOCOL.md §2.4). */
export function keyFileExample(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-e2e-vectors-'));
  try {
    const path = join(dir, 'identity.json');
    identities().initiator.save(path);
    return readFileSync(path, 'utf8');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The edge cases of the Ed25519 acceptance rule and of X25519 inputs (needs libsodium to build). */
export function curveEdgeFile(): Record<string, unknown> | undefined {
  const na = loadSodium();
  if (!na) return undefined;
  return {
    description:
      'Ed25519 keys and signatures at the edges of RFC 8032, where OpenSSL and libsodium differ, with the outcome of the protocol\'s acceptance rule ' +
      '(PROTOCOL.md §1.3); X25519 inputs RFC 7748 says to accept. Every implementation must give these outcomes. Generated by test/vectors/curve-edge.ts.',
    ...buildCurveEdge(na),
  };
}

/** Every vector file: name -> contents (curve25519-edge.json only where libsodium loads). */
export function buildAll(): Record<string, unknown> {
  const files: Record<string, unknown> = {};
  const edge = curveEdgeFile();
  if (edge) files['curve25519-edge.json'] = edge;
  for (const c of CASES) files[`v1-${c.name}.json`] = buildCase(c);
  const ids = identities();
  files['v1-identity.json'] = {
    description: 'mcp-e2e protocol version 1: identities of the golden vectors (PROTOCOL.md §2) and the key file of the initiator. Generated by test/vectors/generate.ts.',
    identities: [
      { seed: INPUTS.initiator_identity_seed, public_key: hex(ids.initiator.publicKey), node_id: ids.initiator.nodeId, fingerprint: ids.initiator.fingerprint },
      { seed: INPUTS.responder_identity_seed, public_key: hex(ids.responder.publicKey), node_id: ids.responder.nodeId, fingerprint: ids.responder.fingerprint },
    ],
    key_file: keyFileExample(),
  };
  return files;
}

/** The folder of the vector files in the source tree (the JSON files are not compiled into dist). */
export const VECTORS_DIR = fileURLToPath(new URL('../../../test/vectors/', import.meta.url));

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  for (const [name, doc] of Object.entries(buildAll())) {
    writeFileSync(join(VECTORS_DIR, name), JSON.stringify(doc, null, 2) + '\n');
    console.log(`wrote ${join(VECTORS_DIR, name)}`);
  }
}
