/**
 * Generator of the golden vectors of protocol version 2 (PROTOCOL.md §11).
 *
 * Everything is fixed: identity seeds, ephemeral X25519 keys, handshake
 * randoms and the clock. Ed25519 signatures (RFC 8032) and AES-GCM under a
 * given key and nonce are deterministic, so the output is the same on every
 * run. The handshake messages, H3, session keys, session id and records come
 * from our implementation (src/handshake, src/session); the intermediate
 * values an implementation keeps private (the X25519 output, T2, H2, the
 * handshake keys, step 3's plaintext) are recomputed here from primitives
 * and checked against the messages before anything is written. Refused
 * records that the implementation would never produce (bad inner lengths,
 * an entry after CLOSE) are sealed here directly with the session's keys.
 *
 * Run: node dist/test/vectors/generate.js   (writes test/vectors/v2-*.json)
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
import { Session, nextEpochKey } from '../../src/session/session.js';
import { McpE2eError, type ErrorCode } from '../../src/errors.js';
import { aesGcmOpen, aesKey, ed25519Verify, hkdfSha256, sha256 } from '../../src/crypto/primitives.js';
import { nonceOf } from '../../src/framing/envelope.js';
import { ContentType, DIRECTION, FRAMING_CODE, LABEL, type Framing } from '../../src/protocol.js';
import { handshakeSecrets, initiatorProof, plaintextOf, responderMac, sealRaw, sealStep3, type RawSealer } from '../helpers/craft.js';
import { buildCurveEdge, loadSodium } from './curve-edge.js';

const seq = (start: number) => Buffer.from(Array.from({ length: 32 }, (_, i) => start + i));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const b = (s: string) => Buffer.from(s, 'hex');

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
    description:
      'Both sides on their defaults: the initiator asks for signatures and offers [binary, json]; the responder accepts both and does not require ' +
      'signatures. The initiator\'s request decides: binary framing, signed records.',
    initiator: { signatures: true, framings: ['binary', 'json'] },
    responder: { signatures: false, framings: ['binary', 'json'] },
  },
  {
    name: 'binary-unsigned',
    description: 'Neither side asks for signatures; the responder accepts only binary. Also holds the size-limit rejections.',
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

type TrafficRecord = { entries: Array<{ content_type: 1 | 2; payload: string }> } | { close: string };

/**
 * The records each direction sends, in order. With rekeyAfterRecords = 2 the
 * third record is the first of epoch 1. The second record of each direction
 * holds several messages; the last is the sender's CLOSE (orderly from the
 * initiator, with a reason from the responder).
 */
export const TRAFFIC: Readonly<Record<'initiator_to_responder' | 'responder_to_initiator', TrafficRecord[]>> = Object.freeze({
  initiator_to_responder: [
    { entries: [{ content_type: ContentType.MCP, payload: '{"jsonrpc":"2.0","id":1,"method":"ping"}' }] },
    {
      entries: [
        { content_type: ContentType.CONTROL, payload: '{"type":"x-example"}' },
        { content_type: ContentType.MCP, payload: '{"jsonrpc":"2.0","method":"notifications/initialized"}' },
        { content_type: ContentType.MCP, payload: '{"jsonrpc":"2.0","id":2,"method":"tools/list"}' },
      ],
    },
    { entries: [{ content_type: ContentType.MCP, payload: '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}' }] },
    { close: '' },
  ],
  responder_to_initiator: [
    { entries: [{ content_type: ContentType.MCP, payload: '{"jsonrpc":"2.0","id":1,"result":{}}' }] },
    {
      entries: [
        { content_type: ContentType.MCP, payload: '{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"héllo"}}' },
        { content_type: ContentType.MCP, payload: '{"jsonrpc":"2.0","id":2,"result":{"tools":[]}}' },
      ],
    },
    { entries: [{ content_type: ContentType.MCP, payload: '{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"Echo: hi"}]}}' }] },
    { close: 'ERR_IDLE_TIMEOUT' },
  ],
});
export const REKEY_AFTER_RECORDS = 2;

const u8 = (n: number) => Buffer.of(n);

export function identities() {
  return {
    initiator: NodeIdentity.fromPrivateKey(b(INPUTS.initiator_identity_seed)),
    responder: NodeIdentity.fromPrivateKey(b(INPUTS.responder_identity_seed)),
  };
}

