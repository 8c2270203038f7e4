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
export {
  PeerRecord,
  createPeerRecord,
  verifyPeerRecord,
  decodePeerRecord,
  encodePeerRecordBody,
  compareToStored,
  recordBytesFromHex,
  isRecordAddress,
  PEER_RECORD_FORMAT,
  MAX_PEER_RECORD_BYTES,
  MIN_PEER_RECORD_BYTES,
  MAX_RECORD_ADDRESSES,
  MAX_RECORD_ADDRESS_BYTES,
  MAX_RECORD_PROTOCOL_VERSIONS,
  MAX_RECORD_NAME_BYTES,
  MAX_SERVICE_NAME_BYTES,
  MAX_SERVICE_VERSION_BYTES,
  MAX_RECORD_LIFETIME_MS,
  DEFAULT_RECORD_LIFETIME_MS,
  RECORD_CLOCK_SKEW_MS,
  RECORD_ATTRIBUTE,
  type PeerRecordFields,
  type RecordService,
  type VerifyPeerRecordOptions,
} from './discovery/record.js';
export {
  PeerRegistry,
  isPeerSource,
  DEFAULT_MAX_PEERS,
  DEFAULT_MAX_REGISTRY_FILE_BYTES,
  DEFAULT_REGISTRY_FLUSH_INTERVAL_MS,
  MAX_HINTS_PER_PEER,
  MAX_SOURCES_PER_PEER,
  DEFAULT_HINT_TTL_MS,
  type PeerRegistryOptions,
  type PeerInfo,
  type PeerSource,
  type TrustState,
  type AddressHint,
  type AddressStats,
  type HandshakeNote,
  type FailureNote,
  type RegistryOutcome,
} from './discovery/registry.js';
export type { DiscoverySource, DiscoveryContext, DiscoveryHint, EmitResult, RegistryView, PeerEvent, LogLevel } from './discovery/source.js';
export { StaticSource, type StaticEntry } from './discovery/sources/static.js';
export { BootstrapSource, BOOTSTRAP_CHECK_MS, DEFAULT_MESH_TARGET, type BootstrapSourceOptions } from './discovery/sources/bootstrap.js';
export { GossipSource, createGossipSources, type GossipSourceOptions, type GossipSourcesOptions } from './discovery/sources/gossip.js';
export { parseBootstrapEntry, BootstrapSchedule, BOOTSTRAP_BACKOFF, type BootstrapEntry } from './discovery/bootstrap.js';
export { GossipEngine, DEFAULT_GOSSIP, GOSSIP_PENALTY, verifyRecordHex, type GossipOptions, type GossipEvent, type GossipStep, type GossipCounters, type Outbound, type RecordVerifier } from './discovery/gossip/engine.js';
export { GossipDriver, MAX_IN_FLIGHT_PER_SESSION, type GossipDriverOptions, type GossipSession, type GossipStatus } from './discovery/gossip/driver.js';
export { MemoryGossipStore, type GossipStore, type RangeSummary } from './discovery/gossip/store.js';
export { createLeavingRecord, isLeaving, LEAVING_LIFETIME_MS } from './discovery/gossip/leaving.js';
export { decodeGossipMessage, fingerprint as gossipFingerprint, itemHash as gossipItemHash, GOSSIP_TYPE, type GossipMessage, type SyncRange } from './discovery/gossip/protocol.js';
export {
  MdnsSource,
  browseOnce,
  MDNS_SOURCE,
  type MdnsSourceOptions,
  type MdnsPublishOptions,
  type MdnsHint,
  type MdnsStats,
  type MdnsSourceEvents,
} from './discovery/sources/mdns.js';
export type { ResolvedService, ServiceAddress, BrowseEvent } from './discovery/sources/mdns-cache.js';
export { MeshSession, MAX_CONTROL_TYPE_LENGTH, type ControlMessage, type ControlCounters, type MeshTransport } from './mesh/session.js';
export {
  MeshNode,
  PEER_RECORD_MESSAGE,
  SESSION_RECORD_BURST,
  SESSION_RECORD_INTERVAL_MS,
  DEFAULT_LOOKUP_TIMEOUT_MS,
  DEFAULT_EXPIRY_CHECK_MS,
  type MeshNodeOptions,
  type MeshServerOptions,
  type MeshConnectOptions,
  type MeshEvents,
  type AnnounceOptions,
  type DialAttempt,
} from './mesh/node.js';
export { listeningUrls } from './mesh/addresses.js';
