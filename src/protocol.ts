/**
 * Wire constants of protocol version 1 (PROTOCOL.md). Every label, code and
 * size that appears on the wire or in a derivation is defined here and only
 * here.
 */

export const PROTOCOL_VERSION = 1;

/** WebSocket subprotocol of the encrypted protocol. */
export const SUBPROTOCOL_ENCRYPTED = 'mcp-e2e.v1';
/** WebSocket subprotocol of plain MCP (what the MCP SDK's WebSocket transport speaks). */
export const SUBPROTOCOL_PLAINTEXT = 'mcp';

const ascii = (s: string) => Buffer.from(s, 'ascii');

/** Domain-separation labels (ASCII). Signature and MAC labels are followed by one 0x00 byte. */
export const LABEL = Object.freeze({
  TRANSCRIPT: ascii('mcp-e2e/1 handshake'),
  RESPONDER_SIGNATURE: ascii('mcp-e2e/1 responder signature\0'),
  INITIATOR_SIGNATURE: ascii('mcp-e2e/1 initiator signature\0'),
  RESPONDER_FINISHED: ascii('mcp-e2e/1 responder finished\0'),
  INITIATOR_FINISHED: ascii('mcp-e2e/1 initiator finished\0'),
  FINISHED_KEYS: ascii('mcp-e2e/1 finished keys'),
  SESSION_KEYS: ascii('mcp-e2e/1 session keys'),
  KEY_UPDATE: ascii('mcp-e2e/1 key update'),
  FRAME_SIGNATURE: ascii('mcp-e2e/1 frame signature\0'),
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
  LABEL.FRAME_SIGNATURE,
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

/** First byte of every decrypted frame: what the rest of the plaintext is. */
export const ContentType = Object.freeze({
  /** One MCP JSON-RPC message, UTF-8 JSON. */
  MCP: 0x01,
  /** One control message (peer records, gossip), UTF-8 JSON; never shown to the MCP layer. */
  CONTROL: 0x02,
});
export type ContentTypeCode = (typeof ContentType)[keyof typeof ContentType];

/** Binary frame type byte (PROTOCOL.md §6.2). */
export const BINARY_FRAME_TYPE = 0x01;
/** Binary frame flag: a 64-byte signature follows the header. */
export const BINARY_FLAG_SIGNED = 0x01;
/** Binary frame header length: type, flags, epoch (u32), counter (u64). */
export const BINARY_HEADER_BYTES = 14;

/** Size of a handshake message on the wire, at most (bytes of UTF-8 JSON). */
export const MAX_HANDSHAKE_MESSAGE_BYTES = 4096;
/** Default largest MCP message (plaintext bytes) a session accepts or sends. */
export const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/** Hard per-epoch limits every receiver enforces (AES-GCM usage bounds). */
export const MAX_FRAMES_PER_EPOCH = 2 ** 24;
export const MAX_BYTES_PER_EPOCH = 2 ** 36;
/** Largest epoch number; after it the session must end. */
export const MAX_EPOCH = 2 ** 32 - 1;
/** Largest frame counter; after it the session must end (the counter never wraps). */
export const MAX_COUNTER = Number.MAX_SAFE_INTEGER;

/** Default sender-side key rotation triggers (whichever comes first). */
export const DEFAULT_REKEY_AFTER_FRAMES = 2 ** 20;
export const DEFAULT_REKEY_AFTER_BYTES = 2 ** 30;
export const DEFAULT_REKEY_AFTER_MS = 60 * 60 * 1000;

export const SESSION_ID_BYTES = 16;
export const RANDOM_BYTES = 32;
