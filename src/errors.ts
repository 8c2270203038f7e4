/**
 * The one error class of mcp-e2e. Every failure carries a stable string code
 * (listed in PROTOCOL.md §9 and SECURITY.md) and the WebSocket close code a
 * transport sends when the failure ends a connection. Tests assert on `code`.
 *
 * Messages are for the local log. They never contain key material or
 * plaintext; the remote peer only ever sees the close code and the opaque
 * close reason (`ErrorCode` itself).
 */

/** WebSocket close codes sent by mcp-e2e (4000-4999 is the private-use range). */
export const CloseCode = {
  /** RFC 6455 normal closure. */
  NORMAL: 1000,
  /** RFC 6455: message too big. */
  MESSAGE_TOO_BIG: 1009,
  /** Handshake failed: malformed, bad signature or MAC, bad key, version. */
  HANDSHAKE_FAILED: 4001,
  /** The peer authenticated but the local trust policy refused it. */
  PEER_REJECTED: 4003,
  /** A session frame failed a check: decrypt, signature, counter, framing. */
  PROTOCOL_ERROR: 4002,
  /** The handshake did not complete in time, or the connection was idle. */
  TIMEOUT: 4008,
  /** A server-side limit (connections, pending handshakes) was reached. */
  TRY_AGAIN_LATER: 1013,
  /** The wrong subprotocol, or plaintext where encryption is required. */
  POLICY_VIOLATION: 1008,
} as const;

const CODES = {
  // Handshake
  ERR_HANDSHAKE_MALFORMED: CloseCode.HANDSHAKE_FAILED,
  ERR_HANDSHAKE_UNEXPECTED_MESSAGE: CloseCode.HANDSHAKE_FAILED,
  ERR_HANDSHAKE_UNSUPPORTED_VERSION: CloseCode.HANDSHAKE_FAILED,
  ERR_HANDSHAKE_BAD_KEY: CloseCode.HANDSHAKE_FAILED,
  ERR_HANDSHAKE_LOW_ORDER_KEY: CloseCode.HANDSHAKE_FAILED,
  ERR_HANDSHAKE_NODE_ID_MISMATCH: CloseCode.HANDSHAKE_FAILED,
  ERR_HANDSHAKE_BAD_SIGNATURE: CloseCode.HANDSHAKE_FAILED,
  ERR_HANDSHAKE_BAD_MAC: CloseCode.HANDSHAKE_FAILED,
  ERR_HANDSHAKE_OPTIONS: CloseCode.HANDSHAKE_FAILED,
  ERR_HANDSHAKE_REFLECTION: CloseCode.HANDSHAKE_FAILED,
  ERR_HANDSHAKE_DOWNGRADE: CloseCode.HANDSHAKE_FAILED,
  ERR_HANDSHAKE_TIMEOUT: CloseCode.TIMEOUT,
  // Trust
  ERR_PEER_REJECTED: CloseCode.PEER_REJECTED,
  ERR_PEER_KEY_CHANGED: CloseCode.PEER_REJECTED,
  // Session frames
  ERR_FRAME_MALFORMED: CloseCode.PROTOCOL_ERROR,
  ERR_FRAME_TOO_LARGE: CloseCode.MESSAGE_TOO_BIG,
  ERR_FRAME_COUNTER: CloseCode.PROTOCOL_ERROR,
  ERR_FRAME_EPOCH: CloseCode.PROTOCOL_ERROR,
  ERR_FRAME_DECRYPT: CloseCode.PROTOCOL_ERROR,
  ERR_FRAME_SIGNATURE: CloseCode.PROTOCOL_ERROR,
  ERR_FRAME_SENDER: CloseCode.PROTOCOL_ERROR,
  ERR_FRAME_CONTENT_TYPE: CloseCode.PROTOCOL_ERROR,
  ERR_ENTRIES_MALFORMED: CloseCode.PROTOCOL_ERROR,
  ERR_SESSION_EXHAUSTED: CloseCode.PROTOCOL_ERROR,
  ERR_SESSION_CLOSED: CloseCode.NORMAL,
  // Local only: the connection is already gone when it is detected.
  ERR_SESSION_TRUNCATED: CloseCode.PROTOCOL_ERROR,
  // Transport
  ERR_SUBPROTOCOL: CloseCode.POLICY_VIOLATION,
  ERR_PLAINTEXT_REFUSED: CloseCode.POLICY_VIOLATION,
  ERR_ORIGIN_REFUSED: CloseCode.POLICY_VIOLATION,
  ERR_INVALID_MESSAGE: CloseCode.PROTOCOL_ERROR,
  ERR_LIMIT_REACHED: CloseCode.TRY_AGAIN_LATER,
  ERR_IDLE_TIMEOUT: CloseCode.TIMEOUT,
  ERR_CONNECTION_CLOSED: CloseCode.NORMAL,
  ERR_CONNECT_FAILED: CloseCode.NORMAL,
  ERR_SEND_BUFFER_FULL: CloseCode.PROTOCOL_ERROR,
  // Peer records and discovery (PROTOCOL.md §13). A record arrives on a
  // session's control channel or from a discovery source; a session that ends
  // because of one closes with a protocol error.
  ERR_RECORD_TOO_LARGE: CloseCode.PROTOCOL_ERROR,
  ERR_RECORD_MALFORMED: CloseCode.PROTOCOL_ERROR,
  ERR_RECORD_BAD_KEY: CloseCode.PROTOCOL_ERROR,
  ERR_RECORD_NODE_ID_MISMATCH: CloseCode.PROTOCOL_ERROR,
  ERR_RECORD_BAD_SIGNATURE: CloseCode.PROTOCOL_ERROR,
  ERR_RECORD_FROM_FUTURE: CloseCode.PROTOCOL_ERROR,
  ERR_RECORD_EXPIRED: CloseCode.PROTOCOL_ERROR,
  ERR_RECORD_STALE: CloseCode.PROTOCOL_ERROR,
  ERR_RECORD_REPLAYED: CloseCode.PROTOCOL_ERROR,
  ERR_RECORD_EQUIVOCATION: CloseCode.PROTOCOL_ERROR,
  ERR_RECORD_WRONG_PEER: CloseCode.PROTOCOL_ERROR,
  ERR_PEER_BLOCKED: CloseCode.PEER_REJECTED,
  // Gossip of peer records (PROTOCOL.md §14). A malformed or unasked-for
  // gossip message scores its sender down; a peer cut off for it closes 4003.
  ERR_GOSSIP_MALFORMED: CloseCode.PROTOCOL_ERROR,
  ERR_GOSSIP_UNSOLICITED: CloseCode.PROTOCOL_ERROR,
  ERR_GOSSIP_RATE_LIMITED: CloseCode.PROTOCOL_ERROR,
  ERR_GOSSIP_CUT_OFF: CloseCode.PEER_REJECTED,
  ERR_PEER_NOT_FOUND: CloseCode.NORMAL,
  // Identity and key files
  ERR_KEY_FILE_PERMISSIONS: CloseCode.NORMAL,
  ERR_KEY_FILE_CORRUPT: CloseCode.NORMAL,
  ERR_KEY_FILE_NOT_FOUND: CloseCode.NORMAL,
  ERR_KEY_FILE_EXISTS: CloseCode.NORMAL,
  ERR_INVALID_NODE_ID: CloseCode.NORMAL,
  // Local files (trust files, registry)
  ERR_FILE_PERMISSIONS: CloseCode.NORMAL,
  ERR_FILE_LOCKED: CloseCode.NORMAL,
} as const;

