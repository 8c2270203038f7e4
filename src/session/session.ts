/**
 * An encrypted session of protocol version 2 (PROTOCOL.md §6-7): records of
 * one or more entries (MCP messages, control messages, the sealed CLOSE),
 * one AES-256-GCM operation and at most one Ed25519 signature per record
 * (encrypt, then sign), per-direction counter nonces, header fields bound as
 * associated data, strict in-order acceptance, and sender-driven key
 * rotation without a round trip.
 *
 * The transport under a session is ordered and reliable, so the receiver
 * accepts exactly the next counter: anything replayed, reordered, dropped or
 * truncated ends the session, and the sealed CLOSE tells an orderly end of
 * the stream from one an attacker cut short.
 */
import type { KeyObject } from 'node:crypto';
import { McpE2eError, isErrorCode, type ErrorCode } from '../errors.js';
import {
  aesGcmEncrypt,
  aesGcmOpen,
  aesKey,
  ed25519Verify,
  GCM_NONCE_BYTES,
  GCM_TAG_BYTES,
  hkdfSha256,
  KEY_BYTES,
  SIGNATURE_BYTES,
  sha256,
  type Ed25519PublicKey,
} from '../crypto/primitives.js';
import type { NodeIdentity, PeerIdentity } from '../identity/identity.js';
import { assertBytes } from '../util/assert.js';
import type { HandshakeResult } from '../handshake/handshake.js';
import {
  decodeBinaryFrame,
  decodeJsonEnvelope,
  encodeJsonEnvelope,
  maxFrameBytes,
  maxRecordPlaintextBytes,
  writeBinaryHeader,
  writeNonce,
  type SealedRecord,
} from '../framing/envelope.js';
import {
  BINARY_HEADER_BYTES,
  ContentType,
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_REKEY_AFTER_BYTES,
  DEFAULT_REKEY_AFTER_MS,
  DEFAULT_REKEY_AFTER_RECORDS,
  DIRECTION,
  FRAMING_CODE,
  LABEL,
  MAX_BYTES_PER_EPOCH,
  MAX_CLOSE_REASON_BYTES,
  MAX_COALESCED_RECORD_BYTES,
  MAX_CONTROL_MESSAGE_BYTES,
  MAX_COUNTER,
  MAX_EPOCH,
  MAX_RECORD_ENTRIES,
  MAX_RECORDS_PER_EPOCH,
  RECORD_ENTRY_HEADER_BYTES,
  type ContentTypeCode,
  type Framing,
  type MessageContentType,
  type Role,
} from '../protocol.js';

/** Session limits. Every field is optional; defaults are in PROTOCOL.md §7. */
export interface SessionOptions {
  /** Largest plaintext message, bytes, both directions. Default 16 MiB. */
  maxMessageBytes?: number;
  /** Rotate the sending key after this many records. Default 2^20, at most 2^24. */
  rekeyAfterRecords?: number;
  /** Rotate the sending key after this many record plaintext bytes. Default 2^30 (1 GiB), at most 2^36. */
  rekeyAfterBytes?: number;
  /** Rotate the sending key after this many milliseconds. Default 3,600,000 (1 hour). */
  rekeyAfterMs?: number;
  /** Clock, in milliseconds. Default `Date.now`. For tests. */
  now?: () => number;
}

/** One entry of a received record, decrypted and verified. */
export interface OpenedMessage {
  contentType: ContentTypeCode;
  /** The entry's payload (for CLOSE: the ASCII reason, empty for an orderly close). */
  payload: Buffer;
}

/** One message to seal into a record. */
export interface RecordEntry {
  contentType: MessageContentType;
  /** UTF-8 JSON text, or its bytes. */
  payload: string | Uint8Array;
}

/** What the wire carries: a text message (JSON framing) or a binary message. */
export type WireFrame = string | Buffer;

