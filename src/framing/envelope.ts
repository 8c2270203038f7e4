/**
 * Wire envelopes of session records (PROTOCOL.md §6.1-6.2): the seed's JSON
 * envelope with hex fields (`type: "encrypted"`), and a compact binary
 * record. Pure codecs: no keys here. Decoders check sizes before decoding
 * and validate every field strictly; a JSON envelope must be in its
 * canonical form, which is read without a JSON parser (the ciphertext hex
 * is found by position, not by parsing a 2 MB string).
 */
import { McpE2eError } from '../errors.js';
import { decodeHex } from '../util/assert.js';
import { isNodeId } from '../identity/identity.js';
import { GCM_NONCE_BYTES, GCM_TAG_BYTES, SIGNATURE_BYTES } from '../crypto/primitives.js';
import {
  BINARY_FLAG_SIGNED,
  BINARY_FRAME_TYPE,
  BINARY_HEADER_BYTES,
  MAX_COALESCED_RECORD_BYTES,
  MAX_CONTROL_MESSAGE_BYTES,
  MAX_COUNTER,
  MAX_EPOCH,
  RECORD_ENTRY_HEADER_BYTES,
  type Framing,
} from '../protocol.js';

/** One sealed record, independent of its framing. */
export interface SealedRecord {
  /** Key epoch (0 after the handshake, +1 per key update). */
  epoch: number;
  /** Per-direction record counter, from 0, never reset or wrapped. */
  counter: number;
  /** AES-256-GCM ciphertext followed by the 16-byte tag. */
  sealed: Buffer;
  /** 64-byte Ed25519 record signature, when negotiated. */
  signature?: Buffer;
  /** Sender node id (JSON framing only; binary records leave it implicit). */
  sender?: string;
}

/** Smallest sealed record: one entry header (an empty payload) plus the tag. */
export const MIN_SEALED_BYTES = RECORD_ENTRY_HEADER_BYTES + GCM_TAG_BYTES;

const JSON_PREFIX = '{"type":"encrypted","epoch":';
const JSON_NONCE = ',"nonce":"';
const JSON_CIPHERTEXT = '","ciphertext":"';
const JSON_SIGNATURE = '","signature":"';
const JSON_SENDER = '","sender":"';
const JSON_END = '"}';
/** Bytes of a JSON envelope besides the ciphertext hex, at most (10-digit epoch, with a signature). */
export const JSON_ENVELOPE_OVERHEAD_BYTES =
  JSON_PREFIX.length + 10 + JSON_NONCE.length + 2 * GCM_NONCE_BYTES + JSON_CIPHERTEXT.length + JSON_SIGNATURE.length + 2 * SIGNATURE_BYTES + JSON_SENDER.length + 64 + JSON_END.length;

/**
 * The largest record plaintext a receiver with this message limit accepts:
 * one entry of `maxMessageBytes` or of the largest control message, or
 * several small ones up to MAX_COALESCED_RECORD_BYTES, whichever is larger
 * (PROTOCOL.md §6.5, §7.3).
 */
export function maxRecordPlaintextBytes(maxMessageBytes: number): number {
  return RECORD_ENTRY_HEADER_BYTES + Math.max(maxMessageBytes, MAX_CONTROL_MESSAGE_BYTES, MAX_COALESCED_RECORD_BYTES);
}

