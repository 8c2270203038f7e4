/**
 * An encrypted session (PROTOCOL.md §6-7): AES-256-GCM with per-direction
 * counter nonces, header fields bound as associated data, an optional
 * Ed25519 signature per frame (encrypt, then sign), strict in-order
 * acceptance, and sender-driven key rotation without a round trip.
 *
 * The transport under a session is ordered and reliable, so the receiver
 * accepts exactly the next counter: anything replayed, reordered, dropped or
 * truncated ends the session.
 */
import type { KeyObject } from 'node:crypto';
import { McpE2eError } from '../errors.js';
import { aesGcmEncrypt, aesGcmOpen, aesKey, ed25519Verify, GCM_NONCE_BYTES, GCM_TAG_BYTES, hkdfSha256, SIGNATURE_BYTES, sha256, type Ed25519PublicKey } from '../crypto/primitives.js';
import type { NodeIdentity, PeerIdentity } from '../identity/identity.js';
import type { HandshakeResult } from '../handshake/handshake.js';
import {
  decodeBinaryFrame,
  decodeJsonEnvelope,
  encodeJsonEnvelope,
  maxFrameBytes,
  MIN_SEALED_BYTES,
  writeBinaryHeader,
  writeNonce,
  type SealedRecord,
} from '../framing/envelope.js';
import {
  BINARY_HEADER_BYTES,
  ContentType,
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_REKEY_AFTER_BYTES,
  DEFAULT_REKEY_AFTER_FRAMES,
  DEFAULT_REKEY_AFTER_MS,
  DIRECTION,
  FRAMING_CODE,
  LABEL,
  MAX_BYTES_PER_EPOCH,
  MAX_COUNTER,
  MAX_EPOCH,
  MAX_FRAMES_PER_EPOCH,
  type ContentTypeCode,
  type Framing,
  type Role,
} from '../protocol.js';

/** Session limits. Every field is optional; defaults are in PROTOCOL.md §7. */
export interface SessionOptions {
  /** Largest plaintext message, bytes, both directions. Default 16 MiB. */
  maxMessageBytes?: number;
  /** Rotate the sending key after this many frames. Default 2^20, at most 2^24. */
  rekeyAfterFrames?: number;
  /** Rotate the sending key after this many plaintext bytes. Default 2^30 (1 GiB), at most 2^36. */
  rekeyAfterBytes?: number;
  /** Rotate the sending key after this many milliseconds. Default 3,600,000 (1 hour). */
  rekeyAfterMs?: number;
  /** Clock, in milliseconds. Default `Date.now`. For tests. */
  now?: () => number;
}

/** One decrypted, verified message. */
export interface OpenedMessage {
  contentType: ContentTypeCode;
  /** The plaintext without its content-type byte. */
  payload: Buffer;
}

/** What the wire carries: a text frame (JSON framing) or a binary frame. */
export type WireFrame = string | Buffer;

interface DirectionState {
  rawKey: Buffer;
  key: KeyObject;
  epoch: number;
  counter: number;
  framesInEpoch: number;
  bytesInEpoch: number;
  epochStartMs: number;
}

const CONTEXT_BYTES = 16 + 1 + 1 + 4 + 8;
const DIGEST_BYTES = 32;

// Per-frame scratch, shared by all sessions: "label || context || digest",
// the frame signature input, whose middle part is also the frame's AAD; and
// the nonce. Safe to share because every use is synchronous and node:crypto
// copies what it is given (nothing keeps a reference past the call). Saves
// three small allocations per frame and keeps them out of each session.
const CONTEXT_OFFSET = LABEL.FRAME_SIGNATURE.length;
const DIGEST_OFFSET = CONTEXT_OFFSET + CONTEXT_BYTES;
const SIGNATURE_INPUT = Buffer.alloc(DIGEST_OFFSET + DIGEST_BYTES);
LABEL.FRAME_SIGNATURE.copy(SIGNATURE_INPUT, 0);
const CONTEXT = SIGNATURE_INPUT.subarray(CONTEXT_OFFSET, DIGEST_OFFSET);
const NONCE = Buffer.alloc(GCM_NONCE_BYTES);
/**
 * Messages up to this many characters (or bytes) are sealed from one buffer
 * (content type || payload); larger ones as two cipher updates. Measured at
 * 1 MB: measuring a string (byteLength) before writing it costs ~0.4 ms more
 * than Buffer.from; at 1 KB one update beats two.
 */
const SINGLE_UPDATE_MAX_CHARS = 16 * 1024;

/** Copy ciphertext parts and then the tag into `out` at `at`. */
function copyParts(out: Buffer, at: number, parts: readonly Buffer[], tag: Buffer): void {
  for (const p of parts) at += p.copy(out, at);
  tag.copy(out, at);
}