interface DirectionState {
  rawKey: Buffer;
  /**
   * `rawKey` as a KeyObject (no key set-up per record), made by the first
   * record of the epoch: an idle session holds no KeyObject (two cost
   * ~450 B of heap per connection, a server's idle connections most of all).
   */
  key: KeyObject | undefined;
  epoch: number;
  counter: number;
  recordsInEpoch: number;
  bytesInEpoch: number;
  epochStartMs: number;
}

const CONTEXT_BYTES = 16 + 1 + 1 + 4 + 8;
const DIGEST_BYTES = 32;
const EMPTY = Buffer.alloc(0);

// Per-record scratch, shared by all sessions: "label || context || digest",
// the record signature input, whose middle part is also the record's AAD;
// and the nonce. Safe to share because every use is synchronous and
// node:crypto copies what it is given (nothing keeps a reference past the
// call). Saves three small allocations per record.
const CONTEXT_OFFSET = LABEL.RECORD_SIGNATURE.length;
const DIGEST_OFFSET = CONTEXT_OFFSET + CONTEXT_BYTES;
const SIGNATURE_INPUT = Buffer.alloc(DIGEST_OFFSET + DIGEST_BYTES);
LABEL.RECORD_SIGNATURE.copy(SIGNATURE_INPUT, 0);
const CONTEXT = SIGNATURE_INPUT.subarray(CONTEXT_OFFSET, DIGEST_OFFSET);
const NONCE = Buffer.alloc(GCM_NONCE_BYTES);
/**
 * A lone message of more than this many characters (or bytes) is sealed as
 * two cipher updates (entry header, then the payload) instead of being
 * copied behind its header. Measured at 1 MB: measuring a string
 * (byteLength) before writing it costs ~0.4 ms more than Buffer.from; at
 * 1 KB one update beats two.
 */
const SINGLE_UPDATE_MAX_CHARS = 16 * 1024;
/** The reason of a CLOSE entry: empty, or an error code's spelling (PROTOCOL.md §6.8). */
const CLOSE_REASON_RE = /^[A-Z][A-Z0-9_]*$/;

/** Copy ciphertext parts and then the tag into `out` at `at`. */
function copyParts(out: Buffer, at: number, parts: readonly Buffer[], tag: Buffer): void {
  for (const p of parts) at += p.copy(out, at);
  tag.copy(out, at);
}

function writeEntryHeader(out: Buffer, at: number, contentType: number, length: number): void {
  out[at] = contentType;
  out.writeUInt32BE(length, at + 1);
}

/** Next epoch's key: HKDF-SHA256(ikm = current key, salt = empty, info = "mcp-e2e/2 key update" || session id). */
export function nextEpochKey(current: Uint8Array, sessionId: Uint8Array): Buffer {
  return hkdfSha256(current, EMPTY, Buffer.concat([LABEL.KEY_UPDATE, sessionId]), 32);
}

function checkLimit(value: number | undefined, fallback: number, max: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1 || value > max) throw new RangeError(`"${name}" expected an integer 1..${max}, got ${value}`);
  return value;
}

function recordMalformed(why: string): McpE2eError {
  return new McpE2eError('ERR_ENTRIES_MALFORMED', `malformed record: ${why}`);
}

export class Session {
  readonly role: Role;
  readonly sessionId: Buffer;
  readonly peer: PeerIdentity;
  readonly framing: Framing;
  readonly signatures: boolean;
  readonly maxMessageBytes: number;
  /** Largest record this session accepts on the wire (set the socket limit to this). */
  readonly maxFrameBytes: number;

  readonly #identity: NodeIdentity;
  /** The peer's identity key, kept only when records are signed. */
  readonly #peerKey: Ed25519PublicKey | undefined;
  readonly #send: DirectionState;
  readonly #recv: DirectionState;
  readonly #sendDir: number;
  readonly #recvDir: number;
  readonly #rekeyRecords: number;
  readonly #rekeyBytes: number;
  readonly #rekeyMs: number;
  readonly #maxRecordBytes: number;
  readonly #now: () => number;
  #closed = false;
  /** We sealed our CLOSE: nothing more is sealed. */
  #sendClosed = false;
  /** The peer's CLOSE was opened: nothing more is accepted. */
  #peerClosed = false;
  /** A received record failed: the receive key is wiped; only our CLOSE may still be sealed. */
  #recvFailed = false;

