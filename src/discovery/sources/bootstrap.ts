/**
 * Bootstrap peers as a discovery source (issue 13): configured entries
 * `URL#NODE_ID` are handed to the node as address hints and dialled (pinned
 * to their node id, through the node's `connect`) at start and whenever the
 * node has fewer live mesh sessions than its target, each with its own
 * backoff (src/discovery/bootstrap.ts). Dialling runs in the background: an
 * unreachable bootstrap never blocks or fails the node's start.
 *
 * An entry without a node id (trust on first use, only when asked for) is
 * dialled once accepting whatever key answers; that node id is then pinned
 * for the rest of the run.
 */
import { isMcpE2eError } from '../../errors.js';
import type { NodeIdentity } from '../../identity/identity.js';
import { EncryptedWebSocketClientTransport } from '../../transport/client.js';
import type { DiscoveryContext, DiscoveryHint, DiscoverySource } from '../source.js';
import { BootstrapSchedule, type BootstrapEntry } from '../bootstrap.js';

/** How often the schedule is looked at, ms. */
export const BOOTSTRAP_CHECK_MS = 1000;
/** Default number of live mesh sessions below which bootstrap entries are dialled again. */
export const DEFAULT_MESH_TARGET = 3;

/** Options of `BootstrapSource`. */
export interface BootstrapSourceOptions {
  /** Live mesh sessions wanted; below it, entries are dialled again. Default `DEFAULT_MESH_TARGET`. */
  target?: number;
  /** Live mesh sessions now (the gossip source's). Default: the bootstrap sessions this source holds. */
  liveSessions?: () => number;
  /** Needed only for trust-on-first-use entries: the identity to dial them with before their id is known. */
  identity?: NodeIdentity;
  /** Default `BOOTSTRAP_CHECK_MS`. */
  checkIntervalMs?: number;
  random?: () => number;
}

export class BootstrapSource implements DiscoverySource {
  readonly name = 'bootstrap';
  readonly entries: readonly BootstrapEntry[];
  readonly #options: BootstrapSourceOptions;
  readonly #schedule: BootstrapSchedule;
  /** Node ids of the entries: pinned, or learned on first use. */
  readonly #ids = new Map<BootstrapEntry, string>();
  readonly #open = new Map<BootstrapEntry, EncryptedWebSocketClientTransport>();
  #context: DiscoveryContext | undefined;
  #timer: NodeJS.Timeout | undefined;

  /** @throws TypeError when an entry has no node id and no `identity` is given to dial it with. */
  constructor(entries: readonly BootstrapEntry[], options: BootstrapSourceOptions = {}) {
    this.entries = [...entries];
    this.#options = options;
    for (const e of this.entries) {
      if (e.nodeId) this.#ids.set(e, e.nodeId);
      else if (!options.identity) throw new TypeError(`bootstrap entry ${e.url} has no node id: trust on first use needs "identity"`);
    }
    this.#schedule = new BootstrapSchedule(this.entries, options.random);
  }

  /** True for the node id of a bootstrap entry (pinned, or learned on first use). */
  isBootstrapPeer(nodeId: string): boolean {
    for (const id of this.#ids.values()) if (id === nodeId) return true;
    return false;
  }

  start(context: DiscoveryContext): void {
    if (this.#context) return;
    this.#context = context;
    for (const [e, id] of this.#ids) context.emit({ nodeId: id, addresses: [e.url] });
    const check = () => this.#check();
    this.#timer = setInterval(check, this.#options.checkIntervalMs ?? BOOTSTRAP_CHECK_MS);
    this.#timer.unref();
    // The first round of dials right after start, without waiting for it.
    setImmediate(check);
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#context = undefined;
    const open = [...this.#open.values()];
    this.#open.clear();
    await Promise.all(open.map((t) => t.close().catch(() => {})));
  }

  async lookup(nodeId: string): Promise<DiscoveryHint[]> {
    const out: DiscoveryHint[] = [];
    for (const [e, id] of this.#ids) if (id === nodeId) out.push({ nodeId, addresses: [e.url] });
    return out;
  }

  #live(): number {
    return this.#options.liveSessions?.() ?? this.#open.size;
  }

  #check(): void {
    const ctx = this.#context;
    if (!ctx) return;
    for (const entry of this.#schedule.due(ctx.now(), this.#live(), this.#options.target ?? DEFAULT_MESH_TARGET)) void this.#dial(ctx, entry);
  }

  async #dial(ctx: DiscoveryContext, entry: BootstrapEntry): Promise<void> {
    try {
      const id = this.#ids.get(entry) ?? (await this.#firstUse(ctx, entry));
      const t = await ctx.connect(id);
      if (this.#context !== ctx) {
        await t.close();
        return;
      }
      this.#schedule.connected(entry);
      this.#open.set(entry, t);
      ctx.log('info', `connected to bootstrap peer ${entry.url}`, { node_id: id });
      void t.whenClosed().then(() => {
        if (this.#open.get(entry) === t) this.#open.delete(entry);
        if (this.#context === ctx) this.#schedule.closed(entry, ctx.now());
      });
    } catch (err) {
      const delay = this.#schedule.failed(entry, ctx.now());
      ctx.log('debug', `bootstrap peer ${entry.url} not reached; next try in ${Math.round(delay / 1000)} s: ${(err as Error).message}`, isMcpE2eError(err) ? { code: err.code } : {});
    }
  }

  /** Trust on first use: whatever node completes the handshake at the URL is believed, and pinned from now on. */
  async #firstUse(ctx: DiscoveryContext, entry: BootstrapEntry): Promise<string> {
    const t = new EncryptedWebSocketClientTransport(entry.url, { identity: this.#options.identity!, allowAnyPeer: true });
    try {
      await t.start();
      const id = t.peer!.nodeId;
      ctx.log('warn', `bootstrap peer ${entry.url} taken on first use as node ${id}`);
      this.#ids.set(entry, id);
      ctx.emit({ nodeId: id, addresses: [entry.url] });
      return id;
    } finally {
      await t.close().catch(() => {});
    }
  }
}
