/**
 * The one interface every discovery source implements (mDNS, bootstrap,
 * gossip, later a DHT), and what the mesh node offers a source in return.
 * PROTOCOL.md §13: discovery output is a hint until a handshake proves it.
 *
 * A source never writes the registry and never decides trust: it hands what
 * it finds to `context.emit`, and the mesh node verifies records, checks
 * addresses, applies the registry's caps and blocks, records the provenance
 * (the source's `name`) and raises the events. `emit` answers synchronously
 * with the verdicts, so a source that relays for others (gossip) can score
 * the peer that sent it something invalid.
 */
import type { PeerRecord } from './record.js';
import type { PeerInfo, PeerRegistry, PeerSource, RegistryOutcome } from './registry.js';
import type { MeshSession } from '../mesh/session.js';
import type { EncryptedWebSocketClientTransport } from '../transport/client.js';

/** Something a source found. Give a record, or a node id with addresses, or both. */
export interface DiscoveryHint {
  /** A signed record as received (verified by the node, PROTOCOL.md §13.4). */
  record?: Uint8Array;
  /** The node id the addresses belong to (a claim). Required with `addresses` when there is no record. */
  nodeId?: string;
  /** Unsigned `ws://` / `wss://` addresses (§13.2.1 grammar; others are dropped). */
  addresses?: readonly string[];
  /** How long the addresses may be dialled, ms (e.g. an mDNS TTL). Default one hour. */
  ttlMs?: number;
}

/** What `emit` did with a hint: one outcome for the record, one for the addresses, as given. */
export interface EmitResult {
  record?: RegistryOutcome;
  addresses?: RegistryOutcome;
}

/** The read-only side of the registry a source may consult (e.g. for reconciliation). */
export type RegistryView = Pick<PeerRegistry, 'get' | 'has' | 'list' | 'size' | 'stateOf' | 'isBlocked' | 'dialAddresses' | 'offerableRecords'>;

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** What the mesh node gives a source at `start`. Valid until `stop`. */
export interface DiscoveryContext {
  /** Our node id. */
  readonly nodeId: string;
  /** The registry, read-only. */
  readonly registry: RegistryView;
  /** Aborted when the node stops: end timers, sockets and pending work. */
  readonly signal: AbortSignal;
  /** Hand a finding to the node. Never throws on hostile content. */
  emit(hint: DiscoveryHint): EmitResult;
  /** Our current record, when we publish one (also what `publish` was last given). */
  record(): PeerRecord | undefined;
  /** The node's clock, ms since the epoch. */
  now(): number;
  /** The node's log (never pass key material). */
  log(level: LogLevel, message: string, fields?: Record<string, unknown>): void;
  /**
   * Open an encrypted session to `nodeId`, pinned to it, through the node's
   * own `connect` (registry addresses, then lookups). The session also
   * reaches `onSession` of every source.
   */
  connect(nodeId: string): Promise<EncryptedWebSocketClientTransport>;
}

/**
 * A discovery source. `start` and `stop` are each called once per start of
 * the node, and must be safe to call again. Every method but `start` may be
 * left out.
 */
export interface DiscoverySource {
  /** Provenance of everything this source emits (`mdns`, `bootstrap`, `gossip`, `dht`...): 1..16 of a-z, 0-9, -. */
  readonly name: PeerSource;
  /** Begin (bind sockets, schedule queries). Throw only for a mistake in configuration: network trouble is normal and must not stop the node. */
  start(context: DiscoveryContext): void | Promise<void>;
  /** End everything started (send goodbyes). */
  stop(): void | Promise<void>;
  /**
   * Find a node id now (the node asks every source that has this, in
   * parallel, when no known address works). Resolve with what was found
   * (possibly nothing) within the signal's life; hints for other node ids
   * are refused (`ERR_RECORD_WRONG_PEER`).
   */
  lookup?(nodeId: string, signal: AbortSignal): Promise<DiscoveryHint[]>;
  /** Our record, new or refreshed: advertise it (called after `start` and at every refresh). */
  publish?(record: PeerRecord): void | Promise<void>;
  /** An encrypted session with another node is established (incoming or outgoing): a place to run a protocol on the control channel. */
  onSession?(session: MeshSession): void;
}

/** What a node event carries. */
export interface PeerEvent {
  nodeId: string;
  /** Where the news came from. */
  source: PeerSource;
  /** The registry's view after the change. */
  peer: PeerInfo;
}
