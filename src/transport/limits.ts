/**
 * Defaults and validation of the transport limits. Every limit has a safe
 * default; callers may tighten or loosen it. Values are checked once, at
 * construction, so a mistake is a TypeError/RangeError at the call site and
 * never a surprise on the wire.
 */
import { DEFAULT_MAX_MESSAGE_BYTES } from '../protocol.js';
import { assertInteger, assertKnownOptions } from '../util/assert.js';
import type { SessionOptions } from '../session/session.js';

/** Time allowed for the mcp-e2e handshake, from WebSocket open to an authenticated peer (ms). */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
/**
 * Server only: time allowed from TCP accept to a complete HTTP upgrade request
 * (ms). Together with the handshake timeout this bounds how long an
 * unauthenticated connection can live: 5 s + 10 s = 15 s by default.
 */
export const DEFAULT_UPGRADE_TIMEOUT_MS = 5_000;
/** Server only: most connections at once, authenticated or in the handshake. */
export const DEFAULT_MAX_CONNECTIONS = 1024;
/** Server only: most connections at once that have upgraded but not yet finished the handshake. */
export const DEFAULT_MAX_PENDING_HANDSHAKES = 128;
/**
 * Server only: most pending handshakes at once from one source address (an
 * IPv6 address counts in its /64). Well below `maxPendingHandshakes`, so that
 * it takes 16 addresses, not one or two, to fill the table; and a full table
 * makes room for a newcomer by evicting (see admission.ts).
 */
export const DEFAULT_MAX_PENDING_HANDSHAKES_PER_ADDRESS = 8;
/**
 * Server only: time from the upgrade to handshake step 1 (ms). The initiator
 * sends step 1 at once, so an honest client needs one round trip at most; a
 * peer that holds a pending slot without speaking loses it after this long.
 */
export const DEFAULT_HANDSHAKE_STEP1_TIMEOUT_MS = 2_000;
/**
 * Server only: handshake starts (WebSocket upgrades) one source address may
 * make at once (as many as it may hold connections), and then per second (a
 * token bucket). Each encrypted handshake costs the server an X25519 and an
 * Ed25519 signature (about 1 ms of CPU), so one address can take at most a
 * few percent of a core; more are answered with HTTP 429 before the upgrade.
 */
export const DEFAULT_HANDSHAKE_BURST_PER_ADDRESS = 64;
export const DEFAULT_HANDSHAKE_RATE_PER_ADDRESS = 16;
/**
 * Server only: most authenticated connections at once of one node id. One
 * allowed key must not be able to take every connection (and, with `serve`,
 * make it start one process per connection).
 */
export const DEFAULT_MAX_CONNECTIONS_PER_PEER = 16;
/**
 * Server only: most connections at once from one source address, counted from
 * TCP accept (so stalled upgrades count) to close. With the defaults, no single
 * address can take more than 1/16 of `maxConnections`.
 */
export const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 64;
/**
 * Server only (`listen()`): largest HTTP request head (request line and
 * headers) of the upgrade request, bytes. Node's parser refuses more with 431
 * before anything is handed to us. A WebSocket upgrade needs a few hundred bytes.
 */
export const MAX_UPGRADE_HEADER_BYTES = 8 * 1024;
/** Server default: ping interval (ms); a peer that has not answered by the next ping is dropped. 0 disables. */
export const DEFAULT_SERVER_KEEPALIVE_INTERVAL_MS = 30_000;
/** Client default: the client answers the server's pings; its own pings are off unless asked for. */
export const DEFAULT_CLIENT_KEEPALIVE_INTERVAL_MS = 0;
/** Default idle timeout: close after this long without an MCP message either way (ms). 0 (the default) disables it. */
export const DEFAULT_IDLE_TIMEOUT_MS = 0;
/** `send()` waits while the socket holds at least this many unsent bytes. */
export const DEFAULT_SEND_HIGH_WATER_MARK_BYTES = 1024 * 1024;
/**
 * Most bytes of sealed frames waiting behind the high-water mark. A message is
 * always accepted when nothing waits, so one maximum-size message always fits.
 */
export const DEFAULT_MAX_SEND_BUFFER_BYTES = 64 * 1024 * 1024;
/**
 * Most WebSocket fragments one message may arrive in before the peer is
 * authenticated. Honest peers send each handshake message in one frame; a
 * hostile one must not make us hold thousands of tiny fragment buffers.
 */
