/**
 * The gossip simulator: N simulated nodes, each running the real
 * `GossipEngine` (src/discovery/gossip/engine.ts) with the real
 * reconciliation, queue, buckets and scores, over the virtual clock and the
 * in-memory network of ./network.ts. What is shared or shortcut, and why the
 * figures are still those of the real code, is in docs/GOSSIP-SIMULATION.md:
 * - records are immutable and shared by reference between simulated nodes;
 * - the signature check of identical bytes runs once and is memoised
 *   (`MemoVerifier`; the clock rules of §13.4 still run at every node);
 * - each node's store is an overlay on one shared base (./overlay-store.ts),
 *   giving the same fingerprints as the real store;
 * - the mesh (who holds a session with whom) is kept by this file the way
 *   the driver keeps it: dial random known peers while below the target.
 */
import { McpE2eError } from '../../src/errors.js';
import { NodeIdentity } from '../../src/identity/identity.js';
import { checkSignature, checkTimes, createPeerRecord, decodePeerRecord, recordBytesFromHex, type PeerRecord } from '../../src/discovery/record.js';
import { GossipEngine, hexOf, type GossipOptions, type GossipStep } from '../../src/discovery/gossip/engine.js';
import { createLeavingRecord, isLeaving } from '../../src/discovery/gossip/leaving.js';
import { Clock, Network, seededRandom } from './network.js';
import { OverlayStore, SharedBase } from './overlay-store.js';

/** The simulation's epoch (any fixed time: records carry absolute times). */
export const SIM_START_MS = 1_800_000_000_000;

/**
 * Verifies each distinct record once with the real verifier and remembers
 * the outcome by its bytes (hex); the clock rules (§13.4 rules 6, 7) run
 * at every call. Returns the one shared object for equal bytes.
 */
export class MemoVerifier {
  readonly #known = new Map<string, PeerRecord | McpE2eError>();
  /** Records made by the simulation, so that a verified copy is the shared object. */
  readonly #made = new Map<string, PeerRecord>();
  /** Real signature verifications run. */
  verifications = 0;
  lookups = 0;

  made(record: PeerRecord): void {
    this.#made.set(hexOf(record), record);
  }

  readonly verify = (hex: string, nowMs: number): PeerRecord => {
    this.lookups++;
    let known = this.#known.get(hex);
    if (known === undefined) {
      this.verifications++;
      try {
        // Rules 1-5 here, once: they do not depend on the clock (rules 6-7 run below, every time).
        const r = decodePeerRecord(recordBytesFromHex(hex));
        checkSignature(r);
        known = this.#made.get(hex) ?? r;
      } catch (err) {
        known = err as McpE2eError;
      }
      this.#known.set(hex, known);
    }
    if (known instanceof Error) throw known;
    checkTimes(known, { nowMs });
    return known;
  };
}

export interface SimOptions {
  nodes: number;
  /** Extra identities for nodes that join later (churn). */
  joiners: number;
  seed: number;
  /** Mesh sessions a node keeps (dials while below). */
  meshTarget: number;
  /** Most mesh sessions a node accepts. */
  meshMax: number;
  gossip?: Partial<GossipOptions>;
}

interface SimNode {
  readonly index: number;
  readonly identity: NodeIdentity;
  engine: GossipEngine | undefined;
  store: OverlayStore | undefined;
  readonly peers: Set<number>;
  dialing: number;
  alive: boolean;
  record: PeerRecord | undefined;
  /** A joined node's bootstrap peers, dialled again while it has no session (as the bootstrap source does). */
  bootstrap: SimNode[];
  /** Milliseconds after each whole interval at which this node ticks. */
  readonly phase: number;
}

/** One simulated mesh. */
export class Simulation {
  readonly clock = new Clock(SIM_START_MS);
  readonly random: () => number;
  readonly network: Network;
  readonly base: SharedBase;
  readonly verifier = new MemoVerifier();
  readonly nodes: SimNode[] = [];
  readonly byId = new Map<string, number>();
  readonly interval: number;
  /** Called for every accepted record: (node index, record, time). */
  onRecord: ((node: number, record: PeerRecord, at: number) => void) | undefined;
  /** Cut-offs and misbehaviour reports seen (none expected: every simulated node is honest). */
  cutoffs = 0;
  misbehaviour = 0;
  /** Nodes that joined: when, and when they first held 99% of the live records (records accepted, ours included). */
  readonly joins = new Map<number, { at: number; caughtUpAt: number | undefined }>();
  #nextJoiner: number;

