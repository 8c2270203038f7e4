/**
 * mcp-e2e: end-to-end encrypted, identity-authenticated transport for the
 * Model Context Protocol. Public API (re-exports only).
 */
export { McpE2eError, isMcpE2eError, CloseCode, ERROR_CODES, type ErrorCode } from './errors.js';
export {
  NodeIdentity,
  nodeIdFromPublicKey,
  fingerprintOf,
  isNodeId,
  peerIdentityFromPublicKey,
  NODE_ID_HEX_LENGTH,
  type PeerIdentity,
} from './identity/identity.js';
export {
  allowAnyPeer,
  pinnedPeer,
  parseAllowList,
  PeerAllowList,
  KnownPeersStore,
  normalizeEndpoint,
  MAX_ALLOWLIST_FILE_BYTES,
  type TrustPolicy,
  type TrustContext,
} from './identity/trust.js';
export { Handshake, selectOptions, type HandshakeConfig, type HandshakeResult, type HandshakeStep, type Offer, type Selection } from './handshake/handshake.js';
export { Session, nextEpochKey, type SessionOptions, type OpenedMessage, type WireFrame } from './session/session.js';
export {
  encodeJsonEnvelope,
  decodeJsonEnvelope,
  encodeBinaryFrame,
  decodeBinaryFrame,
  maxFrameBytes,
  type SealedRecord,
} from './framing/envelope.js';
export * from './protocol.js';
export { EncryptedWebSocketClientTransport, type EncryptedWebSocketClientTransportOptions } from './transport/client.js';
export {
  EncryptedWebSocketServer,
  type EncryptedWebSocketServerOptions,
  type ConnectionInfo,
} from './transport/server.js';
export { EncryptedWebSocketServerTransport, peerFromAuthInfo, type McpE2eAuthExtra } from './transport/server-transport.js';
// The seed's message API (connect / send / receive, a message handler) over the transports above.
export { EncryptedWebSocketTransport, type EncryptedWebSocketTransportOptions } from './seed/client.js';
export { EncryptedMessageServer, type EncryptedMessageServerOptions, type MessageHandler } from './seed/server.js';
export { DEFAULT_MAX_QUEUED_MESSAGES } from './seed/receive-queue.js';
export type { OutgoingMessage } from './seed/message.js';
export type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
export {
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_UPGRADE_TIMEOUT_MS,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_PENDING_HANDSHAKES,
  DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
  DEFAULT_MAX_PENDING_HANDSHAKES_PER_ADDRESS,
  DEFAULT_HANDSHAKE_STEP1_TIMEOUT_MS,
  DEFAULT_HANDSHAKE_BURST_PER_ADDRESS,
  DEFAULT_HANDSHAKE_RATE_PER_ADDRESS,
  DEFAULT_MAX_CONNECTIONS_PER_PEER,
  MAX_UPGRADE_HEADER_BYTES,
  PRE_AUTH_MAX_FRAGMENTS,
  MAX_FRAGMENTS_PER_MESSAGE,
  CLOSE_GRACE_MS,
  DEFAULT_SERVER_KEEPALIVE_INTERVAL_MS,
  DEFAULT_CLIENT_KEEPALIVE_INTERVAL_MS,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_SEND_HIGH_WATER_MARK_BYTES,
  DEFAULT_MAX_SEND_BUFFER_BYTES,
  type ConnectionLimits,
  type ServerLimits,
} from './transport/limits.js';
export type { ConnectionMode } from './transport/subprotocol.js';
export {
  connectWithRetry,
  backoffDelay,
  isRetryableError,
  DEFAULT_RECONNECT,
  type ReconnectOptions,
  type ConnectWithRetryOptions,
} from './transport/reconnect.js';
