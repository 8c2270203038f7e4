/**
 * The measurements themselves. Each function measures one figure for one
 * mode (or, for sequential connects, all modes round-robin) and returns raw
 * numbers; run.ts repeats, interleaves and summarises them.
 */
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { NodeIdentity } from '../src/identity/identity.js';
import { Handshake } from '../src/handshake/handshake.js';
import { Session } from '../src/session/session.js';
import type { Framing } from '../src/protocol.js';
import { connect, withTimeout, type BenchConnection, type ClientContext, type ServerProcess } from './clients.js';
import type { Mode } from './modes.js';
import { makeArguments, request } from './payload.js';
import { cpuUs, nowUs } from './stats.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// 1a. Sequential connection setup

/**
 * Open and close `count` connections per mode, one at a time, round-robin
 * over the modes so drift on a shared machine hits all modes alike. Times
 * `new connection → open` (encrypted: until the client transport's start()
 * resolves, i.e. our handshake done on the client side). Returns µs samples.
 */
export async function sequentialConnects(modes: Array<{ mode: Mode; port: number }>, count: number, ctx: ClientContext): Promise<Map<string, number[]>> {
  const samples = new Map<string, number[]>(modes.map((m) => [m.mode.id, []]));
  for (let i = 0; i < count; i++) {
    for (const { mode, port } of modes) {
      const t0 = nowUs();
      const conn = await connect(mode, port, ctx);
      samples.get(mode.id)!.push(nowUs() - t0);
      await conn.close();
    }
  }
  return samples;
}

// ---------------------------------------------------------------------------
// 1b + 4. Connection burst and memory per idle connection (fresh server process)

export interface BurstResult {
  /** Completed connections per second (client side: all `count` open). */
  connPerSec: number;
  /** Server CPU per connection during the burst, µs. */
  serverCpuUsPerConn: number;
  /** Server RSS growth per idle connection, KiB (after a full GC on both sides of the measurement). */
  rssKiBPerConn: number;
  /** Server V8 heap + external growth per idle connection, KiB. */
  heapKiBPerConn: number;
  /** RSS growth per connection over the first half, including one-time growth, KiB. */
  rssKiBPerConnFirstHalf: number;
  failed: number;
}