  constructor(readonly options: SimOptions) {
    this.random = seededRandom(options.seed);
    const total = options.nodes + options.joiners;
    this.network = new Network(this.clock, seededRandom(options.seed + 1), total);
    this.interval = options.gossip?.gossipIntervalMs ?? 1000;
    for (let i = 0; i < total; i++) {
      const seed = Buffer.alloc(32);
      seed.writeUInt32BE(options.seed, 0);
      seed.writeUInt32BE(i, 4);
      const identity = NodeIdentity.fromPrivateKey(seed);
      this.nodes.push({ index: i, identity, engine: undefined, store: undefined, peers: new Set(), dialing: 0, alive: false, record: undefined, bootstrap: [], phase: Math.floor(this.random() * this.interval) });
      this.byId.set(identity.nodeId, i);
    }
    this.base = new SharedBase(this.nodes.map((n) => n.identity.nodeId));
    this.#nextJoiner = options.nodes;
    // The starting mesh at rest: every node holds every record (the shared base, no differences).
    for (let i = 0; i < options.nodes; i++) {
      const n = this.nodes[i]!;
      n.record = this.#makeRecord(n, 1);
      this.base.set(n.identity.nodeId, n.record);
    }
    for (let i = 0; i < options.nodes; i++) this.#start(this.nodes[i]!, false);
    for (let i = 0; i < options.nodes; i++) this.#fillMesh(this.nodes[i]!, true);
  }

  /** Live nodes. */
  alive(): SimNode[] {
    return this.nodes.filter((n) => n.alive);
  }

  runFor(ms: number): void {
    this.clock.runUntil(this.clock.now + ms);
  }

  /** Node `index` makes a new record (seq + 1) and publishes it. Returns it. */
  publish(index: number): PeerRecord {
    const n = this.nodes[index]!;
    const record = this.#makeRecord(n, n.record!.seq + 1);
    this.#publish(n, record);
    return record;
  }

  /** A node joins with an empty store and dials `bootstraps` random live nodes. */
  join(bootstraps = 2): number {
    const n = this.nodes[this.#nextJoiner++];
    if (!n) throw new RangeError('no identities left for joiners');
    n.record = this.#makeRecord(n, 1);
    this.joins.set(n.index, { at: this.clock.now, caughtUpAt: undefined });
    this.#start(n, true);
    this.#publish(n, n.record);
    n.bootstrap = Array.from({ length: bootstraps }, () => this.#randomLive());
    for (const b of n.bootstrap) this.#dial(n, b);
    return n.index;
  }

  /** A node leaves: with a leaving record (clean), or silently. */
  leave(index: number, clean: boolean): void {
    const n = this.nodes[index]!;
    if (!n.alive) return;
    if (clean) {
      this.#publish(n, createLeavingRecord(n.identity, n.record!, this.clock.now));
      // The driver flushes the push before closing: one round.
      this.clock.at(this.clock.now + this.interval + 1, () => this.#stop(n));
    } else this.#stop(n);
  }

  #randomLive(): SimNode {
    for (;;) {
      const n = this.nodes[Math.floor(this.random() * this.nodes.length)]!;
      if (n.alive) return n;
    }
  }

  #makeRecord(n: SimNode, seq: number): PeerRecord {
    const now = this.clock.now;
    const r = createPeerRecord(n.identity, {
      seq,
      issuedAtMs: now,
      expiresAtMs: now + 3_600_000,
      addresses: [`ws://10.${(n.index >> 16) & 255}.${(n.index >> 8) & 255}.${n.index & 255}:8765`],
      protocolVersions: [1],
      name: `node-${n.index}`,
    });
    this.verifier.made(r);
    return r;
  }

  #publish(n: SimNode, record: PeerRecord): void {
    n.record = record;
    // The base holds the latest record of every node; everyone else keeps what it had until told.
    this.base.set(n.identity.nodeId, record);
    this.#handle(n, n.engine!.publish(record));
  }

