/**
 * A discovery source of fixed findings: records and addresses that the
 * application already has (its configuration, a file shipped with it, a
 * record handed over by a person). It emits them at start, answers lookups
 * from them, and is otherwise the simplest implementation of the
 * `DiscoverySource` interface. What it hands over is verified by the node
 * like everything else: a stale or forged record in the list is refused.
 */
import { recordBytesFromHex, decodePeerRecord } from '../record.js';
import { normalizeNodeId } from '../../identity/identity.js';
import type { PeerSource } from '../registry.js';
import type { DiscoveryContext, DiscoveryHint, DiscoverySource } from '../source.js';

/** One fixed finding: a record (bytes or hex), or a node id with addresses. */
export interface StaticEntry {
  record?: Uint8Array | string;
  nodeId?: string;
  addresses?: string[];
}

export class StaticSource implements DiscoverySource {
  readonly name: PeerSource;
  readonly #hints: Array<{ nodeId: string | undefined; hint: DiscoveryHint }>;

  /**
   * @param entries the findings. A record that cannot even be decoded is
   *   kept and refused by the node when emitted (reported, not thrown).
   * @param name provenance. Default `manual`.
   */
  constructor(entries: readonly StaticEntry[], name: PeerSource = 'manual') {
    this.name = name;
    this.#hints = entries.map((e) => {
      const hint: DiscoveryHint = {};
      let nodeId = e.nodeId !== undefined ? normalizeNodeId(e.nodeId) : undefined;
      if (e.record !== undefined) {
        try {
          hint.record = typeof e.record === 'string' ? recordBytesFromHex(e.record) : e.record;
          nodeId ??= decodePeerRecord(hint.record).nodeId;
        } catch {
          hint.record = typeof e.record === 'string' ? new Uint8Array(0) : e.record;
        }
      }
      if (nodeId !== undefined) hint.nodeId = nodeId;
      if (e.addresses !== undefined) hint.addresses = e.addresses;
      return { nodeId, hint };
    });
  }

  start(context: DiscoveryContext): void {
    for (const { hint } of this.#hints) context.emit(hint);
  }

  stop(): void {
    // Nothing runs between start and stop.
  }

  async lookup(nodeId: string): Promise<DiscoveryHint[]> {
    return this.#hints.filter((h) => h.nodeId === nodeId).map((h) => h.hint);
  }
}