/** Handshake configurations of a case with the fixed inputs. */
export function configsOf(c: { initiator: Side; responder: Side }): { initiator: HandshakeConfig; responder: HandshakeConfig } {
  return {
    initiator: { ...c.initiator, ephemeralPrivateKey: b(INPUTS.initiator_ephemeral_private), random: b(INPUTS.initiator_random) },
    responder: { ...c.responder, ephemeralPrivateKey: b(INPUTS.responder_ephemeral_private), random: b(INPUTS.responder_random) },
  };
}

/** Run the handshake of one case with the fixed inputs. */
export function runHandshake(c: CaseSpec) {
  const ids = identities();
  const cfg = configsOf(c);
  const i = new Handshake('initiator', ids.initiator, cfg.initiator);
  const r = new Handshake('responder', ids.responder, cfg.responder);
  const step1 = i.start();
  const step2 = r.receive(step1).send!;
  const iStep = i.receive(step2);
  const step3 = iStep.send!;
  const rDone = r.receive(step3);
  return { ids, messages: { step1, step2, step3 }, initiator: iStep.result!, responder: rDone.result! };
}

/** Sessions of one case: the senders rotate after REKEY_AFTER_RECORDS records; the clock is fixed. */
export function sessionsOf(h: { ids: ReturnType<typeof identities>; initiator: HandshakeResult; responder: HandshakeResult }, receiverOptions: { maxMessageBytes?: number } = {}) {
  const opts = { rekeyAfterRecords: REKEY_AFTER_RECORDS, now: () => 0 };
  return {
    initiator: new Session(h.initiator, h.ids.initiator, opts),
    responder: new Session(h.responder, h.ids.responder, { ...opts, ...receiverOptions }),
  };
}

