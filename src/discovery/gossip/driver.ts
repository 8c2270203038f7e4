/**
 * Binds the gossip state machine (engine.ts) to the control channel of
 * established sessions (PROTOCOL.md §14.1): a timer for the gossip rounds,
 * the membership policy (which sessions may gossip), sends with a bound on
 * what is in flight per session, and the engine's events turned into
 * callbacks (records for the registry, log lines, cut-offs that close the
 * session). Everything the protocol decides stays in the engine.
 */
import { McpE2eError } from '../../errors.js';
import type { PeerRecord } from '../record.js';
import { GossipEngine, type GossipCounters, type GossipEvent, type GossipOptions, type GossipStep } from './engine.js';
import { GOSSIP_TYPE } from './protocol.js';
import type { GossipStore } from './store.js';

/** What the driver needs of a session (the mesh node's `MeshSession` is one). */
export interface GossipSession {
  readonly peer: { readonly nodeId: string };
  readonly closed: boolean;
  /** Resolves when the session is closed. */
  readonly done: Promise<void>;
  send(message: { type: string }): Promise<void>;
  /** Route the control messages of `type` to `handler`; returns a function that removes it. */
  handle(type: string, handler: (message: { type: string }) => void): () => void;
  /** End the session; with `err`, the peer reads its code in our sealed CLOSE. */
  close(err?: McpE2eError): Promise<void>;
}

/** The error a cut-off peer's sessions end with (4003; PROTOCOL.md §14.6). */
const cutOff = (peer: string) => new McpE2eError('ERR_GOSSIP_CUT_OFF', `gossip: peer ${peer.slice(0, 16)} cut off for misbehaviour`);

/** Log levels of the driver's callbacks (the mesh node's). */
export type GossipLogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Options of a `GossipDriver`. */
export interface GossipDriverOptions {
  /** Our node id. */
  selfId: string;
  /** The clock, ms since the epoch. Default `Date.now`. */
  now?: () => number;
  /** May this session gossip with us? (PROTOCOL.md §14.1 membership). */
  isMember: (nodeId: string) => boolean;
  /** A new record was accepted (from a peer, or our own): hand it to the registry. */
  onRecord?: (record: PeerRecord, from: string | undefined) => void;
  /** A node announced that it leaves (its leaving record was accepted). */
  onLeft?: (record: PeerRecord, from: string | undefined) => void;
  /** Someone passes on a record of our node id with a seq at or above ours: publish a newer one. */
  onSelfRecord?: (seq: number) => void;
  log?: (level: GossipLogLevel, message: string, fields?: Record<string, unknown>) => void;
  /** Engine tunables (intervals for tests, limits). */
  gossip?: Partial<GossipOptions>;
  /** The store (default a MemoryGossipStore). */
  store?: GossipStore;
  random?: () => number;
}

/** Most messages in flight (sent, not yet written) per session; more are dropped and counted (the protocol tolerates loss, §14.5). */
export const MAX_IN_FLIGHT_PER_SESSION = 64;

const TYPES = [GOSSIP_TYPE.PUSH, GOSSIP_TYPE.SYNC, GOSSIP_TYPE.WANT, GOSSIP_TYPE.RECORDS];

interface Bound {
  readonly session: GossipSession;
  readonly unbind: Array<() => void>;
  inFlight: number;
}

/** What `status()` reports. */
export interface GossipStatus {
  /** Node ids of the sessions gossiping now. */
  peers: string[];
  /** Records held (ours included). */
  records: number;
  counters: Readonly<GossipCounters>;
  /** Sessions not admitted by the membership policy (since start). */
  refusedSessions: number;
  /** Messages not sent: session gone, or too many in flight. */
  sendsDropped: number;
  sendErrors: number;
}

export class GossipDriver {
  readonly engine: GossipEngine;
  readonly #options: GossipDriverOptions;
  readonly #now: () => number;
  readonly #sessions = new Map<string, Bound>();
  #timer: NodeJS.Timeout | undefined;
  #refusedSessions = 0;
  #sendsDropped = 0;
  #sendErrors = 0;

