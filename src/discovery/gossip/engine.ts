/**
 * The gossip state machine (PROTOCOL.md §14): push of new records to a few
 * mesh peers with bounded retransmits, anti-entropy exchanges of range-based
 * set reconciliation with a random peer at an interval, pulls by node id,
 * and the abuse rules (token buckets, seen cache, scores, cut-off, one log
 * line per peer and interval).
 *
 * Pure: it has no clock, no timer, no socket and no randomness of its own.
 * Every call takes the time; every call returns what to send to whom and
 * what happened (`GossipStep`). The driver (src/discovery/gossip/driver.ts)
 * binds it to the control channel of sessions; the simulator
 * (bench/gossip/) runs the same class over a virtual clock.
 *
 * Every record that arrives is verified on its own (§13.4, §13.5): who
 * relayed it counts for nothing, and a stored record is only ever replaced
 * by one with a greater seq.
 */
import { isMcpE2eError, type ErrorCode } from '../../errors.js';
import { compareToStored, recordBytesFromHex, verifyPeerRecord, type PeerRecord } from '../record.js';
import { TokenBucket } from '../../util/rate.js';
import {
  decodeGossipMessage,
  GOSSIP_TYPE,
  MAX_RECORD_HEX_PER_MESSAGE,
  MAX_RECORDS_PER_MESSAGE,
  MAX_SYNC_ROUNDS,
  MAX_WANT_IDS,
  type GossipMessage,
  type SyncMessage,
} from './protocol.js';
import { isLeaving } from './leaving.js';
import { TransmitQueue } from './queue.js';
import { answerRanges, initialRanges } from './reconcile.js';
import { MemoryGossipStore, type GossipStore } from './store.js';

/** Verifies one record received as hex (§13.4 rules 1-7). Throws an McpE2eError with the rule's code. */
export type RecordVerifier = (hex: string, nowMs: number) => PeerRecord;

/** The default verifier: `recordBytesFromHex` then `verifyPeerRecord`. */
export const verifyRecordHex: RecordVerifier = (hex, nowMs) => verifyPeerRecord(recordBytesFromHex(hex), { nowMs });

/** Tunables of a `GossipEngine`. Defaults in `DEFAULT_GOSSIP`. */
export interface GossipOptions {
  /** Push interval (one gossip round), ms. */
  gossipIntervalMs: number;
  /** Mean interval between anti-entropy exchanges we start, ms (each one jittered by ±25%). */
  antiEntropyIntervalMs: number;
  /** Peers a tick pushes to. */
  fanout: number;
  /** Retransmit limit = `retransmitMult * ceil(log10(records + 1))` (memberlist's rule). */
  retransmitMult: number;
  /** Most records held (all node ids); new node ids beyond it are refused (counted, not scored). */
  maxRecords: number;
  /** Gossip messages accepted per peer: burst and per-second refill. */
  messageBurst: number;
  messagesPerSecond: number;
  /** Records accepted in pushes per peer: burst and per-second refill. */
  pushRecordBurst: number;
  pushRecordsPerSecond: number;
  /**
   * Records in answers to our wants (pulls) that cost a signature check and
   * are not stored (refused, or the store full), per peer: burst and
   * per-second refill. Records that are stored take nothing, nor do those
   * refused unverified (a replay of what we hold, the seen cache). While it
   * is empty, the peer's further pulled records are dropped before they are
   * verified (counted, not scored) and pulled again later.
   */
  pullRefusalBurst: number;
  pullRefusalsPerSecond: number;
  /** Most `gossip_want` messages awaiting an answer per peer. */
  maxOutstandingWants: number;
  /** A want not answered in this time lets another peer be asked for the same ids, ms. */
  wantTimeoutMs: number;
  /** An exchange we started with no answer for this long is given up, ms. */
  exchangeTimeoutMs: number;
  /** A peer whose score falls to this (or below) is cut off. */
  cutoffScore: number;
  /** A cut-off peer is refused for this long, ms. */
  banMs: number;
  /** Misbehaviour of a peer is reported at most once per this interval, ms. */
  logIntervalMs: number;
  /** How long refused records are remembered (seen cache), ms. */
  seenTtlMs: number;
  /** Size of the seen cache, in hex digits of the records it holds. */
  seenCacheDigits: number;
}