const wireOf = (frame: string | Buffer) => (typeof frame === 'string' ? frame : frame.toString('hex'));
export const frameOf = (framing: Framing, wire: string) => (framing === 'json' ? wire : Buffer.from(wire, 'hex'));

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
  const { step1, step2, step3 } = h.messages;
  const m3 = JSON.parse(step3);

  // Intermediate values, recomputed from the messages (PROTOCOL.md §5).
  const secrets = handshakeSecrets(step1, step2, b(INPUTS.initiator_ephemeral_private), 'initiator');
  assert.ok(secrets.dh.equals(handshakeSecrets(step1, step2, b(INPUTS.responder_ephemeral_private), 'responder').dh));
  const step3Plain = aesGcmOpen(aesKey(secrets.step3Key), Buffer.alloc(12), secrets.h2, b(m3.ciphertext));
  assert.ok(step3Plain.subarray(0, 32).equals(h.ids.initiator.publicKey));
  const { h3, mac: macI } = initiatorProof(secrets, h.ids.initiator.publicKey);
  const t3 = Buffer.concat([secrets.t2, h.ids.initiator.publicKey]);
  const okm = hkdfSha256(secrets.dh, Buffer.alloc(0), Buffer.concat([LABEL.SESSION_KEYS, h3]), 80);

  // Cross-checks against what the implementation sent and derived.
  const m2 = JSON.parse(step2);
  assert.ok(ed25519Verify(h.ids.responder.verifyKey, Buffer.concat([LABEL.RESPONDER_SIGNATURE, secrets.h2]), b(m2.signature)));
  assert.equal(hex(responderMac(secrets)), m2.mac);
  assert.ok(ed25519Verify(h.ids.initiator.verifyKey, Buffer.concat([LABEL.INITIATOR_SIGNATURE, h3]), step3Plain.subarray(32, 96)));
  assert.ok(step3Plain.subarray(96).equals(macI));
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

  // Records: sealed by one session, opened by the other.
  const s = sessionsOf(h);
  const records: Record<string, unknown[]> = {};
  for (const dir of ['initiator_to_responder', 'responder_to_initiator'] as const) {
    const [sender, receiver] = dir === 'initiator_to_responder' ? [s.initiator, s.responder] : [s.responder, s.initiator];
    const direction = dir === 'initiator_to_responder' ? DIRECTION.INITIATOR_TO_RESPONDER : DIRECTION.RESPONDER_TO_INITIATOR;
    records[dir] = TRAFFIC[dir].map((rec, counter) => {
      const entries = 'close' in rec
        ? [{ type: ContentType.CLOSE as number, payload: Buffer.from(rec.close, 'ascii') }]
        : rec.entries.map((e) => ({ type: e.content_type as number, payload: Buffer.from(e.payload, 'utf8') }));
      const wire = 'close' in rec
        ? sender.sealClose(rec.close === '' ? undefined : (rec.close as ErrorCode))
        : sender.sealRecord(rec.entries.map((e) => ({ contentType: e.content_type, payload: e.payload })));
      const opened = receiver.open(wire);
      assert.deepEqual(opened.map((e) => [e.contentType, e.payload.toString('hex')]), entries.map((e) => [e.type, e.payload.toString('hex')]));
      const epoch = Math.floor(counter / REKEY_AFTER_RECORDS);
      assert.equal(sender.sendEpoch, epoch);
      const aad = context(sessionId, direction, framing, epoch, counter);
      const plaintext = plaintextOf(entries);
      const out: Record<string, unknown> = {
        epoch,
        counter,
        entries: entries.map((e) => ({ content_type: e.type, payload: e.payload.toString('utf8') })),
        plaintext: hex(plaintext),
        key: hex(epochKeys[dir][epoch]!),
        nonce: hex(nonceOf(counter)),
        aad: hex(aad),
      };
      // The sealed bytes and signature, read back from the wire form.
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
        const input = Buffer.concat([LABEL.RECORD_SIGNATURE, aad, sha256(sealed)]);
        const signer = dir === 'initiator_to_responder' ? h.ids.initiator : h.ids.responder;
        assert.ok(ed25519Verify(signer.verifyKey, input, signature));
        out.signature_input = hex(input);
        out.signature = hex(signature);
      } else {
        assert.equal(signature, undefined);
      }
      out.wire = wireOf(wire);
      return out;
    });
  }
  s.initiator.close();
  s.responder.close();

  const sealer: RawSealer = {
    sessionId,
    direction: DIRECTION.INITIATOR_TO_RESPONDER,
    framing,
    signatures,
    keys: epochKeys.initiator_to_responder,
    signer: h.ids.initiator,
  };
  return {
    description: `mcp-e2e protocol version 2, golden vector "${c.name}". ${c.description} Generated by test/vectors/generate.ts; see test/vectors/README.md.`,
    inputs: {
      ...INPUTS,
      initiator_config: c.initiator,
      responder_config: c.responder,
      rekey_after_records: REKEY_AFTER_RECORDS,
    },
    identities: {
      initiator: { public_key: hex(h.ids.initiator.publicKey), node_id: h.ids.initiator.nodeId, fingerprint: h.ids.initiator.fingerprint },
      responder: { public_key: hex(h.ids.responder.publicKey), node_id: h.ids.responder.nodeId, fingerprint: h.ids.responder.fingerprint },
    },
    handshake: {
      initiator_ephemeral_public: JSON.parse(step1).public_key,
      responder_ephemeral_public: m2.public_key,
      step1,
      step2,
      step3,
      shared_secret: hex(secrets.dh),
      t2: hex(secrets.t2),
      h2: hex(secrets.h2),
      finished_key_responder: hex(secrets.finishedResponder),
      finished_key_initiator: hex(secrets.finishedInitiator),
      step3_key: hex(secrets.step3Key),
      step3_plaintext: hex(step3Plain),
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
    records,
    rejections: buildRejections(c, sealer, records.initiator_to_responder as Array<{ wire: string }>),
  };
}

interface Rejection {
  name: string;
  records: string[];
  error: string;
  /** The receiver's message limit, when not the default (16 MiB). */
  max_message_bytes?: number;
}

/**
 * Records a fresh responder-side session must refuse, each with the error
 * code of PROTOCOL.md §6.6. `records` are fed in order to a new receiver;
 * all but the last are accepted, the last raises `error`.
 */