  /** Takes ownership of `result.sendKey` / `result.recvKey` (wiped on close). */
  constructor(result: HandshakeResult, identity: NodeIdentity, options: SessionOptions = {}) {
    this.role = result.role;
    this.sessionId = result.sessionId;
    this.peer = result.peer;
    this.framing = result.framing;
    this.signatures = result.signatures;
    this.maxMessageBytes = checkLimit(options.maxMessageBytes, DEFAULT_MAX_MESSAGE_BYTES, 2 ** 30, 'maxMessageBytes');
    this.maxFrameBytes = maxFrameBytes(this.framing, this.maxMessageBytes);
    this.#maxRecordBytes = maxRecordPlaintextBytes(this.maxMessageBytes);
    this.#rekeyRecords = checkLimit(options.rekeyAfterRecords, DEFAULT_REKEY_AFTER_RECORDS, MAX_RECORDS_PER_EPOCH, 'rekeyAfterRecords');
    this.#rekeyBytes = checkLimit(options.rekeyAfterBytes, DEFAULT_REKEY_AFTER_BYTES, MAX_BYTES_PER_EPOCH, 'rekeyAfterBytes');
    this.#rekeyMs = checkLimit(options.rekeyAfterMs, DEFAULT_REKEY_AFTER_MS, 2 ** 31 - 1, 'rekeyAfterMs');
    this.#now = options.now ?? Date.now;
    this.#identity = identity;
    this.#peerKey = result.signatures ? result.peerKey : undefined;
    const initiator = result.role === 'initiator';
    this.#sendDir = initiator ? DIRECTION.INITIATOR_TO_RESPONDER : DIRECTION.RESPONDER_TO_INITIATOR;
    this.#recvDir = initiator ? DIRECTION.RESPONDER_TO_INITIATOR : DIRECTION.INITIATOR_TO_RESPONDER;
    // Epoch 0's clock starts when the session does (PROTOCOL.md §7.2).
    const start = this.#now();
    assertBytes(result.sendKey, KEY_BYTES, 'sendKey');
    assertBytes(result.recvKey, KEY_BYTES, 'recvKey');
    this.#send = { rawKey: result.sendKey, key: undefined, epoch: 0, counter: 0, recordsInEpoch: 0, bytesInEpoch: 0, epochStartMs: start };
    this.#recv = { rawKey: result.recvKey, key: undefined, epoch: 0, counter: 0, recordsInEpoch: 0, bytesInEpoch: 0, epochStartMs: start };
  }

  /** Current sending epoch (for tests and diagnostics). */
  get sendEpoch(): number {
    return this.#send.epoch;
  }

  /** Current receiving epoch (for tests and diagnostics). */
  get recvEpoch(): number {
    return this.#recv.epoch;
  }

  /** True once our CLOSE is sealed (nothing more can be sent). */
  get sendClosed(): boolean {
    return this.#sendClosed;
  }

  /**
   * The largest payload of a message of `contentType` (bytes). A control
   * message's limit is the protocol's, whatever the message limit: control
   * messages (peer records, gossip) are the library's, not the application's,
   * and the limit is not negotiated (PROTOCOL.md §6.9).
   */
  maxPayloadBytes(contentType: MessageContentType): number {
    return contentType === ContentType.CONTROL ? MAX_CONTROL_MESSAGE_BYTES : this.maxMessageBytes;
  }

  /** Seal one message as a record of one entry. See `sealRecord`. */
  seal(payload: string | Uint8Array, contentType: MessageContentType = ContentType.MCP): WireFrame {
    return this.sealRecord([{ contentType, payload }]);
  }