  constructor(options: GossipDriverOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.engine = new GossipEngine(options.selfId, this.#now(), {
      ...(options.store ? { store: options.store } : {}),
      ...(options.random ? { random: options.random } : {}),
      ...(options.gossip ? { options: options.gossip } : {}),
    });
  }

  /** Start the gossip rounds. Safe to call again. */
  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.#round(), this.engine.options.gossipIntervalMs);
    this.#timer.unref();
  }

  /** Stop the rounds and let go of every session (they stay open: they belong to the mesh node). Safe to call again. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    for (const peer of [...this.#sessions.keys()]) this.#detach(peer);
  }

  /**
   * Our record, new or refreshed (or our leaving record on shutdown).
   * Pushed from the next round on; `flush()` pushes at once.
   */
  publish(record: PeerRecord): void {
    this.#dispatch(this.engine.publish(record));
  }

  /** Run a round now (e.g. to push a leaving record before closing). */
  flush(): void {
    this.#round();
  }

  /**
   * One gossip round. Membership is asked again first: it can change while a
   * session lasts (an allowlist edit, a peer no longer trusted), and a peer
   * that left it stops gossiping here, its messages unhandled as on a session
   * never admitted (PROTOCOL.md §14.1).
   */
  #round(): void {
    for (const peer of [...this.#sessions.keys()]) {
      if (this.#options.isMember(peer)) continue;
      this.#options.log?.('info', 'a peer is no longer a gossip member; its session no longer gossips', { peer: peer.slice(0, 16) });
      this.#detach(peer);
      this.#refusedSessions++;
    }
    this.#dispatch(this.engine.tick(this.#now()));
  }

  /**
   * An encrypted session is established. It gossips if the membership
   * policy admits its peer and the peer is not banned; otherwise its gossip
   * messages stay unhandled (the session counts them as unknown).
   * @returns true when the session was taken.
   */
  attach(session: GossipSession): boolean {
    const peer = session.peer.nodeId;
    if (session.closed || this.#sessions.has(peer)) return false;
    if (!this.#options.isMember(peer)) {
      this.#refusedSessions++;
      return false;
    }
    if (this.engine.isBanned(peer, this.#now())) {
      this.#options.log?.('info', 'closing a session of a peer that was cut off', { peer: peer.slice(0, 16) });
      void session.close(cutOff(peer)).catch(() => {});
      return false;
    }
    const bound: Bound = { session, unbind: [], inFlight: 0 };
    this.#sessions.set(peer, bound);
    for (const type of TYPES) bound.unbind.push(session.handle(type, (m) => this.#dispatch(this.engine.receive(peer, m, this.#now()))));
    void session.done.then(() => this.#detach(peer, session));
    this.#dispatch(this.engine.addPeer(peer, this.#now()));
    return true;
  }

  /** Messages sent and not yet written, over all sessions. */
  inFlight(): number {
    let n = 0;
    for (const b of this.#sessions.values()) n += b.inFlight;
    return n;
  }

  status(): GossipStatus {
    return {
      peers: [...this.#sessions.keys()],
      records: this.engine.store.size,
      counters: this.engine.counters,
      refusedSessions: this.#refusedSessions,
      sendsDropped: this.#sendsDropped,
      sendErrors: this.#sendErrors,
    };
  }

  #detach(peer: string, session?: GossipSession): void {
    const bound = this.#sessions.get(peer);
    if (!bound || (session && bound.session !== session)) return;
    for (const u of bound.unbind) u();
    this.#sessions.delete(peer);
    this.engine.removePeer(peer);
  }

  #dispatch(step: GossipStep): void {
    for (const { peer, message } of step.send) {
      const bound = this.#sessions.get(peer);
      if (!bound || bound.session.closed || bound.inFlight >= MAX_IN_FLIGHT_PER_SESSION) {
        this.#sendsDropped++;
        continue;
      }
      bound.inFlight++;
      bound.session.send(message).then(
        () => bound.inFlight--,
        () => {
          bound.inFlight--;
          this.#sendErrors++;
        },
      );
    }
    for (const e of step.events) this.#event(e);
  }

  #event(e: GossipEvent): void {
    const o = this.#options;
    switch (e.type) {
      case 'record':
        o.onRecord?.(e.record, e.from);
        break;
      case 'left':
        o.onLeft?.(e.record, e.from);
        break;
      case 'self':
        o.onSelfRecord?.(e.seq);
        break;
      case 'misbehaviour':
        o.log?.('warn', 'a peer sent what was refused', { peer: e.peer.slice(0, 16), score: e.score, counts: e.counts });
        break;
      case 'cutoff': {
        o.log?.('warn', 'peer cut off', { peer: e.peer.slice(0, 16), score: e.score, last: e.code });
        const bound = this.#sessions.get(e.peer);
        this.#detach(e.peer);
        if (bound) void bound.session.close(cutOff(e.peer)).catch(() => {});
        break;
      }
      case 'expired':
        break;
    }
  }
}