  #start(n: SimNode, empty: boolean): void {
    n.alive = true;
    n.store = new OverlayStore(this.base, empty);
    n.engine = new GossipEngine(n.identity.nodeId, this.clock.now, {
      store: n.store,
      random: seededRandom(this.options.seed * 7919 + n.index),
      verify: this.verifier.verify,
      options: this.options.gossip,
    });
    const first = Math.ceil((this.clock.now - SIM_START_MS) / this.interval) * this.interval + SIM_START_MS + n.phase;
    const tick = () => {
      if (!n.alive) return;
      this.#handle(n, n.engine!.tick(this.clock.now));
      if (n.store!.standalone) n.store!.maybeRejoin();
      this.#fillMesh(n, false);
      this.clock.at(this.clock.now + this.interval, tick);
    };
    this.clock.at(first, tick);
  }

  #stop(n: SimNode): void {
    n.alive = false;
    for (const p of [...n.peers]) this.#disconnect(n, this.nodes[p]!);
    n.store!.detach();
    n.engine = undefined;
    n.store = undefined;
  }

  /** Dial random nodes whose records we hold, while below the mesh target. */
  #fillMesh(n: SimNode, instant: boolean): void {
    if (n.peers.size === 0 && n.dialing === 0 && n.bootstrap.length > 0) {
      // Bootstrap peers that left are replaced by live ones: a joining node is configured with some that are up.
      n.bootstrap = n.bootstrap.map((b) => (b.alive ? b : this.#randomLive()));
      for (const b of n.bootstrap) this.#dial(n, b);
    }
    let tries = 0;
    while (n.peers.size + n.dialing < this.options.meshTarget && tries++ < 16) {
      const i = Math.floor(this.random() * this.nodes.length);
      const target = this.nodes[i]!;
      if (i === n.index || n.peers.has(i)) continue;
      const r = n.store!.get(target.identity.nodeId);
      if (!r || isLeaving(r)) continue;
      if (instant) this.#connect(n, target, true);
      else this.#dial(n, target);
    }
  }

  #dial(n: SimNode, target: SimNode): void {
    n.dialing++;
    // A handshake: one round trip before the session is up (or the dial fails).
    this.clock.at(this.clock.now + 2 * this.network.latency(), () => {
      n.dialing--;
      if (n.alive) this.#connect(n, target, false);
    });
  }

  #connect(a: SimNode, b: SimNode, setup: boolean): void {
    if (!b.alive || a.peers.has(b.index) || b.peers.size >= this.options.meshMax || (!setup && a.peers.size >= this.options.meshMax)) return;
    a.peers.add(b.index);
    b.peers.add(a.index);
    this.#handle(a, a.engine!.addPeer(b.identity.nodeId, this.clock.now));
    this.#handle(b, b.engine!.addPeer(a.identity.nodeId, this.clock.now));
  }

  #disconnect(a: SimNode, b: SimNode): void {
    a.peers.delete(b.index);
    b.peers.delete(a.index);
    a.engine?.removePeer(b.identity.nodeId);
    b.engine?.removePeer(a.identity.nodeId);
    this.network.closeLink(a.index, b.index);
  }

  #handle(n: SimNode, step: GossipStep): void {
    for (const e of step.events) {
      if (e.type === 'record' || e.type === 'left') {
        this.onRecord?.(n.index, e.record, this.clock.now);
        const j = this.joins.get(n.index);
        if (j && j.caughtUpAt === undefined && n.store!.size >= 0.99 * this.base.size) j.caughtUpAt = this.clock.now;
      }
      else if (e.type === 'cutoff') {
        this.cutoffs++;
        const p = this.byId.get(e.peer);
        if (p !== undefined) this.#disconnect(n, this.nodes[p]!);
      } else if (e.type === 'misbehaviour') this.misbehaviour++;
    }
    for (const o of step.send) {
      const to = this.byId.get(o.peer)!;
      const dst = this.nodes[to]!;
      const open = () => n.alive && dst.alive && n.peers.has(to);
      this.network.send(n.index, to, o.message, open, (value) => this.#handle(dst, dst.engine!.receive(n.identity.nodeId, value, this.clock.now)));
    }
  }
}