/** Next epoch's key: HKDF-SHA256(ikm = current key, salt = session id, info = "mcp-e2e/1 key update"). */
export function nextEpochKey(current: Uint8Array, sessionId: Uint8Array): Buffer {
  return hkdfSha256(current, sessionId, LABEL.KEY_UPDATE, 32);
}

function checkLimit(value: number | undefined, fallback: number, max: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1 || value > max) throw new RangeError(`"${name}" expected an integer 1..${max}, got ${value}`);
  return value;
}

export class Session {
  readonly role: Role;
  readonly sessionId: Buffer;
  readonly peer: PeerIdentity;
  readonly framing: Framing;
  readonly signatures: boolean;
  readonly maxMessageBytes: number;
  /** Largest frame this session accepts on the wire (set the socket limit to this). */
  readonly maxFrameBytes: number;

  readonly #identity: NodeIdentity;
  /** The peer's identity key, kept only when frames are signed. */
  readonly #peerKey: Ed25519PublicKey | undefined;
  readonly #send: DirectionState;
  readonly #recv: DirectionState;
  readonly #sendDir: number;
  readonly #recvDir: number;
  readonly #rekeyFrames: number;
  readonly #rekeyBytes: number;
  readonly #rekeyMs: number;
  readonly #now: () => number;
  #closed = false;

  /** Takes ownership of `result.sendKey` / `result.recvKey` (wiped on close). */
  constructor(result: HandshakeResult, identity: NodeIdentity, options: SessionOptions = {}) {
    this.role = result.role;
    this.sessionId = result.sessionId;
    this.peer = result.peer;
    this.framing = result.framing;
    this.signatures = result.signatures;
    this.maxMessageBytes = checkLimit(options.maxMessageBytes, DEFAULT_MAX_MESSAGE_BYTES, 2 ** 30, 'maxMessageBytes');
    this.maxFrameBytes = maxFrameBytes(this.framing, this.maxMessageBytes);
    this.#rekeyFrames = checkLimit(options.rekeyAfterFrames, DEFAULT_REKEY_AFTER_FRAMES, MAX_FRAMES_PER_EPOCH, 'rekeyAfterFrames');
    this.#rekeyBytes = checkLimit(options.rekeyAfterBytes, DEFAULT_REKEY_AFTER_BYTES, MAX_BYTES_PER_EPOCH, 'rekeyAfterBytes');
    this.#rekeyMs = checkLimit(options.rekeyAfterMs, DEFAULT_REKEY_AFTER_MS, 2 ** 31 - 1, 'rekeyAfterMs');
    this.#now = options.now ?? Date.now;
    this.#identity = identity;
    this.#peerKey = result.signatures ? result.peerKey : undefined;
    const initiator = result.role === 'initiator';
    this.#sendDir = initiator ? DIRECTION.INITIATOR_TO_RESPONDER : DIRECTION.RESPONDER_TO_INITIATOR;
    this.#recvDir = initiator ? DIRECTION.RESPONDER_TO_INITIATOR : DIRECTION.INITIATOR_TO_RESPONDER;
    const start = this.#now();
    this.#send = { rawKey: result.sendKey, key: aesKey(result.sendKey), epoch: 0, counter: 0, framesInEpoch: 0, bytesInEpoch: 0, epochStartMs: start };
    this.#recv = { rawKey: result.recvKey, key: aesKey(result.recvKey), epoch: 0, counter: 0, framesInEpoch: 0, bytesInEpoch: 0, epochStartMs: start };
  }

  /** Current sending epoch (for tests and diagnostics). */
  get sendEpoch(): number {
    return this.#send.epoch;
  }

  /** Current receiving epoch (for tests and diagnostics). */
  get recvEpoch(): number {
    return this.#recv.epoch;
  }

