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