async function openMany(mode: Mode, port: number, count: number, concurrency: number, ctx: ClientContext): Promise<{ conns: BenchConnection[]; failed: number }> {
  const conns: BenchConnection[] = [];
  let next = 0;
  let failed = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      try {
        conns.push(await connect(mode, port, ctx));
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return { conns, failed };
}

async function closeAll(conns: BenchConnection[]): Promise<void> {
  const chunk = 200;
  for (let i = 0; i < conns.length; i += chunk) await Promise.all(conns.slice(i, i + chunk).map((c) => c.close()));
}

async function settle(server: ServerProcess, expected: number, idleMs: number): Promise<Awaited<ReturnType<ServerProcess['gc']>>> {
  // Let the server finish its side of the last handshakes, then let the connections idle.
  const deadline = Date.now() + 5000;
  while ((await server.stats()).connections < expected && Date.now() < deadline) await sleep(20);
  await sleep(idleMs);
  return server.gc();
}

/**
 * On a server process that serves only this mode, freshly started:
 * 1. memory: open `memoryCount / 2` connections, let them idle, full GC,
 *    read RSS; open as many more, idle, GC, read again. The figure is the
 *    growth of the second half per connection (the marginal cost of an idle
 *    connection with `memoryCount` open): the first half also pays one-time growth
 *    (V8 enlarges its young generation under the handshakes' allocation rate,
 *    malloc arenas grow) that does not scale with connections. The
 *    first-half figure is kept too, for comparison.
 * 2. burst: close them all, then, with the server now warm, open `count`
 *    connections with `concurrency` outstanding and time them.
 */
export async function burstAndMemory(mode: Mode, server: ServerProcess, count: number, concurrency: number, ctx: ClientContext, idleMs = 300, memoryCount = count): Promise<BurstResult> {
  const port = server.ports[mode.id]!;
  const half = Math.max(1, Math.floor(memoryCount / 2));
  const base = await server.gc();
  const first = await openMany(mode, port, half, concurrency, ctx);
  const mid = await settle(server, first.conns.length, idleMs);
  const second = await openMany(mode, port, memoryCount - half, concurrency, ctx);
  const idle = await settle(server, first.conns.length + second.conns.length, idleMs);
  await closeAll([...first.conns, ...second.conns]);
  await sleep(Math.min(100, idleMs));
  const before = await server.gc();
  const t0 = nowUs();
  const { conns, failed } = await openMany(mode, port, count, concurrency, ctx);
  const elapsedUs = nowUs() - t0;
  const after = await server.stats();
  await closeAll(conns);
  const n1 = first.conns.length || 1;
  const n2 = second.conns.length || 1;
  const heap = (m: typeof base) => m.heapUsed + m.external;
  return {
    connPerSec: conns.length / (elapsedUs / 1e6),
    serverCpuUsPerConn: (after.cpuUs - before.cpuUs) / (conns.length || 1),
    rssKiBPerConn: (idle.rss - mid.rss) / 1024 / n2,
    heapKiBPerConn: (heap(idle) - heap(mid)) / 1024 / n2,
    rssKiBPerConnFirstHalf: (mid.rss - base.rss) / 1024 / n1,
    failed: failed + first.failed + second.failed,
  };
}

// ---------------------------------------------------------------------------
// 2 + 3. Round trips and pipelined throughput over one connection

/** Matches replies to requests by id over one connection. Ids stay 5 digits so message sizes stay exact. */
export class Requester {
  readonly #conn: BenchConnection;
  readonly #pending = new Map<number, () => void>();
  #seq = 0;
  onreply: ((id: number) => void) | undefined;

  constructor(conn: BenchConnection) {
    this.#conn = conn;
    conn.onmessage = (m: JSONRPCMessage) => {
      const id = (m as { id?: unknown }).id;
      if (typeof id !== 'number') return;
      const cb = this.#pending.get(id);
      if (cb) {
        this.#pending.delete(id);
        cb();
      }
      this.onreply?.(id);
    };
  }

  nextId(): number {
    this.#seq = (this.#seq + 1) % 90_000;
    return 10_000 + this.#seq;
  }

  send(args: { text: string }): number {
    const id = this.nextId();
    this.#conn.send(request(id, args));
    return id;
  }

  roundTrip(args: { text: string }): Promise<void> {
    return new Promise<void>((resolve) => {
      const id = this.nextId();
      this.#pending.set(id, resolve);
      this.#conn.send(request(id, args));
    });
  }
}

/** `count` sequential round trips (one in flight) after `warmup`; µs samples. */
export async function roundTrips(req: Requester, bytes: number, count: number, warmup: number): Promise<number[]> {
  const args = makeArguments(bytes);
  const run = async () => {
    for (let i = 0; i < warmup; i++) await req.roundTrip(args);
    const samples: number[] = [];
    for (let i = 0; i < count; i++) {
      const t0 = nowUs();
      await req.roundTrip(args);
      samples.push(nowUs() - t0);
    }
    return samples;
  };
  return withTimeout(run(), 120_000, `round trips of ${bytes} bytes`);
}

export interface ThroughputResult {
  msgPerSec: number;
  /** Request JSON bytes per second, MiB (one direction; replies carry the same amount back). */
  mibPerSec: number;
  serverCpuUsPerMsg: number;
  clientCpuUsPerMsg: number;
  /** Server socket write requests per reply on plain TCP sockets (NaN for wss). */
  serverWritesPerMsg: number;
  window: number;
}

/** In-flight window for a message size: `maxWindow`, fewer for large messages (at most `windowBytes` in flight, at least `minWindow` messages). */
export function windowFor(bytes: number, maxWindow: number, windowBytes: number, minWindow = 4): number {
  return Math.max(minWindow, Math.min(maxWindow, Math.floor(windowBytes / bytes)));
}

/**
 * Keep `window` requests in flight. The measurement starts once `warmMs`
 * have passed and the first `window` replies are in (steady state: large
 * messages take a while to fill the pipe), and ends once `measureMs` have
 * passed and at least `window` more replies came; the ramp-up and the drain
 * are not counted. Both boundaries are taken inside a reply handler, so the
 * counts are exact.
 */
export async function pipelined(req: Requester, mode: Mode, server: ServerProcess, bytes: number, window: number, warmMs: number, measureMs: number): Promise<ThroughputResult> {
  const args = makeArguments(bytes);
  let inflight = 0;
  let replies = 0;
  type Snap = { replies: number; clientCpu: number; t: number; server: ReturnType<ServerProcess['stats']> };
  let start: Snap | undefined;
  let end: Snap | undefined;
  const snap = (t: number): Snap => ({ replies, clientCpu: cpuUs(), t, server: server.stats() });
  const t0 = nowUs();
  const done = new Promise<void>((resolve) => {
    req.onreply = () => {
      inflight--;
      replies++;
      if (!end) {
        const t = nowUs();
        if (!start) {
          if (replies >= window && t - t0 >= warmMs * 1000) start = snap(t);
        } else if (replies - start.replies >= window && t - start.t >= measureMs * 1000) {
          end = snap(t);
        }
      }
      if (!end) {
        inflight++;
        req.send(args);
      } else if (inflight === 0) resolve();
    };
  });
  for (let i = 0; i < window; i++) {
    inflight++;
    req.send(args);
  }
  try {
    await withTimeout(done, warmMs + measureMs + 180_000, `pipelined ${bytes} bytes`);
  } finally {
    req.onreply = undefined;
  }
  const s = start!;
  const e = end!;
  const [ss, es] = await Promise.all([s.server, e.server]);
  const n = e.replies - s.replies;
  const msgPerSec = n / ((e.t - s.t) / 1e6);
  const echoed = es.echoed - ss.echoed;
  return {
    msgPerSec,
    mibPerSec: (msgPerSec * bytes) / 2 ** 20,
    serverCpuUsPerMsg: echoed > 0 ? (es.cpuUs - ss.cpuUs) / echoed : NaN,
    clientCpuUsPerMsg: n > 0 ? (e.clientCpu - s.clientCpu) / n : NaN,
    serverWritesPerMsg: mode.kind === 'wss' || echoed === 0 ? NaN : (es.tcpWrites - ss.tcpWrites) / echoed,
    window,
  };
}

// ---------------------------------------------------------------------------
// 5. In-process seal/open cost

/** A connected pair of sessions, handshaken in memory like src/demo.ts. */
export function sessionPair(framing: Framing, signatures: boolean): { client: Session; server: Session } {
  const a = NodeIdentity.generate();
  const b = NodeIdentity.generate();
  const hi = new Handshake('initiator', a, { framings: [framing], signatures });
  const hr = new Handshake('responder', b, { framings: [framing], signatures });
  const m2 = hr.receive(hi.start()).send!;
  const step = hi.receive(m2);
  const done = hr.receive(step.send!).result!;
  const client = new Session(step.result!, a);
  const server = new Session(done, b);
  if (client.framing !== framing || client.signatures !== signatures) throw new Error('negotiated other options than asked');
  return { client, server };
}

export interface MicroResult {
  /** CPU µs per seal (encrypt, sign when negotiated, encode) of one message. */
  sealUs: number;
  /** CPU µs per open (decode, verify, decrypt) of one message. */
  openUs: number;
}

/**
 * Seal messages of `bytes` (JSON text, as a transport hands them over), then
 * open them in order; CPU time per operation. A short warm-up batch sizes
 * the measured batch to about `budgetMs` of CPU (at least 3, at most 20,000
 * messages).
 */
export function sealOpenCost(framing: Framing, signatures: boolean, bytes: number, budgetMs: number): MicroResult & { iterations: number } {
  const text = JSON.stringify(request(12345, makeArguments(bytes)));
  const { client, server } = sessionPair(framing, signatures);
  const batch = (n: number): MicroResult => {
    const frames = new Array<string | Buffer>(n);
    const c0 = cpuUs();
    for (let i = 0; i < n; i++) frames[i] = client.seal(text);
    const c1 = cpuUs();
    for (let i = 0; i < n; i++) server.open(frames[i]!);
    const c2 = cpuUs();
    return { sealUs: (c1 - c0) / n, openUs: (c2 - c1) / n };
  };
  batch(3);
  const probe = batch(Math.max(3, Math.min(200, Math.floor(2 ** 20 / bytes))));
  const iterations = Math.max(3, Math.min(20_000, Math.round((budgetMs * 1000) / Math.max(1, probe.sealUs + probe.openUs))));
  return { ...batch(iterations), iterations };
}