/** Every stable error code mcp-e2e raises. */
export type ErrorCode = keyof typeof CODES;

/** All error codes, for documentation and tests. */
export const ERROR_CODES = Object.freeze(Object.keys(CODES) as ErrorCode[]);

/** Options of `McpE2eError` beyond the code and message. */
export interface McpE2eErrorOptions {
  cause?: unknown;
  /**
   * The error code the peer named in a WebSocket close frame. Close frames
   * are not authenticated (PROTOCOL.md §9.1): this is a claim for the log,
   * never the basis of a decision. Only one of our codes is ever kept here.
   */
  peerCode?: ErrorCode | undefined;
  /** The authenticated peer ended the session with this code (a sealed CLOSE, PROTOCOL.md §6.8). */
  fromPeer?: boolean;
}

/** The single error class. `code` is stable; `message` is for humans. */
export class McpE2eError extends Error {
  /** Stable string code, e.g. `ERR_HANDSHAKE_BAD_SIGNATURE`. */
  readonly code: ErrorCode;
  /** WebSocket close code to send when this error ends a connection. */
  readonly closeCode: number;
  /** See `McpE2eErrorOptions.peerCode`: what an unauthenticated close frame claimed. */
  readonly peerCode: ErrorCode | undefined;
  /** True when the authenticated peer reported this code in its sealed CLOSE (not detected here). */
  readonly fromPeer: boolean;

  constructor(code: ErrorCode, message: string, options: McpE2eErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'McpE2eError';
    this.code = code;
    this.closeCode = CODES[code];
    this.peerCode = options.peerCode;
    this.fromPeer = options.fromPeer === true;
  }
}

/** True when `value` is one of our error codes. */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(CODES, value);
}

/** True when `err` is an McpE2eError, optionally with the given code. */
export function isMcpE2eError(err: unknown, code?: ErrorCode): err is McpE2eError {
  return err instanceof McpE2eError && (code === undefined || err.code === code);
}
