/**
 * Gossip as a discovery source (issue 13, PROTOCOL.md §14): the gossip
 * driver on the control channel of every mesh session the membership policy
 * admits; every record gossip accepts is handed to the node (`emit`, source
 * `gossip`), which verifies and stores it like any finding.
 *
 * Membership (who may exchange records with us) is separate from MCP
 * access: by default only peers on the allowlist (`trusted`) and peers we
 * dialled as bootstrap entries; `open: true` admits every authenticated peer.
 */
import type { PeerRecord } from '../record.js';
import type { DiscoveryContext, DiscoverySource } from '../source.js';
import type { MeshSession } from '../../mesh/session.js';
import { GossipDriver, type GossipStatus } from '../gossip/driver.js';
import type { GossipOptions } from '../gossip/engine.js';
import { isLeaving } from '../gossip/leaving.js';
import { parseBootstrapEntry } from '../bootstrap.js';
import { BootstrapSource, type BootstrapSourceOptions } from './bootstrap.js';
import type { NodeIdentity } from '../../identity/identity.js';

/** How long `publish` of a leaving record waits for its pushes to be written, ms. */
export const LEAVING_FLUSH_MS = 1000;

/** Options of `GossipSource`. */
export interface GossipSourceOptions {
  /** Gossip with every authenticated peer (an open mesh). Default false: trusted and bootstrap peers only. */
  open?: boolean;
  /** Node ids we dialled as bootstrap entries (the bootstrap source's `isBootstrapPeer`). */
  isBootstrapPeer?: (nodeId: string) => boolean;
  /** Engine tunables (shorter intervals for tests). */
  gossip?: Partial<GossipOptions>;
}

export class GossipSource implements DiscoverySource {
  readonly name = 'gossip';
  readonly #options: GossipSourceOptions;
  #driver: GossipDriver | undefined;

  constructor(options: GossipSourceOptions = {}) {
    this.#options = options;
  }

  start(context: DiscoveryContext): void {
    if (this.#driver) return;
    const o = this.#options;
    const forward = (record: PeerRecord, from: string | undefined) => {
      if (from !== undefined) context.emit({ record: record.bytes });
    };
    const driver = new GossipDriver({
      selfId: context.nodeId,
      now: context.now,
      isMember: (id) => o.open === true || context.registry.stateOf(id) === 'trusted' || (o.isBootstrapPeer?.(id) ?? false),
      onRecord: forward,
      onLeft: forward,
      onSelfRecord: (seq) => context.log('warn', `another process passes on a record of our node id with seq ${seq}; a newer one of ours goes out at the next refresh`),
      log: context.log,
      ...(o.gossip ? { gossip: o.gossip } : {}),
    });
    // What the registry already holds (verified when it was stored) is gossiped on from the start.
    const now = context.now();
    for (const r of context.registry.offerableRecords()) {
      if (r.nodeId !== context.nodeId && !r.isExpired(now) && !driver.engine.store.get(r.nodeId)) driver.engine.store.put(r);
    }
    driver.start();
    this.#driver = driver;
  }

  stop(): void {
    this.#driver?.stop();
    this.#driver = undefined;
  }

  /** Our record, new or refreshed; a leaving record is pushed at once and given a moment to go out. */
  async publish(record: PeerRecord): Promise<void> {
    const d = this.#driver;
    if (!d) return;
    const stored = d.engine.store.get(record.nodeId);
    if (stored && stored.seq >= record.seq) return;
    d.publish(record);
    if (!isLeaving(record)) return;
    d.flush();
    const end = Date.now() + LEAVING_FLUSH_MS;
    while (d.inFlight() > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  }

  onSession(session: MeshSession): void {
    this.#driver?.attach(session);
  }

  /** Mesh sessions gossiping now. */
  get meshSessions(): number {
    return this.#driver?.status().peers.length ?? 0;
  }

  /** Peers, records and counters (undefined before start). */
  status(): GossipStatus | undefined {
    return this.#driver?.status();
  }
}

/** Options of `createGossipSources`. */
export interface GossipSourcesOptions extends GossipSourceOptions, Omit<BootstrapSourceOptions, 'liveSessions' | 'identity'> {
  /** Bootstrap entries `URL#NODE_ID`. */
  bootstrap?: readonly string[];
  /** Accept entries without a node id (the first key seen there is believed). */
  trustOnFirstUse?: boolean;
  /** Our identity (needed for trust-on-first-use entries). */
  identity?: NodeIdentity;
}

/**
 * The bootstrap and gossip sources of a mesh node, wired together: gossip
 * admits the bootstrap peers, and bootstrap dials while gossip has fewer
 * live mesh sessions than the target.
 * @throws RangeError / McpE2eError `ERR_INVALID_NODE_ID` for a bad entry (see `parseBootstrapEntry`).
 */
export function createGossipSources(options: GossipSourcesOptions = {}): { bootstrap: BootstrapSource; gossip: GossipSource } {
  const entries = (options.bootstrap ?? []).map((e) => parseBootstrapEntry(e, { trustOnFirstUse: options.trustOnFirstUse ?? false }));
  let gossip: GossipSource | undefined;
  const bootstrap = new BootstrapSource(entries, {
    ...(options.target !== undefined ? { target: options.target } : {}),
    ...(options.checkIntervalMs !== undefined ? { checkIntervalMs: options.checkIntervalMs } : {}),
    ...(options.random ? { random: options.random } : {}),
    ...(options.identity ? { identity: options.identity } : {}),
    liveSessions: () => gossip!.meshSessions,
  });
  gossip = new GossipSource({
    ...(options.open !== undefined ? { open: options.open } : {}),
    ...(options.gossip ? { gossip: options.gossip } : {}),
    isBootstrapPeer: (id) => bootstrap.isBootstrapPeer(id) || (options.isBootstrapPeer?.(id) ?? false),
  });
  return { bootstrap, gossip };
}