  /**
   * Encrypt (and sign, when negotiated) one message into a wire frame.
   * @throws McpE2eError `ERR_FRAME_TOO_LARGE` above `maxMessageBytes`,
   *   `ERR_SESSION_EXHAUSTED` when the counter or epoch space is used up,
   *   `ERR_SESSION_CLOSED` after `close()` or a failure.
   */
  seal(payload: string | Uint8Array, contentType: ContentTypeCode = ContentType.MCP): WireFrame {
    this.#checkOpen();
    // Small messages: content type || payload in one buffer (a string is
    // encoded straight into it), one cipher.update. Large ones: the content
    // type and the payload as two updates, so the payload is neither measured
    // twice (byteLength, then write) nor copied behind the type byte.
    let body: Uint8Array | undefined;
    let size: number;
    if (typeof payload === 'string') {
      if (payload.length <= SINGLE_UPDATE_MAX_CHARS) size = Buffer.byteLength(payload, 'utf8');
      else size = (body = Buffer.from(payload, 'utf8')).length;
    } else {
      size = payload.length;
      if (size > SINGLE_UPDATE_MAX_CHARS) body = payload;
    }
    if (size > this.maxMessageBytes) {
      throw new McpE2eError('ERR_FRAME_TOO_LARGE', `message of ${size} bytes exceeds the limit of ${this.maxMessageBytes} bytes`);
    }
    const s = this.#send;
    if (s.counter > MAX_COUNTER) throw new McpE2eError('ERR_SESSION_EXHAUSTED', 'frame counter exhausted; start a new session');
    if (s.framesInEpoch >= this.#rekeyFrames || s.bytesInEpoch + size + 1 > this.#rekeyBytes || this.#now() - s.epochStartMs >= this.#rekeyMs) {
      if (s.framesInEpoch > 0) this.#advance(s);
    }
    let plain: Buffer | undefined;
    if (body === undefined) {
      plain = Buffer.allocUnsafe(1 + size);
      plain[0] = contentType;
      if (typeof payload === 'string') plain.write(payload, 1, 'utf8');
      else plain.set(payload, 1);
    }
    const context = this.#writeContext(this.#sendDir, s.epoch, s.counter);
    const { ciphertext, tag } = aesGcmEncrypt(s.key, writeNonce(NONCE, s.counter), context, plain ? [plain] : [Buffer.of(contentType), body!]);
    // Our own copies of the plaintext (never the caller's buffer) are wiped.
    plain?.fill(0);
    if (body !== undefined && body !== payload) body.fill(0);
    const sealedBytes = 1 + size + GCM_TAG_BYTES;
    let frame: WireFrame;
    if (this.framing === 'binary') {
      // Ciphertext and tag are copied once, into the frame; the signature
      // digest is taken over the frame's own bytes.
      const sealedAt = BINARY_HEADER_BYTES + (this.signatures ? SIGNATURE_BYTES : 0);
      const out = Buffer.allocUnsafe(sealedAt + sealedBytes);
      writeBinaryHeader(out, s.epoch, s.counter, this.signatures);
      copyParts(out, sealedAt, ciphertext, tag);
      if (this.signatures) signFrame(this.#identity, signatureInput(out.subarray(sealedAt))).copy(out, BINARY_HEADER_BYTES);
      frame = out;
    } else {
      const sealed = Buffer.allocUnsafe(sealedBytes);
      copyParts(sealed, 0, ciphertext, tag);
      const record: SealedRecord = { epoch: s.epoch, counter: s.counter, sealed, sender: this.#identity.nodeId };
      if (this.signatures) record.signature = signFrame(this.#identity, signatureInput(sealed));
      frame = encodeJsonEnvelope(record);
    }
    s.counter++;
    s.framesInEpoch++;
    s.bytesInEpoch += size + 1;
    return frame;
  }

  /**
   * Check and decrypt one wire frame. Any failure ends the session: later
   * calls throw `ERR_SESSION_CLOSED`.
   * @throws McpE2eError `ERR_FRAME_MALFORMED`, `ERR_FRAME_TOO_LARGE`,
   *   `ERR_FRAME_SENDER`, `ERR_FRAME_EPOCH`, `ERR_FRAME_COUNTER`,
   *   `ERR_FRAME_SIGNATURE`, `ERR_FRAME_DECRYPT`, `ERR_FRAME_CONTENT_TYPE`,
   *   `ERR_SESSION_EXHAUSTED`.
   */
  open(frame: WireFrame): OpenedMessage {
    this.#checkOpen();
    try {
      return this.#open(frame);
    } catch (err) {
      this.close();
      throw err;
    }
  }

  #open(frame: WireFrame): OpenedMessage {
    let record: SealedRecord;
    if (this.framing === 'binary') {
      if (!Buffer.isBuffer(frame)) throw new McpE2eError('ERR_FRAME_MALFORMED', 'text frame in a binary-framed session');
      record = decodeBinaryFrame(frame, this.maxFrameBytes);
    } else {
      if (typeof frame !== 'string') throw new McpE2eError('ERR_FRAME_MALFORMED', 'binary frame in a JSON-framed session');
      record = decodeJsonEnvelope(frame, this.maxFrameBytes);
      if (record.sender !== this.peer.nodeId) throw new McpE2eError('ERR_FRAME_SENDER', 'sender is not the node id authenticated in the handshake');
    }
    if (record.sealed.length - MIN_SEALED_BYTES > this.maxMessageBytes) {
      throw new McpE2eError('ERR_FRAME_TOO_LARGE', `message exceeds the limit of ${this.maxMessageBytes} bytes`);
    }
    const r = this.#recv;
    if (record.epoch !== r.epoch && record.epoch !== r.epoch + 1) {
      throw new McpE2eError('ERR_FRAME_EPOCH', `frame epoch ${record.epoch}, expected ${r.epoch} or ${r.epoch + 1}`);
    }
    if (record.counter !== r.counter) {
      throw new McpE2eError('ERR_FRAME_COUNTER', `frame counter ${record.counter}, expected ${r.counter} (replayed, reordered or dropped frame)`);
    }
    if (this.signatures !== (record.signature !== undefined)) {
      throw new McpE2eError('ERR_FRAME_SIGNATURE', this.signatures ? 'frame signature missing' : 'unexpected frame signature');
    }
    // An epoch beyond MAX_EPOCH cannot be decoded, so a rotation never overflows.
    const rotating = record.epoch === r.epoch + 1;
    const framesInEpoch = rotating ? 0 : r.framesInEpoch;
    const bytesInEpoch = rotating ? 0 : r.bytesInEpoch;
    // Counted as the sender counts: plaintext bytes including the content-type byte.
    const plainBytes = record.sealed.length - GCM_TAG_BYTES;
    if (framesInEpoch >= MAX_FRAMES_PER_EPOCH || bytesInEpoch + plainBytes > MAX_BYTES_PER_EPOCH) {
      throw new McpE2eError('ERR_SESSION_EXHAUSTED', 'the peer exceeded the per-epoch key usage limit without rotating');
    }
    const rawKey = rotating ? nextEpochKey(r.rawKey, this.sessionId) : r.rawKey;
    const key = rotating ? aesKey(rawKey) : r.key;
    const context = this.#writeContext(this.#recvDir, record.epoch, record.counter);
    // The GCM tag is checked first (cheap); the plaintext is released only
    // after the signature verifies too.
    const plaintext = aesGcmOpen(key, writeNonce(NONCE, record.counter), context, record.sealed);
    if (record.signature && !ed25519Verify(this.#peerKey!, signatureInput(record.sealed), record.signature)) {
      plaintext.fill(0);
      throw new McpE2eError('ERR_FRAME_SIGNATURE', 'frame signature does not verify');
    }
    const contentType = plaintext[0];
    if (contentType !== ContentType.MCP && contentType !== ContentType.CONTROL) {
      plaintext.fill(0);
      throw new McpE2eError('ERR_FRAME_CONTENT_TYPE', `unknown content type ${contentType}`);
    }
    if (rotating) {
      r.rawKey.fill(0);
      r.rawKey = rawKey;
      r.key = key;
      r.epoch++;
      r.framesInEpoch = 0;
      r.bytesInEpoch = 0;
    }
    r.counter++;
    r.framesInEpoch++;
    r.bytesInEpoch += plainBytes;
    return { contentType, payload: plaintext.subarray(1) };
  }

  /** Wipe the session keys. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#send.rawKey.fill(0);
    this.#recv.rawKey.fill(0);
  }

  get closed(): boolean {
    return this.#closed;
  }

  #checkOpen(): void {
    if (this.#closed) throw new McpE2eError('ERR_SESSION_CLOSED', 'the session is closed');
  }

  #advance(s: DirectionState): void {
    if (s.epoch === MAX_EPOCH) throw new McpE2eError('ERR_SESSION_EXHAUSTED', 'epoch space exhausted; start a new session');
    const next = nextEpochKey(s.rawKey, this.sessionId);
    s.rawKey.fill(0);
    s.rawKey = next;
    s.key = aesKey(next);
    s.epoch++;
    s.framesInEpoch = 0;
    s.bytesInEpoch = 0;
    s.epochStartMs = this.#now();
  }

  /**
   * session_id || direction || framing || epoch (u32) || counter (u64): the
   * AAD and signed context, written into the shared scratch (see CONTEXT).
   */
  #writeContext(direction: number, epoch: number, counter: number): Buffer {
    const c = CONTEXT;
    this.sessionId.copy(c, 0);
    c[16] = direction;
    c[17] = FRAMING_CODE[this.framing];
    c.writeUInt32BE(epoch, 18);
    c.writeUInt32BE(Math.floor(counter / 2 ** 32), 22);
    c.writeUInt32BE(counter >>> 0, 26);
    return c;
  }
}

/**
 * "mcp-e2e/1 frame signature\0" || context || SHA-256(ciphertext || tag),
 * in the shared scratch; the context part must have been written by
 * `#writeContext` for this frame just before.
 */
function signatureInput(sealed: Uint8Array): Buffer {
  sha256(sealed).copy(SIGNATURE_INPUT, DIGEST_OFFSET);
  return SIGNATURE_INPUT;
}

/** The frame signature over a `signatureInput` (which starts with the frame label). */
function signFrame(identity: NodeIdentity, input: Buffer): Buffer {
  return identity.sign(LABEL.FRAME_SIGNATURE, input.subarray(CONTEXT_OFFSET));
}