/** Defaults (SECURITY.md lists them). */
export const DEFAULT_GOSSIP: Readonly<GossipOptions> = Object.freeze({
  gossipIntervalMs: 1000,
  antiEntropyIntervalMs: 10_000,
  fanout: 3,
  retransmitMult: 4,
  maxRecords: 16_384,
  messageBurst: 64,
  messagesPerSecond: 32,
  pushRecordBurst: 128,
  pushRecordsPerSecond: 32,
  pullRefusalBurst: 128,
  pullRefusalsPerSecond: 32,
  maxOutstandingWants: 4,
  wantTimeoutMs: 2000,
  exchangeTimeoutMs: 2000,
  cutoffScore: -20,
  banMs: 10 * 60_000,
  logIntervalMs: 60_000,
  seenTtlMs: 120_000,
  seenCacheDigits: 4 * 1024 * 1024,
});

/**
 * Points a peer loses for each refusal of what it sent (§14.6): only for
 * what every honest relayer checks itself before passing a record on (its
 * encoding, key, node id and signature), for answers nobody asked for, and
 * for going over the buckets. A record that is stale, replayed, an
 * equivocation, expired or from the future here may have been valid where
 * the relayer got it (another version reached it first, or clocks differ):
 * charging the relayer would let any key holder get honest peers cut off by
 * sending two versions of a record to two of them. Those are counted and
 * reported, never scored. So are messages over a bucket: dropping them is
 * the defence (it costs nothing), and an honest node catching up on
 * thousands of records goes over its peer's buckets without any fault.
 */
export const GOSSIP_PENALTY: Readonly<Partial<Record<ErrorCode, number>>> = Object.freeze({
  ERR_GOSSIP_MALFORMED: 10,
  ERR_RECORD_TOO_LARGE: 10,
  ERR_RECORD_MALFORMED: 10,
  ERR_RECORD_BAD_KEY: 10,
  ERR_RECORD_NODE_ID_MISMATCH: 10,
  ERR_RECORD_BAD_SIGNATURE: 10,
  ERR_GOSSIP_UNSOLICITED: 5,
});

/**
 * The defaults with `given` applied.
 * @throws TypeError for an unknown option; RangeError for a value that is not a positive number (`cutoffScore`: negative).
 */
function checkOptions(given: Partial<GossipOptions>): Readonly<GossipOptions> {
  for (const [k, v] of Object.entries(given)) {
    if (!(k in DEFAULT_GOSSIP)) throw new TypeError(`unknown gossip option "${k}"`);
    const ok = typeof v === 'number' && Number.isFinite(v) && (k === 'cutoffScore' ? v < 0 : v > 0);
    if (!ok) throw new RangeError(`"${k}" expected a ${k === 'cutoffScore' ? 'negative' : 'positive'} number`);
  }
  return Object.freeze({ ...DEFAULT_GOSSIP, ...given });
}

/** Score regained per `antiEntropyIntervalMs` of good behaviour, up to 0. */
const SCORE_RECOVERY = 1;
/** Peers whose buckets and score are kept after their session ended (see `#departed`). */
const MAX_DEPARTED_PEERS = 1024;
/** An exchange that found us lacking this many records (a full want) is followed by the next one at the next round. */
const CATCH_UP_LACKING = MAX_WANT_IDS;
/** Most ids queued for pulling from one peer. */
const MAX_WANT_QUEUE = 4096;
/** Most wants awaiting an answer from one peer, late ones included (64 × 16 ids); no more are sent meanwhile. */
const MAX_REMEMBERED_WANTS = 64;
/** Most records waiting to be pushed. */
const MAX_PUSH_QUEUE = 4096;

/** What a call asks the driver to send. */
export interface Outbound {
  readonly peer: string;
  readonly message: GossipMessage;
}

/** What happened, for the driver (registry, log, session control). */
export type GossipEvent =
  /** A new record was accepted (`via`: push, sync answer, or our own). */
  | { readonly type: 'record'; readonly record: PeerRecord; readonly from: string | undefined; readonly via: 'push' | 'pull' | 'self' }
  /** A leaving record was accepted: the node is gone (the record is kept, so older ones stay refused). */
  | { readonly type: 'left'; readonly record: PeerRecord; readonly from: string | undefined }
  /** A record expired and was dropped. */
  | { readonly type: 'expired'; readonly record: PeerRecord }
  /** Someone passes on a record of our own node id that we did not make last: publish one with a greater seq. */
  | { readonly type: 'self'; readonly seq: number; readonly from: string }
  /** A peer's refusals since the last report (one event per peer and `logIntervalMs`). */
  | { readonly type: 'misbehaviour'; readonly peer: string; readonly counts: Readonly<Partial<Record<ErrorCode, number>>>; readonly score: number }
  /** A peer's score reached the cut-off: close its session; it is refused for `banMs`. */
  | { readonly type: 'cutoff'; readonly peer: string; readonly score: number; readonly code: ErrorCode };