/** The largest record on the wire for a given largest message (PROTOCOL.md §7.3): bytes of a binary record, characters of a JSON envelope. */
export function maxFrameBytes(framing: Framing, maxMessageBytes: number): number {
  const sealed = maxRecordPlaintextBytes(maxMessageBytes) + GCM_TAG_BYTES;
  return framing === 'binary' ? BINARY_HEADER_BYTES + SIGNATURE_BYTES + sealed : JSON_ENVELOPE_OVERHEAD_BYTES + 2 * sealed;
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

/** The canonical JSON envelope of a record (PROTOCOL.md §6.1): members in order, no whitespace. */
export function encodeJsonEnvelope(r: SealedRecord): string {
  const sig = r.signature ? `${JSON_SIGNATURE}${r.signature.toString('hex')}` : '';
  return `${JSON_PREFIX}${r.epoch}${JSON_NONCE}${nonceHexOf(r.counter)}${JSON_CIPHERTEXT}${r.sealed.toString('hex')}${sig}${JSON_SENDER}${r.sender}${JSON_END}`;
}

/** Canonical decimal: "0" or no leading zero, at most 10 digits (u32). */
const EPOCH_RE = /^(?:0|[1-9][0-9]{0,9})$/;

/**
 * Decode a JSON envelope of at most `maxBytes` characters: exactly the
 * canonical form of `encodeJsonEnvelope` (any other JSON, even with the
 * same values, is malformed).
 * @throws McpE2eError `ERR_FRAME_TOO_LARGE`, `ERR_FRAME_MALFORMED`.
 */
export function decodeJsonEnvelope(text: string, maxBytes: number): SealedRecord {
  if (text.length > maxBytes) throw tooLarge(text.length, maxBytes);
  if (!text.startsWith(JSON_PREFIX)) throw malformed('not a canonical envelope (type must come first, "encrypted")');
  let at = JSON_PREFIX.length;
  const epochEnd = text.indexOf(',', at);
  const epochText = epochEnd === -1 ? '' : text.slice(at, epochEnd);
  if (!EPOCH_RE.test(epochText)) throw malformed('epoch is not a canonical decimal integer');
  const epoch = Number(epochText);
  if (epoch > MAX_EPOCH) throw malformed('epoch is not a u32');
  at = epochEnd;
  if (!text.startsWith(JSON_NONCE, at)) throw malformed('nonce does not follow epoch');
  at += JSON_NONCE.length;
  const nonce = decodeHex(text.slice(at, at + 2 * GCM_NONCE_BYTES), GCM_NONCE_BYTES);
  if (!nonce || nonce.readUInt32BE(0) !== 0) throw malformed('nonce is not 12 bytes of lowercase hex with a zero prefix');
  const counter = nonce.readUInt32BE(4) * 2 ** 32 + nonce.readUInt32BE(8);
  if (counter > MAX_COUNTER) throw malformed('counter out of range');
  at += 2 * GCM_NONCE_BYTES;
  if (!text.startsWith(JSON_CIPHERTEXT, at)) throw malformed('ciphertext does not follow nonce');
  at += JSON_CIPHERTEXT.length;
  // Hex holds no quote: the next one ends the ciphertext.
  const ctEnd = text.indexOf('"', at);
  if (ctEnd === -1) throw malformed('ciphertext is not terminated');
  if (ctEnd - at < 2 * MIN_SEALED_BYTES) throw malformed('ciphertext too short');
  const sealed = decodeHex(text.slice(at, ctEnd));
  if (!sealed) throw malformed('ciphertext is not lowercase hex');
  at = ctEnd;
  let signature: Buffer | undefined;
  if (text.startsWith(JSON_SIGNATURE, at)) {
    at += JSON_SIGNATURE.length;
    signature = decodeHex(text.slice(at, at + 2 * SIGNATURE_BYTES), SIGNATURE_BYTES);
    if (!signature) throw malformed('signature is not 64 bytes of lowercase hex');
    at += 2 * SIGNATURE_BYTES;
  }
  if (!text.startsWith(JSON_SENDER, at)) throw malformed('sender does not follow');
  at += JSON_SENDER.length;
  const sender = text.slice(at, at + 64);
  if (!isNodeId(sender)) throw malformed('sender is not a node id');
  if (text.length !== at + 64 + JSON_END.length || !text.endsWith(JSON_END)) throw malformed('unexpected text after sender');
  return signature ? { epoch, counter, sealed, signature, sender } : { epoch, counter, sealed, sender };
}

/** Write the 14-byte binary record header into `out`. */
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

/** Decode a binary record of at most `maxBytes`. The result's buffers are views into `frame`. */
export function decodeBinaryFrame(frame: Buffer, maxBytes: number): SealedRecord {
  if (frame.length > maxBytes) throw tooLarge(frame.length, maxBytes);
  if (frame.length < BINARY_HEADER_BYTES + MIN_SEALED_BYTES) throw malformed('shorter than the smallest record');
  if (frame[0] !== BINARY_FRAME_TYPE) throw malformed('unknown record type');
  const flags = frame[1]!;
  if ((flags & ~BINARY_FLAG_SIGNED) !== 0) throw malformed('reserved flag bits set');
  const epoch = frame.readUInt32BE(2);
  const counter = frame.readUInt32BE(6) * 2 ** 32 + frame.readUInt32BE(10);
  if (counter > MAX_COUNTER) throw malformed('counter out of range');
  if (flags & BINARY_FLAG_SIGNED) {
    if (frame.length < BINARY_HEADER_BYTES + SIGNATURE_BYTES + MIN_SEALED_BYTES) throw malformed('shorter than the smallest signed record');
    return {
      epoch,
      counter,
      signature: frame.subarray(BINARY_HEADER_BYTES, BINARY_HEADER_BYTES + SIGNATURE_BYTES),
      sealed: frame.subarray(BINARY_HEADER_BYTES + SIGNATURE_BYTES),
    };
  }
  return { epoch, counter, sealed: frame.subarray(BINARY_HEADER_BYTES) };
}