function buildRejections(c: CaseSpec, sealer: RawSealer, good: Array<{ wire: string }>): Rejection[] {
  const { framing, signatures } = sealer;
  const [r0, r1, r2] = good.map((g) => g.wire) as [string, string, string];
  const out: Rejection[] = [];
  const add = (name: string, records: string[], error: ErrorCode, max?: number) => out.push({ name, records, error, ...(max ? { max_message_bytes: max } : {}) });
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
  const mcp = (text: string) => ({ type: ContentType.MCP, payload: Buffer.from(text) });
  const raw = (plaintext: Buffer) => sealRaw(sealer, 0, 0, plaintext);

  add('replayed record', [r0, r0], 'ERR_FRAME_COUNTER');
  add('dropped record (counter 1 first)', [r1], 'ERR_FRAME_COUNTER');
  add('epoch 1 record after counter 0 (dropped record)', [r0, r2], 'ERR_FRAME_COUNTER');

  // Correctly sealed records whose plaintext breaks §6.5 (as a broken or hostile peer could send).
  const ping = mcp('{"jsonrpc":"2.0","id":1,"method":"ping"}');
  add('unknown content type 0x04', [raw(plaintextOf([{ type: 0x04, payload: Buffer.from('{}') }]))], 'ERR_FRAME_CONTENT_TYPE');
  const lying = plaintextOf([ping]);
  lying.writeUInt32BE(ping.payload.length + 1, 1);
  add('an entry length one past the end of the record', [raw(lying)], 'ERR_ENTRIES_MALFORMED');
  add('bytes left after the last entry, fewer than a header', [raw(Buffer.concat([plaintextOf([ping]), Buffer.of(1, 0, 0)]))], 'ERR_ENTRIES_MALFORMED');
  add('an entry after CLOSE', [raw(plaintextOf([{ type: ContentType.CLOSE, payload: Buffer.alloc(0) }, ping]))], 'ERR_ENTRIES_MALFORMED');
  add('a CLOSE reason that is not an error code', [raw(plaintextOf([{ type: ContentType.CLOSE, payload: Buffer.from('err_peer_rejected') }]))], 'ERR_ENTRIES_MALFORMED');
  add('257 entries', [raw(plaintextOf(Array.from({ length: 257 }, () => mcp('{}'))))], 'ERR_ENTRIES_MALFORMED');
  add('an MCP message above the receiver\'s limit (1024 bytes)', [raw(plaintextOf([mcp('x'.repeat(1025))]))], 'ERR_FRAME_TOO_LARGE', 1024);
  if (c.name === 'binary-unsigned') {
    // Large ones, in one file only (a record over 64 KiB is 128 KiB of hex).
    const half = (n: number) => mcp('y'.repeat(n));
    add('two entries of 65,537 bytes of plaintext in all (above 64 KiB)', [raw(plaintextOf([half(32768), half(65537 - 10 - 32768)]))], 'ERR_ENTRIES_MALFORMED');
    add('a control message of 65,537 bytes', [raw(plaintextOf([{ type: ContentType.CONTROL, payload: Buffer.alloc(65537, 0x20) }]))], 'ERR_FRAME_TOO_LARGE');
    add('a record above the receiver\'s record limit (1024-byte messages: 64 KiB)', [raw(plaintextOf([mcp('z'.repeat(65536))]))], 'ERR_FRAME_TOO_LARGE', 1024);
  }

  if (framing === 'binary') {
    const sealedStart = signatures ? 78 : 14;
    add('last byte of the tag flipped', [flipHex(r0, Buffer.from(r0, 'hex').length - 1)], 'ERR_FRAME_DECRYPT');
    add('first ciphertext byte flipped', [flipHex(r0, sealedStart)], 'ERR_FRAME_DECRYPT');
    const header = (fn: (x: Buffer) => void) => {
      const x = Buffer.from(r0, 'hex');
      fn(x);
      return x.toString('hex');
    };
    add('epoch 2', [header((x) => x.writeUInt32BE(2, 2))], 'ERR_FRAME_EPOCH');
    add('epoch 1 with the epoch 0 key (header edited)', [header((x) => x.writeUInt32BE(1, 2))], 'ERR_FRAME_DECRYPT');
    add('reserved flag bit set', [header((x) => (x[1] = x[1]! | 0x80))], 'ERR_FRAME_MALFORMED');
    add('unknown record type', [header((x) => (x[0] = 0x02))], 'ERR_FRAME_MALFORMED');
    add('counter above 2^53 - 1', [header((x) => (x[6] = 0x00, x[7] = 0x20))], 'ERR_FRAME_MALFORMED');
    add('shorter than header + entry header + tag', [r0.slice(0, 2 * (sealedStart + 20))], 'ERR_FRAME_MALFORMED');
    if (signatures) {
      add('signature byte flipped', [flipHex(r0, 14)], 'ERR_FRAME_SIGNATURE');
      add('signature stripped (flag cleared)', [(() => { const x = Buffer.from(r0, 'hex'); return Buffer.concat([Buffer.of(0x01, 0x00), x.subarray(2, 14), x.subarray(78)]).toString('hex'); })()], 'ERR_FRAME_SIGNATURE');
    } else {
      add('signature flag set in an unsigned session', [(() => { const x = Buffer.from(r0, 'hex'); return Buffer.concat([Buffer.of(0x01, 0x01), x.subarray(2, 14), Buffer.alloc(64), x.subarray(14)]).toString('hex'); })()], 'ERR_FRAME_SIGNATURE');
    }
  } else {
    const ct = (d: Record<string, unknown>) => d.ciphertext as string;
    add('last byte of the tag flipped', [editJson(r0, (d) => { const x = ct(d); d.ciphertext = x.slice(0, -2) + (parseInt(x.slice(-2), 16) ^ 1).toString(16).padStart(2, '0'); })], 'ERR_FRAME_DECRYPT');
    add('epoch 2', [editJson(r0, (d) => { d.epoch = 2; })], 'ERR_FRAME_EPOCH');
    add('epoch 1 with the epoch 0 key (header edited)', [editJson(r0, (d) => { d.epoch = 1; })], 'ERR_FRAME_DECRYPT');
    add('sender is not the authenticated peer', [editJson(r0, (d) => { d.sender = 'ab'.repeat(32); })], 'ERR_FRAME_SENDER');
    add('nonce with a nonzero prefix', [editJson(r0, (d) => { d.nonce = '00000001' + (d.nonce as string).slice(8); })], 'ERR_FRAME_MALFORMED');
    add('uppercase hex', [editJson(r0, (d) => { d.ciphertext = ct(d).toUpperCase(); })], 'ERR_FRAME_MALFORMED');
    add('unknown member', [editJson(r0, (d) => { d.extra = 1; })], 'ERR_FRAME_MALFORMED');
    add('type is not "encrypted"', [editJson(r0, (d) => { d.type = 'plaintext'; })], 'ERR_FRAME_MALFORMED');
    add('not the canonical form (insignificant whitespace)', [JSON.stringify(JSON.parse(r0), null, 1)], 'ERR_FRAME_MALFORMED');
    add('not the canonical form (epoch 0.0)', [r0.replace('"epoch":0', '"epoch":0.0')], 'ERR_FRAME_MALFORMED');
    add('not the canonical form (members reordered)', [editJson(r0, (d) => { const t = d.type; delete d.type; d.type = t; })], 'ERR_FRAME_MALFORMED');
    if (signatures) {
      add('signature byte flipped', [editJson(r0, (d) => { const x = d.signature as string; d.signature = (parseInt(x.slice(0, 2), 16) ^ 1).toString(16).padStart(2, '0') + x.slice(2); })], 'ERR_FRAME_SIGNATURE');
      add('signature removed', [editJson(r0, (d) => { delete d.signature; })], 'ERR_FRAME_SIGNATURE');
    } else {
      add('signature present in an unsigned session', [editJson(r0, (d) => { const sender = d.sender; delete d.sender; d.signature = '00'.repeat(64); d.sender = sender; })], 'ERR_FRAME_SIGNATURE');
    }
  }

  // Check every rejection against the implementation before writing it.
  for (const r of out) {
    const { responder, initiator } = sessionsOf(runHandshake(c), r.max_message_bytes ? { maxMessageBytes: r.max_message_bytes } : {});
    initiator.close();
    r.records.forEach((w, i) => {
      if (i < r.records.length - 1) {
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

/** One refused handshake: fed to a fresh side with the fixed inputs (an initiator has sent the stored step 1 first). */
export interface HandshakeRejection {
  name: string;
  /** Which side receives `messages`. */
  side: 'initiator' | 'responder';
  /** Configuration of that side beyond the fixed inputs (defaults: signatures true, framings [binary, json], versions [2]). */
  config?: Partial<Side> & { versions?: number[] };
  /** Messages fed in order; all but the last are accepted. */
  messages: string[];
  error: string;
}

/** The default case (`binary-signed`): its messages are the base of the refused handshakes. */
const BASE = CASES[0]!;

/**
 * Refused handshakes, each ERR_HANDSHAKE_* of §9 and the checks of §4.3 in
 * validation order, built by editing the base case's messages and checked
 * against the implementation.
 */
export function buildHandshakeRejections(): HandshakeRejection[] {
  const h = runHandshake(BASE);
  const { step1, step2, step3 } = h.messages;
  const out: HandshakeRejection[] = [];
  const edit = (m: string, fn: (d: Record<string, unknown>) => void) => {
    const d = JSON.parse(m);
    fn(d);
    return JSON.stringify(d);
  };
  const toResponder = (name: string, messages: string[], error: ErrorCode, config?: HandshakeRejection['config']) => out.push({ name, side: 'responder', ...(config ? { config } : {}), messages, error });
  const toInitiator = (name: string, messages: string[], error: ErrorCode, config?: HandshakeRejection['config']) => out.push({ name, side: 'initiator', ...(config ? { config } : {}), messages, error });
  const nodeIdOf = (key: string) => sha256(b(key)).toString('hex');
  const withKey = (key: string) => (d: Record<string, unknown>) => {
    d.identity_key = key;
    d.node_id = nodeIdOf(key);
  };
  const SMALL_ORDER = '0100000000000000000000000000000000000000000000000000000000000000';
  const NON_CANONICAL = 'f1ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'; // y = p + 4: not canonical

  // Decoding, every message (§4.3), shown on step 1.
  toResponder('larger than 4096 bytes', [' '.repeat(4097)], 'ERR_FRAME_TOO_LARGE');
  toResponder('not JSON', [step1.slice(0, -1)], 'ERR_HANDSHAKE_MALFORMED');
  toResponder('not a JSON object', ['[1]'], 'ERR_HANDSHAKE_MALFORMED');
  toResponder('type is not "key_exchange"', [edit(step1, (d) => (d.type = 'encrypted'))], 'ERR_HANDSHAKE_MALFORMED');
  toResponder('version is not an integer', [edit(step1, (d) => (d.version = '2'))], 'ERR_HANDSHAKE_MALFORMED');
  toResponder('version 1 (retired)', [edit(step1, (d) => (d.version = 1))], 'ERR_HANDSHAKE_UNSUPPORTED_VERSION');
  toResponder('version 3', [edit(step1, (d) => (d.version = 3))], 'ERR_HANDSHAKE_UNSUPPORTED_VERSION');
  toResponder('step 4', [edit(step1, (d) => (d.step = 4))], 'ERR_HANDSHAKE_MALFORMED');
  toResponder('a member missing', [edit(step1, (d) => delete d.random)], 'ERR_HANDSHAKE_MALFORMED');
  toResponder('an extra member', [edit(step1, (d) => (d.extra = true))], 'ERR_HANDSHAKE_MALFORMED');
  toResponder('versions not strictly descending', [edit(step1, (d) => (d.versions = [2, 3]))], 'ERR_HANDSHAKE_MALFORMED');
  toResponder('versions without the message\'s version', [edit(step1, (d) => (d.versions = [3]))], 'ERR_HANDSHAKE_MALFORMED');
  toResponder('public_key uppercase', [edit(step1, (d) => (d.public_key = (d.public_key as string).toUpperCase()))], 'ERR_HANDSHAKE_MALFORMED');
  toResponder('public_key of 31 bytes', [edit(step1, (d) => (d.public_key = (d.public_key as string).slice(2)))], 'ERR_HANDSHAKE_MALFORMED');
  toResponder('options.signatures not a boolean', [edit(step1, (d) => ((d.options as Record<string, unknown>).signatures = 1))], 'ERR_HANDSHAKE_MALFORMED');
  toResponder('options.framings unknown', [edit(step1, (d) => ((d.options as Record<string, unknown>).framings = ['xml']))], 'ERR_HANDSHAKE_OPTIONS');
  toResponder('options.framings repeated', [edit(step1, (d) => ((d.options as Record<string, unknown>).framings = ['json', 'json']))], 'ERR_HANDSHAKE_OPTIONS');
  toResponder('not canonical: whitespace', [JSON.stringify(JSON.parse(step1), null, 1)], 'ERR_HANDSHAKE_MALFORMED');
  toResponder('not canonical: step 1.0', [step1.replace('"step":1', '"step":1.0')], 'ERR_HANDSHAKE_MALFORMED');
  toResponder('not canonical: a duplicate member', [step1.replace('"step":1,', '"step":1,"step":1,')], 'ERR_HANDSHAKE_MALFORMED');
  toResponder('not canonical: members reordered', [edit(step1, (d) => { const t = d.type; delete d.type; d.type = t; })], 'ERR_HANDSHAKE_MALFORMED');
  toResponder('a step 2 sent to a responder', [step2], 'ERR_HANDSHAKE_UNEXPECTED_MESSAGE');
  // Responder, on step 1.
  toResponder('downgrade: the initiator supports version 3, and so does this responder', [edit(step1, (d) => (d.versions = [3, 2]))], 'ERR_HANDSHAKE_DOWNGRADE', { versions: [3, 2] });
  toResponder('no common framing (binary offered, json accepted)', [edit(step1, (d) => ((d.options as Record<string, unknown>).framings = ['binary']))], 'ERR_HANDSHAKE_OPTIONS', { framings: ['json'] });
  toResponder('the responder\'s own ephemeral key reflected', [edit(step1, (d) => (d.public_key = JSON.parse(step2).public_key))], 'ERR_HANDSHAKE_REFLECTION');
  toResponder('a low-order ephemeral key (u = 0)', [edit(step1, (d) => (d.public_key = '00'.repeat(32)))], 'ERR_HANDSHAKE_LOW_ORDER_KEY');
  toResponder('a low-order ephemeral key (u = 1)', [edit(step1, (d) => (d.public_key = '01' + '00'.repeat(31)))], 'ERR_HANDSHAKE_LOW_ORDER_KEY');
  // Responder, on step 3.
  const secrets = handshakeSecrets(step1, step2, b(INPUTS.responder_ephemeral_private), 'responder');
  const ct = JSON.parse(step3).ciphertext as string;
  toResponder('step 1 again instead of step 3', [step1, step1], 'ERR_HANDSHAKE_UNEXPECTED_MESSAGE');
  toResponder('step 3 ciphertext of 143 bytes', [step1, edit(step3, (d) => (d.ciphertext = ct.slice(2)))], 'ERR_HANDSHAKE_MALFORMED');
  toResponder('step 3 ciphertext with a byte flipped (the tag fails)', [step1, edit(step3, (d) => (d.ciphertext = (ct[0] === '0' ? '1' : '0') + ct.slice(1)))], 'ERR_HANDSHAKE_BAD_MAC');
  const { mac, h3 } = initiatorProof(secrets, h.ids.initiator.publicKey);
  const sigI = h.ids.initiator.sign(LABEL.INITIATOR_SIGNATURE, h3);
  toResponder('step 3 sealing an identity key of small order', [step1, sealStep3(secrets, Buffer.concat([b(SMALL_ORDER), sigI, mac]))], 'ERR_HANDSHAKE_BAD_KEY');
  toResponder('step 3 sealing a non-canonical identity key', [step1, sealStep3(secrets, Buffer.concat([b(NON_CANONICAL), sigI, mac]))], 'ERR_HANDSHAKE_BAD_KEY');
  toResponder('step 3 sealing a wrong finished MAC', [step1, sealStep3(secrets, Buffer.concat([h.ids.initiator.publicKey, sigI, Buffer.alloc(32)]))], 'ERR_HANDSHAKE_BAD_MAC');
  toResponder('step 3 sealing a wrong signature', [step1, sealStep3(secrets, Buffer.concat([h.ids.initiator.publicKey, Buffer.from(sigI).fill(7, 0, 1), mac]))], 'ERR_HANDSHAKE_BAD_SIGNATURE');
  const eve = NodeIdentity.fromPrivateKey(Buffer.alloc(32, 0xee));
  const eveProof = initiatorProof(secrets, eve.publicKey);
  toResponder('step 3 sealing another identity with the MAC for it (made with the shared secret) but the initiator\'s signature',
    [step1, sealStep3(secrets, Buffer.concat([eve.publicKey, h.ids.initiator.sign(LABEL.INITIATOR_SIGNATURE, eveProof.h3), eveProof.mac]))], 'ERR_HANDSHAKE_BAD_SIGNATURE');
  // Initiator, on step 2.
  toInitiator('a step 1 sent to an initiator', [step1], 'ERR_HANDSHAKE_UNEXPECTED_MESSAGE');
  toInitiator('a step 3 sent to an initiator', [step3], 'ERR_HANDSHAKE_UNEXPECTED_MESSAGE');
  toInitiator('step 2 of version 1', [edit(step2, (d) => (d.version = 1))], 'ERR_HANDSHAKE_UNSUPPORTED_VERSION');
  toInitiator('node_id uppercase', [edit(step2, (d) => (d.node_id = (d.node_id as string).toUpperCase()))], 'ERR_HANDSHAKE_MALFORMED');
  toInitiator('options.framing unknown', [edit(step2, (d) => ((d.options as Record<string, unknown>).framing = 'xml'))], 'ERR_HANDSHAKE_OPTIONS');
  toInitiator('a framing the offer did not list', [step2.replace('"framing":"binary"', '"framing":"json"')], 'ERR_HANDSHAKE_OPTIONS', { framings: ['binary'] });
  toInitiator('no signatures although the offer asked for them', [step2.replace('"signatures":true', '"signatures":false')], 'ERR_HANDSHAKE_OPTIONS');
  toInitiator('the initiator\'s own random reflected', [edit(step2, (d) => (d.random = INPUTS.initiator_random))], 'ERR_HANDSHAKE_REFLECTION');
  toInitiator('node_id not the hash of identity_key', [edit(step2, (d) => (d.node_id = 'ab'.repeat(32)))], 'ERR_HANDSHAKE_NODE_ID_MISMATCH');
  toInitiator('an identity key of small order', [edit(step2, withKey(SMALL_ORDER))], 'ERR_HANDSHAKE_BAD_KEY');
  toInitiator('a non-canonical identity key', [edit(step2, withKey(NON_CANONICAL))], 'ERR_HANDSHAKE_BAD_KEY');
  toInitiator('the initiator\'s own ephemeral key reflected', [edit(step2, (d) => (d.public_key = JSON.parse(step1).public_key))], 'ERR_HANDSHAKE_REFLECTION');
  toInitiator('a low-order ephemeral key', [edit(step2, (d) => (d.public_key = '00'.repeat(32)))], 'ERR_HANDSHAKE_LOW_ORDER_KEY');
  toInitiator('mac_r flipped', [edit(step2, (d) => (d.mac = (d.mac as string).replace(/^./, (x) => (x === '0' ? '1' : '0'))))], 'ERR_HANDSHAKE_BAD_MAC');
  toInitiator('random edited (H2 changes: the MAC fails first)', [edit(step2, (d) => (d.random = 'ab'.repeat(32)))], 'ERR_HANDSHAKE_BAD_MAC');
  toInitiator('sig_r flipped', [edit(step2, (d) => (d.signature = (d.signature as string).replace(/^./, (x) => (x === '0' ? '1' : '0'))))], 'ERR_HANDSHAKE_BAD_SIGNATURE');
  const claimed = edit(step2, withKey(hex(eve.publicKey)));
  toInitiator('another identity claimed, with the MAC recomputed (only the signature can tell)',
    [edit(claimed, (d) => (d.mac = hex(responderMac(handshakeSecrets(step1, claimed, b(INPUTS.responder_ephemeral_private), 'responder')))))], 'ERR_HANDSHAKE_BAD_SIGNATURE');

  // Check every case against the implementation before writing it.
  const ids = identities();
  const cfg = configsOf(BASE);
  for (const r of out) {
    const side = r.side === 'initiator'
      ? new Handshake('initiator', ids.initiator, { ...cfg.initiator, ...r.config })
      : new Handshake('responder', ids.responder, { ...cfg.responder, ...r.config });
    if (r.side === 'initiator') {
      const first = side.start();
      if (!r.config) assert.equal(first, step1);
    }
    r.messages.forEach((m, i) => {
      if (i < r.messages.length - 1) side.receive(m);
      else assert.throws(() => side.receive(m), (e: unknown) => e instanceof McpE2eError && e.code === r.error, `handshake rejection "${r.name}" expected ${r.error}`);
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
  for (const c of CASES) files[`v2-${c.name}.json`] = buildCase(c);
  files['v2-handshake-rejections.json'] = {
    description:
      'mcp-e2e protocol version 2: refused handshakes (PROTOCOL.md §4.3), every ERR_HANDSHAKE_* in validation order. Each case feeds `messages` to a fresh ' +
      '`side` built from the inputs of v2-binary-signed.json (its configuration, overridden by `config`); an initiator first sends its step 1. All messages ' +
      'but the last are accepted; the last is refused with `error`. Generated by test/vectors/generate.ts.',
    base: 'v2-binary-signed.json',
    cases: buildHandshakeRejections(),
  };
  const ids = identities();
  files['v2-identity.json'] = {
    description: 'mcp-e2e: identities of the golden vectors (PROTOCOL.md §2) and the key file of the initiator. Generated by test/vectors/generate.ts.',
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