/** The result of one call. */
export interface GossipStep {
  readonly send: Outbound[];
  readonly events: GossipEvent[];
}

/** Counters since the engine was made. */
export interface GossipCounters {
  messagesIn: number;
  messagesOut: number;
  recordsAccepted: number;
  recordsRefused: number;
  /** Refusals by code (replays included). */
  refused: Partial<Record<ErrorCode, number>>;
  /** Records refused because the store is full. */
  storeFull: number;
  /** Messages dropped by a token bucket. */
  rateLimited: number;
  /** Records in answers to our wants dropped unverified: the peer's `pullRefusalBurst` bucket was empty. */
  pullsDropped: number;
  exchangesStarted: number;
  exchangesCompleted: number;
  /** Exchanges that used up MAX_SYNC_ROUNDS and were resumed. */
  exchangesTruncated: number;
  exchangesTimedOut: number;
  wantsSent: number;
  pushesSent: number;
  cutoffs: number;
}

interface PeerState {
  readonly id: string;
  readonly messages: TokenBucket;
  readonly pushRecords: TokenBucket;
  readonly pullRefusals: TokenBucket;
  score: number;
  scoreAt: number;
  /** Refusals not yet reported. */
  counts: Partial<Record<ErrorCode, number>>;
  lastLogAt: number;
  /** Ids waiting to be pulled from this peer, in order. */
  wantQueue: string[];
  /**
   * Wants sent and not answered yet, by want id, oldest first. One that
   * timed out no longer counts against `maxOutstandingWants`, but its late
   * answer is still taken: answers come in order on the session, so a want
   * is forgotten only when answered (never by time: a paused reader or a
   * large MCP message in the same stream delays an honest answer by any
   * amount). No new want goes to a peer while MAX_REMEMBERED_WANTS of its
   * wait, so none is forgotten unanswered (its late answer would then count
   * as unsolicited: a peer stalled ~32 s was cut off that way).
   */
  readonly wants: Map<number, { readonly ids: Set<string>; readonly at: number; late: boolean }>;
  /** Wants in `wants` that have not timed out. */
  outstanding: number;
}

interface Exchange {
  readonly peer: string;
  readonly x: number;
  at: number;
  /** Node ids this exchange found us lacking (queued for pulling). */
  lacking: number;
}

/**
 * A node's gossip state machine. One per node; peers are the node ids of the
 * mesh sessions the membership policy admitted (`addPeer`/`removePeer`).
 */
export class GossipEngine {
  readonly selfId: string;
  readonly store: GossipStore;
  readonly options: Readonly<GossipOptions>;
  readonly counters: GossipCounters = {
    messagesIn: 0,
    messagesOut: 0,
    recordsAccepted: 0,
    recordsRefused: 0,
    refused: {},
    storeFull: 0,
    rateLimited: 0,
    pullsDropped: 0,
    exchangesStarted: 0,
    exchangesCompleted: 0,
    exchangesTruncated: 0,
    exchangesTimedOut: 0,
    wantsSent: 0,
    pushesSent: 0,
    cutoffs: 0,
  };

  readonly #random: () => number;
  readonly #verify: RecordVerifier;
  readonly #peers = new Map<string, PeerState>();
  readonly #banned = new Map<string, number>();
  /**
   * The buckets and score of peers whose session ended, reused when they come
   * back (oldest dropped past MAX_DEPARTED_PEERS): a new session must not buy a
   * member full buckets and a clean score. Buckets refill and scores recover
   * with time, so a state kept however long is the one a peer would have had.
   */
  readonly #departed = new Map<string, Pick<PeerState, 'messages' | 'pushRecords' | 'pullRefusals' | 'score' | 'scoreAt'>>();
  readonly #queue = new TransmitQueue(MAX_PUSH_QUEUE);
  /** Node id -> when a want for it went out (to any peer); one pull per id at a time. */
  readonly #pending = new Map<string, number>();
  /** Refused records (hex) -> code, oldest first; bounded by `seenCacheDigits`. */
  readonly #seen = new Map<string, { readonly code: ErrorCode; readonly until: number }>();
  #seenDigits = 0;
  #exchange: Exchange | undefined;
  #nextWant = 0;
  /** Peer to resume an exchange with at the next tick (the last one was truncated). */
  #resumeWith: string | undefined;
  #nextAntiEntropyAt: number;
  #out: Outbound[] = [];
  #events: GossipEvent[] = [];

