/**
 * What a test (playing a broken or hostile peer) can build by hand:
 * - handshake values computed from one side's ephemeral private key: the
 *   shared secret, T2, H2 and the handshake keys of PROTOCOL.md §5, and a
 *   step 3 sealed around any 128 bytes (refused step 3s behind a valid
 *   encryption);
 * - records sealed around any plaintext with a session's keys (bad inner
 *   lengths, an entry after CLOSE), which `Session` never produces.
 * Used by the unit tests, the fuzzers and the golden vectors.
 */
import { aesGcmEncrypt, aesKey, hkdfSha256, hmacSha256, sha256, x25519, x25519FromPrivate } from '../../src/crypto/primitives.js';
import { encodeBinaryFrame, encodeJsonEnvelope, nonceOf } from '../../src/framing/envelope.js';
import type { NodeIdentity } from '../../src/identity/identity.js';
import { FRAMING_CODE, LABEL, type Framing } from '../../src/protocol.js';

const hex = (s: string) => Buffer.from(s, 'hex');

/** T2 of PROTOCOL.md §5.1 from the decoded step 1 and step 2 (JSON texts). */
export function transcriptT2(step1: string, step2: string): Buffer {
  const m1 = JSON.parse(step1);
  const m2 = JSON.parse(step2);
  return Buffer.concat([
    LABEL.TRANSCRIPT,
    Buffer.of(m1.version, m1.versions.length, ...m1.versions),
    hex(m1.public_key),
    hex(m1.random),
    Buffer.of(m1.options.signatures ? 1 : 0, m1.options.framings.length, ...m1.options.framings.map((f: Framing) => FRAMING_CODE[f])),
    hex(m2.public_key),
    hex(m2.random),
    hex(m2.identity_key),
    hex(m2.node_id),
    Buffer.of(m2.options.signatures ? 1 : 0, FRAMING_CODE[m2.options.framing as Framing]),
  ]);
}

export interface HandshakeSecrets {
  dh: Buffer;
  t2: Buffer;
  h2: Buffer;
  finishedResponder: Buffer;
  finishedInitiator: Buffer;
  step3Key: Buffer;
}

/**
 * The secrets of a handshake from its first two messages and the ephemeral
 * private key of one side (`peerOf` picks whose public key to agree with:
 * the initiator's private key agrees with step 2's key, the responder's with
 * step 1's).
 */
export function handshakeSecrets(step1: string, step2: string, ephemeralPrivate: Uint8Array, side: 'initiator' | 'responder'): HandshakeSecrets {
  const peer = JSON.parse(side === 'initiator' ? step2 : step1).public_key as string;
  const dh = x25519(x25519FromPrivate(ephemeralPrivate), hex(peer));
  const t2 = transcriptT2(step1, step2);
  const h2 = sha256(t2);
  const keys = hkdfSha256(dh, Buffer.alloc(0), Buffer.concat([LABEL.HANDSHAKE_KEYS, h2]), 96);
  return { dh, t2, h2, finishedResponder: keys.subarray(0, 32), finishedInitiator: keys.subarray(32, 64), step3Key: keys.subarray(64, 96) };
}

/** A step 3 message sealing `plaintext` (normally I_i || sig_i || mac_i, 128 bytes) under the handshake's step 3 key. */
export function sealStep3(secrets: HandshakeSecrets, plaintext: Buffer): string {
  const { ciphertext, tag } = aesGcmEncrypt(aesKey(secrets.step3Key), Buffer.alloc(12), secrets.h2, [plaintext]);
  return `{"type":"key_exchange","version":2,"step":3,"ciphertext":"${Buffer.concat([...ciphertext, tag]).toString('hex')}"}`;
}

/** H3 for an initiator identity key, and the MAC a holder of the shared secret computes over it. */
export function initiatorProof(secrets: HandshakeSecrets, identityKey: Buffer): { h3: Buffer; mac: Buffer } {
  const h3 = sha256(secrets.t2, identityKey);
  return { h3, mac: hmacSha256(secrets.finishedInitiator, LABEL.INITIATOR_FINISHED, h3) };
}

/** The responder's MAC over H2 (for step-2 forgeries by someone who knows the shared secret). */
export function responderMac(secrets: HandshakeSecrets): Buffer {
  return hmacSha256(secrets.finishedResponder, LABEL.RESPONDER_FINISHED, secrets.h2);
}

/** A record plaintext (PROTOCOL.md §6.5): each entry as u8(type) || u32(length) || payload. */
export function plaintextOf(entries: Array<{ type: number; payload: Buffer }>): Buffer {
  return Buffer.concat(entries.flatMap((e) => {
    const h = Buffer.alloc(5);
    h[0] = e.type;
    h.writeUInt32BE(e.payload.length, 1);
    return [h, e.payload];
  }));
}

/** What one direction of a session needs to seal records by hand (PROTOCOL.md §6.3-6.4). */
export interface RawSealer {
  sessionId: Buffer;
  /** 0x01 initiator to responder, 0x02 the other way. */
  direction: number;
  framing: Framing;
  signatures: boolean;
  /** The sending key of each epoch, from 0. */
  keys: Buffer[];
  signer: NodeIdentity;
}

/**
 * Seal any plaintext as a record of `epoch` and `counter`: what a broken or
 * hostile peer with the session keys could send. Returns the wire form (JSON
 * text, or binary as hex).
 */
export function sealRaw(s: RawSealer, epoch: number, counter: number, plaintext: Buffer): string {
  const aad = Buffer.alloc(30);
  s.sessionId.copy(aad, 0);
  aad[16] = s.direction;
  aad[17] = FRAMING_CODE[s.framing];
  aad.writeUInt32BE(epoch, 18);
  aad.writeBigUInt64BE(BigInt(counter), 22);
  const { ciphertext, tag } = aesGcmEncrypt(aesKey(s.keys[epoch]!), nonceOf(counter), aad, [plaintext]);
  const sealed = Buffer.concat([...ciphertext, tag]);
  const signature = s.signatures ? s.signer.sign(LABEL.RECORD_SIGNATURE, Buffer.concat([aad, sha256(sealed)])) : undefined;
  const record = { epoch, counter, sealed, ...(signature ? { signature } : {}), sender: s.signer.nodeId };
  return s.framing === 'json' ? encodeJsonEnvelope(record) : encodeBinaryFrame(record).toString('hex');
}
