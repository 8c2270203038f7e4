/**
 * Bootstrap entries and when to dial them (issue 13): an entry is
 * `URL#NODE_ID`, the node id pinning the handshake (PROTOCOL.md §13.7); an
 * entry without one is accepted only with an explicit trust-on-first-use
 * flag. Entries are dialled at start and whenever the node has fewer live
 * mesh sessions than its target, each with its own exponential backoff and
 * jitter (`backoffDelay` of src/transport/reconnect.ts). Pure: the clock
 * and the randomness come in; the discovery source
 * (src/discovery/sources/bootstrap.ts) does the dialling.
 */
import { McpE2eError } from '../errors.js';
import { normalizeNodeId } from '../identity/identity.js';
import { backoffDelay, type ReconnectOptions } from '../transport/reconnect.js';

/** One configured bootstrap peer. */
export interface BootstrapEntry {
  /** `ws://` or `wss://` URL, without the fragment. */
  readonly url: string;
  /** The pinned node id; undefined only for a trust-on-first-use entry. */
  readonly nodeId: string | undefined;
}

/** Backoff between attempts of one entry: 1 s doubling to 5 minutes, each delay drawn from [d/2, d]. */
export const BOOTSTRAP_BACKOFF: Readonly<Required<Pick<ReconnectOptions, 'initialDelayMs' | 'maxDelayMs' | 'multiplier' | 'jitter'>>> = Object.freeze({
  initialDelayMs: 1000,
  maxDelayMs: 300_000,
  multiplier: 2,
  jitter: 0.5,
});

/**
 * Parse `URL#NODE_ID` (the node id may be in any case; it is normalised).
 * @param options.trustOnFirstUse accept an entry without a node id (the
 *   first key seen there is then believed).
 * @throws McpE2eError `ERR_INVALID_NODE_ID` for a fragment that is not a
 *   node id; RangeError for a URL that is not ws:// or wss://, or a missing
 *   node id without `trustOnFirstUse`.
 */
export function parseBootstrapEntry(text: string, options: { trustOnFirstUse?: boolean } = {}): BootstrapEntry {
  const hash = text.indexOf('#');
  const urlText = hash < 0 ? text : text.slice(0, hash);
  let url: URL;
  try {
    url = new URL(urlText);
  } catch {
    throw new RangeError(`bootstrap entry ${JSON.stringify(text.slice(0, 200))}: not a URL (expected ws://host:port#NODE_ID)`);
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new RangeError(`bootstrap entry ${JSON.stringify(urlText.slice(0, 200))}: expected a ws:// or wss:// URL`);
  if (url.username || url.password || url.search) throw new RangeError(`bootstrap entry ${JSON.stringify(urlText.slice(0, 200))}: no user information or query allowed`);
  if (hash < 0 || hash === text.length - 1) {
    if (!options.trustOnFirstUse) {
      throw new RangeError(`bootstrap entry ${url.href}: no node id (write ${url.href}#NODE_ID, or allow trust on first use explicitly)`);
    }
    return { url: url.href, nodeId: undefined };
  }
  const nodeId = normalizeNodeId(text.slice(hash + 1));
  if (!nodeId) throw new McpE2eError('ERR_INVALID_NODE_ID', `bootstrap entry ${url.href}: the part after # is not a node id (64 hex digits)`);
  return { url: url.href, nodeId };
}

interface EntryState {
  readonly entry: BootstrapEntry;
  /** Failed attempts since the last success. */
  failures: number;
  nextAt: number;
  dialling: boolean;
  connected: boolean;
}

/**
 * Which entries to dial, when: every entry is tried at start; afterwards,
 * while live mesh sessions are below the target, each entry that is neither
 * connected nor being dialled is tried again once its own backoff has run
 * out. A success resets the entry's backoff; a session that ends starts it
 * again from the first delay.
 */
export class BootstrapSchedule {
  readonly #states: EntryState[];
  readonly #random: () => number;
  #started = false;

  constructor(entries: readonly BootstrapEntry[], random: () => number = Math.random) {
    this.#states = entries.map((entry) => ({ entry, failures: 0, nextAt: -Infinity, dialling: false, connected: false }));
    this.#random = random;
  }

  /** Entries to dial now (each is then marked as being dialled). */
  due(nowMs: number, liveSessions: number, target: number): BootstrapEntry[] {
    const out: BootstrapEntry[] = [];
    const first = !this.#started;
    this.#started = true;
    if (!first && liveSessions >= target) return out;
    for (const s of this.#states) {
      if (s.dialling || s.connected || s.nextAt > nowMs) continue;
      s.dialling = true;
      out.push(s.entry);
    }
    return out;
  }

  /** The dial of `entry` succeeded: a session is up. */
  connected(entry: BootstrapEntry): void {
    const s = this.#state(entry);
    s.dialling = false;
    s.connected = true;
    s.failures = 0;
  }

  /** The dial of `entry` failed at `nowMs`; returns the delay before its next attempt, ms. */
  failed(entry: BootstrapEntry, nowMs: number): number {
    const s = this.#state(entry);
    s.dialling = false;
    s.failures++;
    const delay = backoffDelay(s.failures, BOOTSTRAP_BACKOFF, this.#random);
    s.nextAt = nowMs + delay;
    return delay;
  }

  /** The session of `entry` ended at `nowMs`: it is dialled again after the first delay. */
  closed(entry: BootstrapEntry, nowMs: number): void {
    const s = this.#state(entry);
    s.connected = false;
    s.nextAt = nowMs + backoffDelay(1, BOOTSTRAP_BACKOFF, this.#random);
  }

  /** The earliest time an entry may be dialled again (Infinity when none is waiting). */
  nextDueAt(): number {
    let t = Infinity;
    for (const s of this.#states) if (!s.dialling && !s.connected && s.nextAt < t) t = s.nextAt;
    return t;
  }

  #state(entry: BootstrapEntry): EntryState {
    const s = this.#states.find((x) => x.entry === entry);
    if (!s) throw new RangeError('not an entry of this schedule');
    return s;
  }
}