  /**
   * Encrypt (and sign, when negotiated) messages into one record.
   * @throws McpE2eError `ERR_FRAME_TOO_LARGE` for a message above its limit
   *   (`maxPayloadBytes`; nothing is sealed), `ERR_SESSION_EXHAUSTED` when the
   *   counter or epoch space is used up, `ERR_SESSION_CLOSED` after `close()`,
   *   a failure or our CLOSE.
   * @throws RangeError for no entries, more than MAX_RECORD_ENTRIES, or
   *   several entries above MAX_COALESCED_RECORD_BYTES (the caller's batching).
   */
  sealRecord(entries: readonly RecordEntry[]): WireFrame {
    this.#checkOpen();
    if (this.#sendClosed) throw new McpE2eError('ERR_SESSION_CLOSED', 'the session is closed for sending (CLOSE was sent)');
    if (this.#recvFailed) throw new McpE2eError('ERR_SESSION_CLOSED', 'the session failed; only CLOSE can be sent');
    const n = entries.length;
    if (n === 0 || n > MAX_RECORD_ENTRIES) throw new RangeError(`"entries" expected 1..${MAX_RECORD_ENTRIES} messages, got ${n}`);
    if (n === 1) {
      const e = entries[0]!;
      return this.#sealOne(e.contentType, e.payload);
    }
    // Several small messages: headers and payloads written into one buffer, one cipher update.
    let size = 0;
    const sizes = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      const e = entries[i]!;
      const bytes = typeof e.payload === 'string' ? Buffer.byteLength(e.payload, 'utf8') : e.payload.length;
      this.#checkPayload(e.contentType, bytes);
      sizes[i] = bytes;
      size += RECORD_ENTRY_HEADER_BYTES + bytes;
    }
    if (size > MAX_COALESCED_RECORD_BYTES) throw new RangeError(`a record of several messages holds at most ${MAX_COALESCED_RECORD_BYTES} bytes, got ${size}`);
    const plain = Buffer.allocUnsafe(size);
    let at = 0;
    for (let i = 0; i < n; i++) {
      const e = entries[i]!;
      writeEntryHeader(plain, at, e.contentType, sizes[i]!);
      at += RECORD_ENTRY_HEADER_BYTES;
      if (typeof e.payload === 'string') plain.write(e.payload, at, 'utf8');
      else plain.set(e.payload, at);
      at += sizes[i]!;
    }
    return this.#sealPlaintext([plain], size, true);
  }

  /**
   * Seal our CLOSE (PROTOCOL.md §6.8): the authenticated end of our stream,
   * empty for an orderly close or with the code that ended the session.
   * Nothing can be sealed after it.
   * @throws McpE2eError as `sealRecord`.
   */
  sealClose(reason?: ErrorCode): WireFrame {
    this.#checkOpen();
    if (this.#sendClosed) throw new McpE2eError('ERR_SESSION_CLOSED', 'CLOSE was already sent');
    const text = reason ?? '';
    const plain = Buffer.allocUnsafe(RECORD_ENTRY_HEADER_BYTES + text.length);
    writeEntryHeader(plain, 0, ContentType.CLOSE, text.length);
    plain.write(text, RECORD_ENTRY_HEADER_BYTES, 'ascii');
    const frame = this.#sealPlaintext([plain], plain.length, true);
    this.#sendClosed = true;
    return frame;
  }

  #checkPayload(contentType: MessageContentType, bytes: number): void {
    const max = this.maxPayloadBytes(contentType);
    if (bytes > max) throw new McpE2eError('ERR_FRAME_TOO_LARGE', `message of ${bytes} bytes exceeds the limit of ${max} bytes`);
  }

  #sealOne(contentType: MessageContentType, payload: string | Uint8Array): WireFrame {
    // Small messages: header || payload in one buffer (a string is encoded
    // straight into it), one cipher.update. Large ones: the header and the
    // payload as two updates, so the payload is neither measured twice
    // (byteLength, then write) nor copied behind the header.
    let body: Uint8Array | undefined;
    let bytes: number;
    if (typeof payload === 'string') {
      if (payload.length <= SINGLE_UPDATE_MAX_CHARS) bytes = Buffer.byteLength(payload, 'utf8');
      else bytes = (body = Buffer.from(payload, 'utf8')).length;
    } else {
      bytes = payload.length;
      if (bytes > SINGLE_UPDATE_MAX_CHARS) body = payload;
    }
    this.#checkPayload(contentType, bytes);
    const size = RECORD_ENTRY_HEADER_BYTES + bytes;
    if (body === undefined) {
      const plain = Buffer.allocUnsafe(size);
      writeEntryHeader(plain, 0, contentType, bytes);
      if (typeof payload === 'string') plain.write(payload, RECORD_ENTRY_HEADER_BYTES, 'utf8');
      else plain.set(payload, RECORD_ENTRY_HEADER_BYTES);
      return this.#sealPlaintext([plain], size, true);
    }
    const header = Buffer.allocUnsafe(RECORD_ENTRY_HEADER_BYTES);
    writeEntryHeader(header, 0, contentType, bytes);
    const frame = this.#sealPlaintext([header, body], size, false);
    // Our own copy of the plaintext (never the caller's buffer) is wiped.
    if (body !== payload) body.fill(0);
    return frame;
  }

