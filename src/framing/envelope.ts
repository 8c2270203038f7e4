/**
 * Wire envelopes of session frames (PROTOCOL.md §6): the seed's JSON envelope
 * with hex fields (`type: "encrypted"`), and a compact binary frame. Pure
 * codecs: no keys here. Decoders check sizes before decoding and validate
 * every field strictly.
 */
import { McpE2eError } from '../errors.js';
import { decodeHex, hasExactKeys } from '../util/assert.js';
import { isNodeId } from '../identity/identity.js';
import { GCM_NONCE_BYTES, GCM_TAG_BYTES, SIGNATURE_BYTES } from '../crypto/primitives.js';
import {
  BINARY_FLAG_SIGNED,
  BINARY_FRAME_TYPE,
  BINARY_HEADER_BYTES,
  MAX_COUNTER,
  MAX_EPOCH,
  type Framing,
} from '../protocol.js';

/** One sealed frame, independent of its framing. */
export interface SealedRecord {
  /** Key epoch (0 after the handshake, +1 per key update). */
  epoch: number;
  /** Per-direction frame counter, from 0, never reset or wrapped. */
  counter: number;
  /** AES-256-GCM ciphertext followed by the 16-byte tag. */
  sealed: Buffer;
  /** 64-byte Ed25519 frame signature, when negotiated. */
  signature?: Buffer;
  /** Sender node id (JSON framing only; binary frames leave it implicit). */
  sender?: string;
}

/** Smallest sealed payload: one content-type byte plus the tag. */
export const MIN_SEALED_BYTES = 1 + GCM_TAG_BYTES;
/** Fixed JSON envelope overhead beyond the hex fields, generous upper bound (bytes). */
const JSON_OVERHEAD_BYTES = 256;

/** The largest frame on the wire for a given largest plaintext message. */
export function maxFrameBytes(framing: Framing, maxMessageBytes: number): number {
  const sealed = 1 + maxMessageBytes + GCM_TAG_BYTES;
  return framing === 'binary'
    ? BINARY_HEADER_BYTES + SIGNATURE_BYTES + sealed
    : JSON_OVERHEAD_BYTES + 2 * (GCM_NONCE_BYTES + SIGNATURE_BYTES + sealed) + 64;
}

/** The 12-byte AES-GCM nonce of a counter: four zero bytes, then the counter as u64 big-endian. */
export function nonceOf(counter: number): Buffer {
  const nonce = Buffer.alloc(GCM_NONCE_BYTES);
  nonce.writeUInt32BE(Math.floor(counter / 2 ** 32), 4);
  nonce.writeUInt32BE(counter >>> 0, 8);
  return nonce;
}

/** Write the nonce of `counter` into `out` (12 bytes, the first four zero); returns `out`. */
export function writeNonce(out: Buffer, counter: number): Buffer {
  out.writeUInt32BE(0, 0);
  out.writeUInt32BE(Math.floor(counter / 2 ** 32), 4);
  out.writeUInt32BE(counter >>> 0, 8);
  return out;
}

/** The nonce of `counter` as 24 lowercase hex digits, without a buffer. */
function nonceHexOf(counter: number): string {
  const hi = Math.floor(counter / 2 ** 32).toString(16).padStart(8, '0');
  const lo = (counter >>> 0).toString(16).padStart(8, '0');
  return `00000000${hi}${lo}`;
}

function malformed(why: string): McpE2eError {
  return new McpE2eError('ERR_FRAME_MALFORMED', `malformed frame: ${why}`);
}

function tooLarge(size: number, max: number): McpE2eError {
  return new McpE2eError('ERR_FRAME_TOO_LARGE', `frame of ${size} bytes exceeds the limit of ${max} bytes`);
}

export function encodeJsonEnvelope(r: SealedRecord): string {
  // Field order is fixed for readability; decoders accept any order.
  const sig = r.signature ? `,"signature":"${r.signature.toString('hex')}"` : '';
  return `{"type":"encrypted","epoch":${r.epoch},"nonce":"${nonceHexOf(r.counter)}","ciphertext":"${r.sealed.toString('hex')}"${sig},"sender":"${r.sender}"}`;
}

const JSON_KEYS = ['type', 'epoch', 'nonce', 'ciphertext', 'sender'];