  /**
   * @param selfId Our node id (64 hex).
   * @param nowMs The clock at creation.
   * @param init.random Uniform [0, 1) (default Math.random); the simulator seeds its own.
   * @param init.store The record set (default a MemoryGossipStore).
   * @param init.verify Record verifier (default `verifyRecordHex`).
   */
  constructor(
    selfId: string,
    nowMs: number,
    init: { random?: () => number; store?: GossipStore; verify?: RecordVerifier; options?: Partial<GossipOptions> } = {},
  ) {
    this.selfId = selfId;
    this.store = init.store ?? new MemoryGossipStore();
    this.#random = init.random ?? Math.random;
    this.#verify = init.verify ?? verifyRecordHex;
    this.options = checkOptions(init.options ?? {});
    this.#nextAntiEntropyAt = nowMs + this.#jitteredInterval();
  }

  /** Node ids of the current gossip peers. */
  get peers(): string[] {
    return [...this.#peers.keys()];
  }

  /** The current score of a peer (0 is clean; the cut-off is `cutoffScore`). */
  scoreOf(peer: string): number | undefined {
    return this.#peers.get(peer)?.score;
  }

  /** True while `peer` is banned after a cut-off. */
  isBanned(peer: string, nowMs: number): boolean {
    const until = this.#banned.get(peer);
    if (until === undefined) return false;
    if (nowMs < until) return true;
    this.#banned.delete(peer);
    return false;
  }

  /**
   * A mesh session with `peer` is up and the membership policy admits it.
   * Starts an exchange with it at once when none is running (a new session
   * is where a joining node, or a healed partition, learns the most).
   * A banned peer is not added (the step is empty).
   */
  addPeer(peer: string, nowMs: number): GossipStep {
    if (peer === this.selfId || this.#peers.has(peer) || this.isBanned(peer, nowMs)) return this.#flush();
    const o = this.options;
    const before = this.#departed.get(peer);
    this.#departed.delete(peer);
    this.#peers.set(peer, {
      id: peer,
      messages: before?.messages ?? new TokenBucket(o.messageBurst, 1000 / o.messagesPerSecond, nowMs),
      pushRecords: before?.pushRecords ?? new TokenBucket(o.pushRecordBurst, 1000 / o.pushRecordsPerSecond, nowMs),
      pullRefusals: before?.pullRefusals ?? new TokenBucket(o.pullRefusalBurst, 1000 / o.pullRefusalsPerSecond, nowMs),
      score: before?.score ?? 0,
      scoreAt: before?.scoreAt ?? nowMs,
      counts: {},
      lastLogAt: -Infinity,
      wantQueue: [],
      wants: new Map(),
      outstanding: 0,
    });
    if (!this.#exchange) this.#startExchange(peer, nowMs);
    return this.#flush();
  }

  /** The session with `peer` ended (or it left the membership). */
  removePeer(peer: string): void {
    const state = this.#peers.get(peer);
    if (!state) return;
    for (const w of state.wants.values()) for (const id of w.ids) this.#pending.delete(id);
    for (const id of state.wantQueue) this.#pending.delete(id);
    this.#peers.delete(peer);
    const { messages, pushRecords, pullRefusals, score, scoreAt } = state;
    this.#departed.set(peer, { messages, pushRecords, pullRefusals, score, scoreAt });
    if (this.#departed.size > MAX_DEPARTED_PEERS) this.#departed.delete(this.#departed.keys().next().value!);
    if (this.#exchange?.peer === peer) this.#exchange = undefined;
    if (this.#resumeWith === peer) this.#resumeWith = undefined;
  }

  /**
   * Publish our own record (a new one, or a leaving one on shutdown): it is
   * stored and pushed to every peer in turn.
   * @throws RangeError if it is not ours or not newer than our stored record.
   */
  publish(record: PeerRecord): GossipStep {
    if (record.nodeId !== this.selfId) throw new RangeError('"record" expected a record of our own node id');
    const stored = this.store.get(this.selfId);
    if (stored && stored.seq >= record.seq) throw new RangeError(`"record" expected a seq above ${stored.seq}`);
    this.store.put(record);
    this.#queue.add(record, undefined);
    this.#events.push({ type: 'record', record, from: undefined, via: 'self' });
    return this.#flush();
  }

  /** One gossip round: expiry, timeouts, push, anti-entropy when due, pulls, reports. */
  tick(nowMs: number): GossipStep {
    const o = this.options;
    for (const r of this.store.expire(nowMs)) {
      this.#queue.delete(r.nodeId);
      this.#events.push({ type: 'expired', record: r });
    }
    for (const [id, at] of this.#pending) if (nowMs - at >= o.wantTimeoutMs) this.#pending.delete(id);
    if (this.#exchange && nowMs - this.#exchange.at >= o.exchangeTimeoutMs) {
      // A lost message, or a peer gone quiet: try again now (with a random peer), not an interval later.
      this.counters.exchangesTimedOut++;
      this.#exchange = undefined;
      this.#nextAntiEntropyAt = nowMs;
    }
    this.#expireSeen(nowMs);

    // Push: the queued records to `fanout` random peers.
    if (this.#queue.size > 0 && this.#peers.size > 0) {
      const limit = o.retransmitMult * Math.ceil(Math.log10(this.store.size + 1));
      const peerSet = new Set(this.#peers.keys());
      for (const peer of this.#pickPeers(o.fanout)) {
        const records = this.#queue.take(peer, MAX_RECORDS_PER_MESSAGE, limit, peerSet, MAX_RECORD_HEX_PER_MESSAGE / 2);
        if (records.length === 0) continue;
        this.counters.pushesSent++;
        this.#send(peer, { type: GOSSIP_TYPE.PUSH, records: records.map(hexOf) });
      }
    }

    // Anti-entropy: resume a truncated exchange at once, else one per interval.
    if (!this.#exchange && this.#peers.size > 0) {
      const resume = this.#resumeWith !== undefined && this.#peers.has(this.#resumeWith) ? this.#resumeWith : undefined;
      this.#resumeWith = undefined;
      if (resume) this.#startExchange(resume, nowMs);
      else if (nowMs >= this.#nextAntiEntropyAt) {
        this.#nextAntiEntropyAt = nowMs + this.#jitteredInterval();
        this.#startExchange(this.#pickPeers(1)[0]!, nowMs);
      }
    }

    for (const state of this.#peers.values()) {
      this.#recover(state, nowMs);
      this.#flushWants(state, nowMs);
      this.#report(state, nowMs);
    }
    return this.#flush();
  }

  /** A control message of a gossip type arrived from `peer` (decoded JSON, unchecked). */
  receive(peer: string, value: unknown, nowMs: number): GossipStep {
    const state = this.#peers.get(peer);
    if (!state) return this.#flush();
    this.counters.messagesIn++;
    if (!state.messages.take(nowMs)) {
      this.counters.rateLimited++;
      this.#penalise(state, 'ERR_GOSSIP_RATE_LIMITED', nowMs);
      return this.#flush();
    }
    let message: GossipMessage;
    try {
      message = decodeGossipMessage(value);
    } catch (err) {
      this.#penalise(state, isMcpE2eError(err) ? err.code : 'ERR_GOSSIP_MALFORMED', nowMs);
      return this.#flush();
    }
    switch (message.type) {
      case GOSSIP_TYPE.PUSH:
        if (!state.pushRecords.take(nowMs, message.records.length)) {
          this.counters.rateLimited++;
          this.#penalise(state, 'ERR_GOSSIP_RATE_LIMITED', nowMs);
          break;
        }
        for (const hex of message.records) if (this.#peers.has(peer)) this.#acceptRecord(state, hex, 'push', nowMs);
        break;
      case GOSSIP_TYPE.RECORDS: {
        // Only records of the ids of that want; anything else is refused unread.
        const want = state.wants.get(message.w);
        // An answer to no want of ours is refused whole, at the cost of one refusal.
        if (!want) {
          if (message.records.length > 0) this.#penalise(state, 'ERR_GOSSIP_UNSOLICITED', nowMs);
          break;
        }
        state.wants.delete(message.w);
        if (!want.late) state.outstanding--;
        // A member can make us want any ids (its own gossip_sync lists them) and
        // answer with validly signed records we refuse (expired, from the future,
        // stale), each a signature check costing it no points. A bucket bounds
        // that work: once it is empty, records are dropped unverified (a refusal
        // is known only after the check) and pulled again later, from this peer
        // or another. Stored records take nothing, so catch-up goes on. When the
        // bucket cannot pay for the whole answer, its records are taken from a
        // random one on: in order, a record that comes after refused ones (an
        // answer follows our want's order) would be dropped every time. Dropping
        // is the defence, not a score: a third party can make an honest relayer
        // pass on many records we refuse (issued at the edge of the relayer's
        // clock skew window, they are from the future here when our clock is
        // behind, and refused at every exchange).
        const n = message.records.length;
        const start = n === 0 || state.pullRefusals.has(nowMs, Math.min(n, this.options.pullRefusalBurst)) ? 0 : Math.floor(this.#random() * n);
        let dropped = 0;
        for (let k = 0; k < n; k++) {
          if (!this.#peers.has(peer)) break;
          const hex = message.records[(start + k) % n]!;
          const id = nodeIdOfHex(hex);
          if (id === undefined || !want.ids.delete(id)) this.#penalise(state, 'ERR_GOSSIP_UNSOLICITED', nowMs);
          else if (!state.pullRefusals.has(nowMs)) {
            if (dropped++ === 0) this.#penalise(state, 'ERR_GOSSIP_RATE_LIMITED', nowMs);
            this.counters.pullsDropped++;
            if (!want.late) this.#pending.delete(id);
          } else if (this.#acceptRecord(state, hex, 'pull', nowMs) === 'refused-verified') state.pullRefusals.take(nowMs);
        }
        if (!want.late) for (const id of want.ids) this.#pending.delete(id);
        break;
      }
      case GOSSIP_TYPE.WANT: {
        // Records that would take the answer past the control message limit are
        // left out, as if not held: the asker pulls them again (§14.5).
        const records: string[] = [];
        let hexDigits = 0;
        for (const id of message.ids) {
          const r = this.store.get(id);
          if (!r || r.isExpired(nowMs)) continue;
          const hex = hexOf(r);
          if (hexDigits + hex.length > MAX_RECORD_HEX_PER_MESSAGE) break;
          hexDigits += hex.length;
          records.push(hex);
        }
        this.#send(peer, { type: GOSSIP_TYPE.RECORDS, w: message.w, records });
        break;
      }
      case GOSSIP_TYPE.SYNC:
        this.#onSync(state, message, nowMs);
        break;
    }
    if (this.#peers.has(peer)) this.#flushWants(state, nowMs);
    return this.#flush();
  }

  // -------------------------------------------------------------------------------------------

  #onSync(state: PeerState, message: SyncMessage, nowMs: number): void {
    const fromInitiator = message.n % 2 === 0;
    if (!fromInitiator) {
      // An answer in an exchange we started: it must be the current one.
      const ex = this.#exchange;
      if (!ex || ex.peer !== state.id || ex.x !== message.x) return;
      ex.at = nowMs;
      if (message.ranges.length === 0) return this.#endExchange(nowMs);
    } else if (message.ranges.length === 0) return;
    const answer = answerRanges(this.store, message.ranges);
    this.#queueWants(state, answer.wants, nowMs);
    if (!fromInitiator) this.#exchange!.lacking += answer.wants.length;
    const n = message.n + 1;
    if (answer.ranges.length === 0 && !fromInitiator) return this.#endExchange(nowMs);
    if (n >= MAX_SYNC_ROUNDS) {
      if (!fromInitiator) {
        this.counters.exchangesTruncated++;
        this.#exchange = undefined;
        this.#resumeWith = state.id;
      }
      return;
    }
    this.#send(state.id, { type: GOSSIP_TYPE.SYNC, x: message.x, n, ranges: answer.ranges });
  }

  /**
   * The exchange we started is over. When it found us lacking a full want's
   * worth of records or more, the next one starts at the next round (with
   * a random peer) instead of an interval later: a node that is behind (it
   * just joined, a partition healed) catches up at the pace of round trips,
   * while a node that only misses the few records still on their way keeps
   * the interval.
   */
  #endExchange(nowMs: number): void {
    this.counters.exchangesCompleted++;
    if ((this.#exchange?.lacking ?? 0) >= CATCH_UP_LACKING) this.#nextAntiEntropyAt = Math.min(this.#nextAntiEntropyAt, nowMs + this.options.gossipIntervalMs);
    this.#exchange = undefined;
  }

  #startExchange(peer: string, nowMs: number): void {
    const x = Math.floor(this.#random() * 0x100000000);
    this.#exchange = { peer, x, at: nowMs, lacking: 0 };
    this.counters.exchangesStarted++;
    this.#send(peer, { type: GOSSIP_TYPE.SYNC, x, n: 0, ranges: initialRanges(this.store) });
  }

  #queueWants(state: PeerState, ids: readonly string[], nowMs: number): void {
    for (const id of ids) {
      if (this.#pending.has(id) || id === this.selfId) continue;
      if (state.wantQueue.length >= MAX_WANT_QUEUE) break; // found again by the next exchange
      state.wantQueue.push(id);
      // Pending from now: if this peer's pipeline stalls, another peer may be asked after the timeout.
      this.#pending.set(id, nowMs);
    }
  }

  #flushWants(state: PeerState, nowMs: number): void {
    // Wants lost on the way (a message dropped under backpressure) time out and free their place.
    const timeout = this.options.wantTimeoutMs;
    for (const [w, want] of state.wants) {
      if (!want.late && nowMs - want.at >= timeout) {
        want.late = true;
        state.outstanding--;
        for (const id of want.ids) this.#pending.delete(id);
      }
    }
    while (state.wantQueue.length > 0 && state.outstanding < this.options.maxOutstandingWants && state.wants.size < MAX_REMEMBERED_WANTS) {
      // A timed-out id may have been queued twice; a want never repeats an id (§14.5).
      const ids = [...new Set(state.wantQueue.splice(0, MAX_WANT_IDS))];
      const w = this.#nextWant++ >>> 0;
      state.wants.set(w, { ids: new Set(ids), at: nowMs, late: false });
      state.outstanding++;
      this.counters.wantsSent++;
      this.#send(state.id, { type: GOSSIP_TYPE.WANT, w, ids });
    }
  }

  /**
   * §13.4 and §13.5 for one record from `state`, then store, queue and report it.
   * @returns 'stored'; 'refused-unverified' (refused without a signature check:
   *   a replay of what we hold, or the seen cache); 'refused-verified' (not
   *   stored after one: refused, our own node id, or the store full).
   */
  #acceptRecord(state: PeerState, hex: string, via: 'push' | 'pull', nowMs: number): 'stored' | 'refused-unverified' | 'refused-verified' {
    const id = nodeIdOfHex(hex);
    // Fast path of §13.5: byte for byte the valid record we hold, so nothing to verify.
    const stored = id === undefined ? undefined : this.store.get(id);
    if (stored && !stored.isExpired(nowMs) && hexOf(stored) === hex) {
      this.#queue.seenBy(stored.nodeId, stored.seq, state.id);
      this.#refuse(state, 'ERR_RECORD_REPLAYED', nowMs);
      return 'refused-unverified';
    }
    const seen = this.#seen.get(hex);
    if (seen && seen.until > nowMs) {
      this.#refuse(state, seen.code, nowMs);
      return 'refused-unverified';
    }

    let record: PeerRecord;
    try {
      record = this.#verify(hex, nowMs);
    } catch (err) {
      const code = isMcpE2eError(err) ? err.code : 'ERR_RECORD_MALFORMED';
      // Not cached: a record from the future may be valid a moment later.
      if (code !== 'ERR_RECORD_FROM_FUTURE') this.#remember(hex, code, nowMs);
      this.#refuse(state, code, nowMs);
      return 'refused-verified';
    }
    if (record.nodeId === this.selfId) {
      // Never stored from others: ours is what we publish. A greater or equal seq we did not make
      // (an older instance of us, or a restored key) must be superseded.
      const own = this.store.get(this.selfId);
      if (!own || record.seq >= own.seq) this.#events.push({ type: 'self', seq: record.seq, from: state.id });
      return 'refused-verified';
    }
    const current = this.store.get(record.nodeId);
    const order = compareToStored(current, record);
    if (order !== undefined) {
      if (order !== 'ERR_RECORD_REPLAYED') this.#remember(hex, order, nowMs);
      if (current) this.#queue.seenBy(current.nodeId, record.seq, state.id);
      this.#refuse(state, order, nowMs);
      return 'refused-verified';
    }
    if (!current && this.store.size >= this.options.maxRecords) {
      this.counters.storeFull++;
      return 'refused-verified';
    }
    this.store.put(record);
    this.#pending.delete(record.nodeId);
    this.counters.recordsAccepted++;
    if (via === 'push') this.#queue.add(record, state.id);
    else this.#queue.delete(record.nodeId);
    this.#events.push(isLeaving(record) ? { type: 'left', record, from: state.id } : { type: 'record', record, from: state.id, via });
    return 'stored';
  }

  #refuse(state: PeerState, code: ErrorCode, nowMs: number): void {
    this.counters.recordsRefused++;
    this.counters.refused[code] = (this.counters.refused[code] ?? 0) + 1;
    // A replay is what gossip does all day: not even reported.
    if (code !== 'ERR_RECORD_REPLAYED') this.#penalise(state, code, nowMs);
  }

  #penalise(state: PeerState, code: ErrorCode, nowMs: number): void {
    state.counts[code] = (state.counts[code] ?? 0) + 1;
    this.#recover(state, nowMs);
    state.score -= GOSSIP_PENALTY[code] ?? 0;
    if (state.score <= this.options.cutoffScore) {
      this.#report(state, nowMs, true);
      this.counters.cutoffs++;
      this.#events.push({ type: 'cutoff', peer: state.id, score: state.score, code });
      this.#banned.set(state.id, nowMs + this.options.banMs);
      this.removePeer(state.id);
      // The ban is the punishment: after it the peer starts from a clean score (its buckets kept),
      // or with a long anti-entropy interval its score would outlast the ban and one fault ban it again.
      const departed = this.#departed.get(state.id);
      if (departed) Object.assign(departed, { score: 0, scoreAt: nowMs });
    }
  }

  #recover(state: PeerState, nowMs: number): void {
    const gained = Math.floor(((nowMs - state.scoreAt) / this.options.antiEntropyIntervalMs) * SCORE_RECOVERY);
    if (gained > 0) {
      state.score = Math.min(0, state.score + gained);
      state.scoreAt = nowMs;
    }
  }

  /** One misbehaviour event per peer and `logIntervalMs` (or now, when it is cut off). */
  #report(state: PeerState, nowMs: number, force = false): void {
    if (Object.keys(state.counts).length === 0) return;
    if (!force && nowMs - state.lastLogAt < this.options.logIntervalMs) return;
    this.#events.push({ type: 'misbehaviour', peer: state.id, counts: state.counts, score: state.score });
    state.counts = {};
    state.lastLogAt = nowMs;
  }

  #remember(hex: string, code: ErrorCode, nowMs: number): void {
    if (this.#seen.has(hex)) return;
    this.#seen.set(hex, { code, until: nowMs + this.options.seenTtlMs });
    this.#seenDigits += hex.length;
    for (const [k] of this.#seen) {
      if (this.#seenDigits <= this.options.seenCacheDigits) break;
      this.#seen.delete(k);
      this.#seenDigits -= k.length;
    }
  }

  #expireSeen(nowMs: number): void {
    for (const [k, v] of this.#seen) {
      if (v.until > nowMs) break; // oldest first, and every entry lives seenTtlMs
      this.#seen.delete(k);
      this.#seenDigits -= k.length;
    }
  }

  /** Up to `n` distinct random peers. */
  #pickPeers(n: number): string[] {
    const all = [...this.#peers.keys()];
    for (let i = 0; i < Math.min(n, all.length); i++) {
      const j = i + Math.floor(this.#random() * (all.length - i));
      [all[i], all[j]] = [all[j]!, all[i]!];
    }
    return all.slice(0, n);
  }

  #jitteredInterval(): number {
    return this.options.antiEntropyIntervalMs * (0.75 + 0.5 * this.#random());
  }

  #send(peer: string, message: GossipMessage): void {
    this.counters.messagesOut++;
    this.#out.push({ peer, message });
  }

  #flush(): GossipStep {
    const step = { send: this.#out, events: this.#events };
    this.#out = [];
    this.#events = [];
    return step;
  }
}

const hexes = new WeakMap<PeerRecord, string>();

/** A record as lowercase hex, computed once per record object. */
export function hexOf(record: PeerRecord): string {
  let h = hexes.get(record);
  if (h === undefined) {
    h = record.toHex();
    hexes.set(record, h);
  }
  return h;
}

/**
 * The node id a record in hex states (§13.2: bytes 33..64), or undefined
 * when it is too short. Unverified and unchecked: it is only looked up
 * (a string that is not hex finds nothing) before the record is verified.
 */
export function nodeIdOfHex(hex: string): string | undefined {
  return hex.length < 130 ? undefined : hex.slice(66, 130);
}
