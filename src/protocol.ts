/**
 * Wire constants of protocol version 2 (PROTOCOL.md). Every label, code and
 * size that appears on the wire or in a derivation is defined here and only
 * here.
 */

/** The protocol version this implementation speaks (version 1 is retired, PROTOCOL.md §3.1). */
export const PROTOCOL_VERSION = 2;
/** Every version this implementation supports, highest first: step 1's `versions` (PROTOCOL.md §4.1). */
export const SUPPORTED_VERSIONS: readonly number[] = Object.freeze([2]);
/** Most entries of step 1's `versions`. */
export const MAX_OFFERED_VERSIONS = 8;

/** WebSocket subprotocol of the encrypted protocol, version 2. */
export const SUBPROTOCOL_ENCRYPTED = 'mcp-e2e.v2';
/** WebSocket subprotocol of plain MCP (what the MCP SDK's WebSocket transport speaks). */
export const SUBPROTOCOL_PLAINTEXT = 'mcp';

const ascii = (s: string) => Buffer.from(s, 'ascii');

/**
 * Domain-separation labels (ASCII). Signature and MAC labels are followed by
 * one 0x00 byte; HKDF labels are followed by the hash they bind.
 */
export const LABEL = Object.freeze({
  TRANSCRIPT: ascii('mcp-e2e/2 handshake'),
  RESPONDER_SIGNATURE: ascii('mcp-e2e/2 responder signature\0'),
  INITIATOR_SIGNATURE: ascii('mcp-e2e/2 initiator signature\0'),
  RESPONDER_FINISHED: ascii('mcp-e2e/2 responder finished\0'),
  INITIATOR_FINISHED: ascii('mcp-e2e/2 initiator finished\0'),
  HANDSHAKE_KEYS: ascii('mcp-e2e/2 handshake keys'),
  SESSION_KEYS: ascii('mcp-e2e/2 session keys'),
  KEY_UPDATE: ascii('mcp-e2e/2 key update'),
  RECORD_SIGNATURE: ascii('mcp-e2e/2 record signature\0'),
  /** Signed peer records of discovery (their format has its own version, PROTOCOL.md). */
  PEER_RECORD_SIGNATURE: ascii('mcp-e2e/1 peer record\0'),
});

/**
 * The only labels an identity key signs under (`NodeIdentity.sign`). Every
 * signature made by mcp-e2e starts with one of these, each zero-terminated so
 * that none is a prefix of another: a signature made for one purpose never
 * verifies for another, and no caller can make an identity sign raw bytes
 * that another purpose would accept.
 */
export const SIGNATURE_LABELS: readonly Buffer[] = Object.freeze([
  LABEL.RESPONDER_SIGNATURE,
  LABEL.INITIATOR_SIGNATURE,
  LABEL.RECORD_SIGNATURE,
  LABEL.PEER_RECORD_SIGNATURE,
]);

export type Framing = 'json' | 'binary';
/** One-byte codes of the framings, used in the transcript and frame context. */
export const FRAMING_CODE: Readonly<Record<Framing, number>> = Object.freeze({ json: 0x01, binary: 0x02 });
export const FRAMINGS: readonly Framing[] = Object.freeze(['json', 'binary'] as Framing[]);
/** Local preference when none is configured: binary (faster) first, the seed's JSON envelope as fallback. */
export const DEFAULT_FRAMINGS: readonly Framing[] = Object.freeze(['binary', 'json'] as Framing[]);

/**
 * A copy of a configured framing list, checked once at configuration time.
 * @throws RangeError unless it is a non-empty list of distinct known framings.
 */
export function checkFramings(framings: readonly Framing[] = DEFAULT_FRAMINGS): Framing[] {
  if (!Array.isArray(framings) || framings.length === 0 || new Set(framings).size !== framings.length || framings.some((f) => !FRAMINGS.includes(f))) {
    throw new RangeError('"framings" expected a non-empty list of distinct framings (json, binary)');
  }
  return [...framings];
}

export type Role = 'initiator' | 'responder';
/** Direction codes of the frame context. */
export const DIRECTION = Object.freeze({ INITIATOR_TO_RESPONDER: 0x01, RESPONDER_TO_INITIATOR: 0x02 });

/** The content type of each entry of a record: what its payload is (PROTOCOL.md §6.5). */
export const ContentType = Object.freeze({
  /** One MCP JSON-RPC message, UTF-8 JSON. */
  MCP: 0x01,
  /** One control message (peer records, gossip), a UTF-8 JSON object; never shown to the MCP layer. */
  CONTROL: 0x02,
  /** The sealed end of the sender's stream (TLS's close_notify): empty, or the error code that ended it. */
  CLOSE: 0x03,
});
export type ContentTypeCode = (typeof ContentType)[keyof typeof ContentType];
/** Content types a sender hands to `Session.sealRecord` for delivery (CLOSE has its own call). */
export type MessageContentType = typeof ContentType.MCP | typeof ContentType.CONTROL;

/** Binary record type byte (PROTOCOL.md §6.2). */
export const BINARY_FRAME_TYPE = 0x01;
/** Binary record flag: a 64-byte signature follows the header. */
export const BINARY_FLAG_SIGNED = 0x01;
/** Binary record header length: type, flags, epoch (u32), counter (u64). */
export const BINARY_HEADER_BYTES = 14;

/** Each entry of a record's plaintext: u8 content type, u32 payload length, payload. */
export const RECORD_ENTRY_HEADER_BYTES = 5;
/** Most entries in one record. */
export const MAX_RECORD_ENTRIES = 256;
/** Most plaintext bytes (entry headers included) of a record of two or more entries. */
export const MAX_COALESCED_RECORD_BYTES = 64 * 1024;
/** Largest control message payload (bytes). */
export const MAX_CONTROL_MESSAGE_BYTES = 64 * 1024;
/** Longest reason of a CLOSE entry (ASCII bytes of an error code). */
export const MAX_CLOSE_REASON_BYTES = 64;

/** Step 3's sealed identity: I_i (32) || sig_i (64) || mac_i (32), then the 16-byte tag. */
export const STEP3_PLAINTEXT_BYTES = 32 + 64 + 32;

/** Size of a handshake message on the wire, at most (bytes of UTF-8 JSON). */
export const MAX_HANDSHAKE_MESSAGE_BYTES = 4096;
/** Default largest MCP message (plaintext bytes) a session accepts or sends. */
export const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/** Hard per-epoch limits every receiver enforces (AES-GCM usage bounds): records, and record plaintext bytes. */
export const MAX_RECORDS_PER_EPOCH = 2 ** 24;
export const MAX_BYTES_PER_EPOCH = 2 ** 36;
/** Largest epoch number; after it the session must end. */
export const MAX_EPOCH = 2 ** 32 - 1;
/** Largest record counter; after it the session must end (the counter never wraps). */
export const MAX_COUNTER = Number.MAX_SAFE_INTEGER;

/** Default sender-side key rotation triggers (whichever comes first): records, record plaintext bytes, ms. */
export const DEFAULT_REKEY_AFTER_RECORDS = 2 ** 20;
export const DEFAULT_REKEY_AFTER_BYTES = 2 ** 30;
export const DEFAULT_REKEY_AFTER_MS = 60 * 60 * 1000;

export const SESSION_ID_BYTES = 16;
export const RANDOM_BYTES = 32;