/** Decode a JSON envelope of at most `maxBytes` characters. */
export function decodeJsonEnvelope(text: string, maxBytes: number): SealedRecord {
  if (text.length > maxBytes) throw tooLarge(text.length, maxBytes);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw malformed('not valid JSON');
  }
  if (!hasExactKeys(doc, JSON_KEYS, ['signature'])) throw malformed('missing or unexpected fields');
  if (doc.type !== 'encrypted') throw malformed('type is not "encrypted"');
  const epoch = doc.epoch;
  if (typeof epoch !== 'number' || !Number.isInteger(epoch) || epoch < 0 || epoch > MAX_EPOCH) throw malformed('epoch is not a u32');
  const nonce = decodeHex(doc.nonce, GCM_NONCE_BYTES);
  if (!nonce || nonce.readUInt32BE(0) !== 0) throw malformed('nonce is not 12 bytes with a zero prefix');
  const counter = nonce.readUInt32BE(4) * 2 ** 32 + nonce.readUInt32BE(8);
  if (counter > MAX_COUNTER) throw malformed('counter out of range');
  if (typeof doc.ciphertext !== 'string' || doc.ciphertext.length < 2 * MIN_SEALED_BYTES) throw malformed('ciphertext too short');
  const sealed = decodeHex(doc.ciphertext);
  if (!sealed) throw malformed('ciphertext is not lowercase hex');
  let signature: Buffer | undefined;
  if ('signature' in doc) {
    signature = decodeHex(doc.signature, SIGNATURE_BYTES);
    if (!signature) throw malformed('signature is not 64 bytes of lowercase hex');
  }
  if (!isNodeId(doc.sender)) throw malformed('sender is not a node id');
  return signature ? { epoch, counter, sealed, signature, sender: doc.sender } : { epoch, counter, sealed, sender: doc.sender };
}

/** Write the 14-byte binary frame header into `out`. */
export function writeBinaryHeader(out: Buffer, epoch: number, counter: number, signed: boolean): void {
  out[0] = BINARY_FRAME_TYPE;
  out[1] = signed ? BINARY_FLAG_SIGNED : 0;
  out.writeUInt32BE(epoch, 2);
  out.writeUInt32BE(Math.floor(counter / 2 ** 32), 6);
  out.writeUInt32BE(counter >>> 0, 10);
}

export function encodeBinaryFrame(r: SealedRecord): Buffer {
  const sigLen = r.signature ? SIGNATURE_BYTES : 0;
  const out = Buffer.allocUnsafe(BINARY_HEADER_BYTES + sigLen + r.sealed.length);
  writeBinaryHeader(out, r.epoch, r.counter, r.signature !== undefined);
  if (r.signature) r.signature.copy(out, BINARY_HEADER_BYTES);
  r.sealed.copy(out, BINARY_HEADER_BYTES + sigLen);
  return out;
}

/** Decode a binary frame of at most `maxBytes`. The result's buffers are views into `frame`. */
export function decodeBinaryFrame(frame: Buffer, maxBytes: number): SealedRecord {
  if (frame.length > maxBytes) throw tooLarge(frame.length, maxBytes);
  if (frame.length < BINARY_HEADER_BYTES + MIN_SEALED_BYTES) throw malformed('shorter than the smallest frame');
  if (frame[0] !== BINARY_FRAME_TYPE) throw malformed('unknown frame type');
  const flags = frame[1]!;
  if ((flags & ~BINARY_FLAG_SIGNED) !== 0) throw malformed('reserved flag bits set');
  const epoch = frame.readUInt32BE(2);
  const counter = frame.readUInt32BE(6) * 2 ** 32 + frame.readUInt32BE(10);
  if (counter > MAX_COUNTER) throw malformed('counter out of range');
  if (flags & BINARY_FLAG_SIGNED) {
    if (frame.length < BINARY_HEADER_BYTES + SIGNATURE_BYTES + MIN_SEALED_BYTES) throw malformed('shorter than the smallest signed frame');
    return {
      epoch,
      counter,
      signature: frame.subarray(BINARY_HEADER_BYTES, BINARY_HEADER_BYTES + SIGNATURE_BYTES),
      sealed: frame.subarray(BINARY_HEADER_BYTES + SIGNATURE_BYTES),
    };
  }
  return { epoch, counter, sealed: frame.subarray(BINARY_HEADER_BYTES) };
}