export const PRE_AUTH_MAX_FRAGMENTS = 8;
/** Most fragments per message afterwards (ws's own default since 8.21.1). */
export const MAX_FRAGMENTS_PER_MESSAGE = 16 * 1024;
/** After sending a close frame, how long to wait for the peer's before dropping the TCP connection (ms). */
export const CLOSE_GRACE_MS = 1_000;
/**
 * Inbound frames held before the socket is paused while nobody consumes them
 * (e.g. before `start()`). One: a frame may be as large as the session allows,
 * so a peer must not be able to park many of them in our memory.
 */
export const MAX_QUEUED_INBOUND_FRAMES = 1;

const MAX_TIMER_MS = 2 ** 31 - 1;

/** Limits of one connection, shared by client and server transports. */
export interface ConnectionLimits {
  /** Largest MCP message (UTF-8 JSON bytes), both directions. Default 16 MiB (`DEFAULT_MAX_MESSAGE_BYTES`). */
  maxMessageBytes?: number;
  /** Handshake timeout, ms. Default 10,000. */
  handshakeTimeoutMs?: number;
  /** Keepalive ping interval, ms; 0 disables. Default 30,000 on servers, 0 on clients. */
  keepaliveIntervalMs?: number;
  /** Close after this many ms without an MCP message in either direction; 0 disables. Default 0. */
  idleTimeoutMs?: number;
  /** `send()` waits while the socket buffers at least this many bytes. Default 1 MiB. */
  sendHighWaterMarkBytes?: number;
  /** Most bytes queued behind the high-water mark before `send()` fails with `ERR_SEND_BUFFER_FULL`. Default 64 MiB. */
  maxSendBufferBytes?: number;
  /** Key rotation triggers of the session (see `SessionOptions`). */
  session?: Pick<SessionOptions, 'rekeyAfterRecords' | 'rekeyAfterBytes' | 'rekeyAfterMs'>;
}

/** Limits of a server: the connection limits plus admission control. */
export interface ServerLimits extends ConnectionLimits {
  /** Time from TCP accept to the HTTP upgrade, ms (only for servers started with `listen()`). Default 5,000. */
  upgradeTimeoutMs?: number;
  /** Most connections at once, authenticated or in the handshake; more are closed with 1013 `ERR_LIMIT_REACHED`. Default 1024. */
  maxConnections?: number;
  /** Most unauthenticated connections in the handshake at once; more are closed with 1013 `ERR_LIMIT_REACHED`. Default 128. */
  maxPendingHandshakes?: number;
  /**
   * Most connections at once from one source IP address (IPv4-mapped IPv6
   * counts as IPv4), from TCP accept to close, whatever their stage. More are
   * refused with HTTP 429 before the upgrade (the client reports
   * `ERR_LIMIT_REACHED`). Behind a reverse proxy every client shares the
   * proxy's address: raise it to `maxConnections`. Default 64.
   */
  maxConnectionsPerAddress?: number;
  /** Most pending handshakes at once from one source address (IPv6: one /64). More get HTTP 429. Default 8. */
  maxPendingHandshakesPerAddress?: number;
  /** Time from the upgrade to handshake step 1, ms; later, the connection is closed with 4008 `ERR_HANDSHAKE_TIMEOUT`. Default 2,000. */
  handshakeStep1TimeoutMs?: number;
  /** Handshake starts (upgrades) one source address may make at once. Default 64. */
  handshakeBurstPerAddress?: number;
  /** Handshake starts per second one source address may make after the burst; more get HTTP 429. Default 16. */
  handshakeRatePerAddress?: number;
  /** Most authenticated connections at once of one node id; more are refused right after the handshake with a sealed CLOSE `ERR_LIMIT_REACHED` (then close 1013). Default 16. */
  maxConnectionsPerPeer?: number;
}

/** The names of `ConnectionLimits`, for the unknown-option check of the transports. */
export const CONNECTION_LIMIT_NAMES = {
  maxMessageBytes: true,
  handshakeTimeoutMs: true,
  keepaliveIntervalMs: true,
  idleTimeoutMs: true,
  sendHighWaterMarkBytes: true,
  maxSendBufferBytes: true,
  session: true,
} as const satisfies Record<keyof ConnectionLimits, true>;

const SERVER_LIMIT_NAMES = {
  ...CONNECTION_LIMIT_NAMES,
  upgradeTimeoutMs: true,
  maxConnections: true,
  maxPendingHandshakes: true,
  maxConnectionsPerAddress: true,
  maxPendingHandshakesPerAddress: true,
  handshakeStep1TimeoutMs: true,
  handshakeBurstPerAddress: true,
  handshakeRatePerAddress: true,
  maxConnectionsPerPeer: true,
} as const satisfies Record<keyof ServerLimits, true>;

const SESSION_LIMIT_NAMES = {
  rekeyAfterRecords: true,
  rekeyAfterBytes: true,
  rekeyAfterMs: true,
} as const satisfies Record<keyof NonNullable<ConnectionLimits['session']>, true>;