  /** Seal the record plaintext `parts` (`size` bytes in all); `ours` parts are wiped afterwards. */
  #sealPlaintext(parts: Buffer[] | [Buffer, Uint8Array], size: number, ours: boolean): WireFrame {
    const s = this.#send;
    if (s.counter > MAX_COUNTER) throw new McpE2eError('ERR_SESSION_EXHAUSTED', 'record counter exhausted; start a new session');
    if (s.recordsInEpoch >= this.#rekeyRecords || s.bytesInEpoch + size > this.#rekeyBytes || this.#now() - s.epochStartMs >= this.#rekeyMs) {
      if (s.recordsInEpoch > 0) this.#advance(s);
    }
    const context = this.#writeContext(this.#sendDir, s.epoch, s.counter);
    const { ciphertext, tag } = aesGcmEncrypt((s.key ??= aesKey(s.rawKey)), writeNonce(NONCE, s.counter), context, parts);
    if (ours) for (const p of parts) p.fill(0);
    else parts[0]!.fill(0);
    const sealedBytes = size + GCM_TAG_BYTES;
    let frame: WireFrame;
    if (this.framing === 'binary') {
      // Ciphertext and tag are copied once, into the record; the signature
      // digest is taken over the record's own bytes.
      const sealedAt = BINARY_HEADER_BYTES + (this.signatures ? SIGNATURE_BYTES : 0);
      const out = Buffer.allocUnsafe(sealedAt + sealedBytes);
      writeBinaryHeader(out, s.epoch, s.counter, this.signatures);
      copyParts(out, sealedAt, ciphertext, tag);
      if (this.signatures) signRecord(this.#identity, signatureInput(out.subarray(sealedAt))).copy(out, BINARY_HEADER_BYTES);
      frame = out;
    } else {
      const sealed = Buffer.allocUnsafe(sealedBytes);
      copyParts(sealed, 0, ciphertext, tag);
      const record: SealedRecord = { epoch: s.epoch, counter: s.counter, sealed, sender: this.#identity.nodeId };
      if (this.signatures) record.signature = signRecord(this.#identity, signatureInput(sealed));
      frame = encodeJsonEnvelope(record);
    }
    s.counter++;
    s.recordsInEpoch++;
    s.bytesInEpoch += size;
    return frame;
  }

  /**
   * Check and decrypt one record; returns its entries in order. A CLOSE
   * entry is always the last; after it the session accepts nothing more.
   * Any failure ends the session: later `open`s and `sealRecord`s throw
   * `ERR_SESSION_CLOSED`; only `sealClose` still works, to tell the peer why.
   * @throws McpE2eError `ERR_FRAME_MALFORMED`, `ERR_FRAME_TOO_LARGE`,
   *   `ERR_FRAME_SENDER`, `ERR_FRAME_EPOCH`, `ERR_FRAME_COUNTER`,
   *   `ERR_FRAME_SIGNATURE`, `ERR_FRAME_DECRYPT`, `ERR_FRAME_CONTENT_TYPE`,
   *   `ERR_ENTRIES_MALFORMED`, `ERR_SESSION_EXHAUSTED`, `ERR_SESSION_CLOSED`.
   */
  open(frame: WireFrame): OpenedMessage[] {
    this.#checkOpen();
    if (this.#peerClosed || this.#recvFailed) throw new McpE2eError('ERR_SESSION_CLOSED', this.#recvFailed ? 'a record after a failed one' : 'a record after the peer\'s CLOSE');
    try {
      return this.#open(frame);
    } catch (err) {
      // Nothing more is received; our sending side is intact, so the peer can still be told why (sealClose).
      this.#recvFailed = true;
      this.#recv.rawKey.fill(0);
      throw err;
    }
  }

  #open(frame: WireFrame): OpenedMessage[] {
    let record: SealedRecord;
    if (this.framing === 'binary') {
      if (!Buffer.isBuffer(frame)) throw new McpE2eError('ERR_FRAME_MALFORMED', 'text message in a binary-framed session');
      record = decodeBinaryFrame(frame, this.maxFrameBytes);
    } else {
      if (typeof frame !== 'string') throw new McpE2eError('ERR_FRAME_MALFORMED', 'binary message in a JSON-framed session');
      record = decodeJsonEnvelope(frame, this.maxFrameBytes);
      if (record.sender !== this.peer.nodeId) throw new McpE2eError('ERR_FRAME_SENDER', 'sender is not the node id authenticated in the handshake');
    }
    const plainBytes = record.sealed.length - GCM_TAG_BYTES;
    if (plainBytes > this.#maxRecordBytes) {
      throw new McpE2eError('ERR_FRAME_TOO_LARGE', `record of ${plainBytes} bytes exceeds the limit of ${this.#maxRecordBytes} bytes`);
    }
    const r = this.#recv;
    if (record.epoch !== r.epoch && record.epoch !== r.epoch + 1) {
      throw new McpE2eError('ERR_FRAME_EPOCH', `record epoch ${record.epoch}, expected ${r.epoch} or ${r.epoch + 1}`);
    }
    if (record.counter !== r.counter) {
      throw new McpE2eError('ERR_FRAME_COUNTER', `record counter ${record.counter}, expected ${r.counter} (replayed, reordered or dropped record)`);
    }
    if (this.signatures !== (record.signature !== undefined)) {
      throw new McpE2eError('ERR_FRAME_SIGNATURE', this.signatures ? 'record signature missing' : 'unexpected record signature');
    }
    // An epoch beyond MAX_EPOCH cannot be decoded, so a rotation never overflows.
    const rotating = record.epoch === r.epoch + 1;
    const recordsInEpoch = rotating ? 0 : r.recordsInEpoch;
    const bytesInEpoch = rotating ? 0 : r.bytesInEpoch;
    if (recordsInEpoch >= MAX_RECORDS_PER_EPOCH || bytesInEpoch + plainBytes > MAX_BYTES_PER_EPOCH) {
      throw new McpE2eError('ERR_SESSION_EXHAUSTED', 'the peer exceeded the per-epoch key usage limit without rotating');
    }
    const rawKey = rotating ? nextEpochKey(r.rawKey, this.sessionId) : r.rawKey;
    const key = rotating ? aesKey(rawKey) : (r.key ??= aesKey(r.rawKey));
    const context = this.#writeContext(this.#recvDir, record.epoch, record.counter);
    // The GCM tag is checked first (cheap); the plaintext is released only
    // after the signature verifies too.
    const plaintext = aesGcmOpen(key, writeNonce(NONCE, record.counter), context, record.sealed);
    let entries: OpenedMessage[];
    try {
      if (record.signature && !ed25519Verify(this.#peerKey!, signatureInput(record.sealed), record.signature)) {
        throw new McpE2eError('ERR_FRAME_SIGNATURE', 'record signature does not verify');
      }
      entries = this.#entries(plaintext);
    } catch (err) {
      plaintext.fill(0);
      if (rotating) rawKey.fill(0);
      throw err;
    }
    if (rotating) {
      r.rawKey.fill(0);
      r.rawKey = rawKey;
      r.key = key;
      r.epoch++;
      r.recordsInEpoch = 0;
      r.bytesInEpoch = 0;
    }
    r.counter++;
    r.recordsInEpoch++;
    r.bytesInEpoch += plainBytes;
    if (entries[entries.length - 1]!.contentType === ContentType.CLOSE) this.#peerClosed = true;
    return entries;
  }

  /** The entries of a decrypted record, checked in order (PROTOCOL.md §6.6 step 11). */
  #entries(plain: Buffer): OpenedMessage[] {
    const out: OpenedMessage[] = [];
    let at = 0;
    while (at < plain.length) {
      if (plain.length - at < RECORD_ENTRY_HEADER_BYTES) throw recordMalformed('an entry header does not fit');
      if (out.length === MAX_RECORD_ENTRIES) throw recordMalformed(`more than ${MAX_RECORD_ENTRIES} entries`);
      const contentType = plain[at]!;
      const length = plain.readUInt32BE(at + 1);
      at += RECORD_ENTRY_HEADER_BYTES;
      if (length > plain.length - at) throw recordMalformed('an entry length runs past the end of the record');
      const payload = plain.subarray(at, at + length);
      at += length;
      switch (contentType) {
        case ContentType.MCP:
        case ContentType.CONTROL:
          if (length > this.maxPayloadBytes(contentType)) {
            throw new McpE2eError('ERR_FRAME_TOO_LARGE', `message of ${length} bytes exceeds the limit of ${this.maxPayloadBytes(contentType)} bytes`);
          }
          break;
        case ContentType.CLOSE: {
          const reason = payload.toString('latin1');
          if (length > MAX_CLOSE_REASON_BYTES || (length > 0 && !CLOSE_REASON_RE.test(reason))) throw recordMalformed('a CLOSE reason that is not an error code');
          if (at !== plain.length) throw recordMalformed('an entry after CLOSE');
          break;
        }
        default:
          throw new McpE2eError('ERR_FRAME_CONTENT_TYPE', `unknown content type ${contentType}`);
      }
      out.push({ contentType: contentType as ContentTypeCode, payload });
    }
    if (out.length > 1 && plain.length > MAX_COALESCED_RECORD_BYTES) {
      throw recordMalformed(`a record of ${out.length} entries holds ${plain.length} bytes, more than ${MAX_COALESCED_RECORD_BYTES}`);
    }
    return out;
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
    s.key = undefined;
    s.epoch++;
    s.recordsInEpoch = 0;
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

/** The error a peer's CLOSE reason stands for, or undefined for an orderly close (empty reason). */
export function closeReason(payload: Buffer): { code: ErrorCode | undefined; text: string } {
  const text = payload.toString('latin1');
  return { code: text === '' ? undefined : isErrorCode(text) ? text : undefined, text };
}

/**
 * "mcp-e2e/2 record signature\0" || context || SHA-256(ciphertext || tag),
 * in the shared scratch; the context part must have been written by
 * `#writeContext` for this record just before.
 */
function signatureInput(sealed: Uint8Array): Buffer {
  sha256(sealed).copy(SIGNATURE_INPUT, DIGEST_OFFSET);
  return SIGNATURE_INPUT;
}

/** The record signature over a `signatureInput` (which starts with the record label). */
function signRecord(identity: NodeIdentity, input: Buffer): Buffer {
  return identity.sign(LABEL.RECORD_SIGNATURE, input.subarray(CONTEXT_OFFSET));
}