export type ResolvedConnectionLimits = Required<Omit<ConnectionLimits, 'session'>> & { session: SessionOptions };
export type ResolvedServerLimits = ResolvedConnectionLimits & Required<Omit<ServerLimits, keyof ConnectionLimits>>;

function pick(value: number | undefined, fallback: number, min: number, max: number, name: string): number {
  if (value === undefined) return fallback;
  assertInteger(value, min, max, name);
  return value;
}

/**
 * Apply defaults and check ranges.
 * @throws TypeError / RangeError naming the offending limit.
 */
export function resolveConnectionLimits(limits: ConnectionLimits = {}, keepaliveDefaultMs: number): ResolvedConnectionLimits {
  if (limits.session !== undefined) assertKnownOptions(limits.session, SESSION_LIMIT_NAMES, 'limits.session');
  const maxMessageBytes = pick(limits.maxMessageBytes, DEFAULT_MAX_MESSAGE_BYTES, 1, 2 ** 30, 'maxMessageBytes');
  return {
    maxMessageBytes,
    handshakeTimeoutMs: pick(limits.handshakeTimeoutMs, DEFAULT_HANDSHAKE_TIMEOUT_MS, 1, MAX_TIMER_MS, 'handshakeTimeoutMs'),
    keepaliveIntervalMs: pick(limits.keepaliveIntervalMs, keepaliveDefaultMs, 0, MAX_TIMER_MS, 'keepaliveIntervalMs'),
    idleTimeoutMs: pick(limits.idleTimeoutMs, DEFAULT_IDLE_TIMEOUT_MS, 0, MAX_TIMER_MS, 'idleTimeoutMs'),
    sendHighWaterMarkBytes: pick(limits.sendHighWaterMarkBytes, DEFAULT_SEND_HIGH_WATER_MARK_BYTES, 1, 2 ** 32, 'sendHighWaterMarkBytes'),
    maxSendBufferBytes: pick(limits.maxSendBufferBytes, DEFAULT_MAX_SEND_BUFFER_BYTES, 1, 2 ** 40, 'maxSendBufferBytes'),
    session: { ...limits.session, maxMessageBytes },
  };
}

/** Apply defaults and check ranges of server limits. @throws TypeError (also for an unknown limit) / RangeError. */
export function resolveServerLimits(limits: ServerLimits = {}): ResolvedServerLimits {
  assertKnownOptions(limits, SERVER_LIMIT_NAMES, 'EncryptedWebSocketServer limits');
  return {
    ...resolveConnectionLimits(limits, DEFAULT_SERVER_KEEPALIVE_INTERVAL_MS),
    upgradeTimeoutMs: pick(limits.upgradeTimeoutMs, DEFAULT_UPGRADE_TIMEOUT_MS, 1, MAX_TIMER_MS, 'upgradeTimeoutMs'),
    maxConnections: pick(limits.maxConnections, DEFAULT_MAX_CONNECTIONS, 1, 2 ** 24, 'maxConnections'),
    maxPendingHandshakes: pick(limits.maxPendingHandshakes, DEFAULT_MAX_PENDING_HANDSHAKES, 1, 2 ** 24, 'maxPendingHandshakes'),
    maxConnectionsPerAddress: pick(limits.maxConnectionsPerAddress, DEFAULT_MAX_CONNECTIONS_PER_ADDRESS, 1, 2 ** 24, 'maxConnectionsPerAddress'),
    maxPendingHandshakesPerAddress: pick(limits.maxPendingHandshakesPerAddress, DEFAULT_MAX_PENDING_HANDSHAKES_PER_ADDRESS, 1, 2 ** 24, 'maxPendingHandshakesPerAddress'),
    handshakeStep1TimeoutMs: pick(limits.handshakeStep1TimeoutMs, DEFAULT_HANDSHAKE_STEP1_TIMEOUT_MS, 1, MAX_TIMER_MS, 'handshakeStep1TimeoutMs'),
    handshakeBurstPerAddress: pick(limits.handshakeBurstPerAddress, DEFAULT_HANDSHAKE_BURST_PER_ADDRESS, 1, 2 ** 24, 'handshakeBurstPerAddress'),
    handshakeRatePerAddress: pick(limits.handshakeRatePerAddress, DEFAULT_HANDSHAKE_RATE_PER_ADDRESS, 1, 2 ** 24, 'handshakeRatePerAddress'),
    maxConnectionsPerPeer: pick(limits.maxConnectionsPerPeer, DEFAULT_MAX_CONNECTIONS_PER_PEER, 1, 2 ** 24, 'maxConnectionsPerPeer'),
  };
}
