/**
 * The gossip simulation (issue 13): for N = 100, 1,000, 10,000 simulated
 * nodes running the real gossip engine, the rounds and simulated seconds
 * until a new record reaches 50%, 99% and 100% of the nodes at 0%, 5% and
 * 10% message loss and under churn, the bytes each node sends per minute
 * at rest and while changes flow, and the memory of a node's store.
 *
 *   node dist/bench/gossip/run.js [--quick] [--sizes 100,1000,10000] [--no-write]
 *
 * Prints the table (Markdown) on stdout, progress on stderr, and writes it
 * into docs/GOSSIP-SIMULATION.md between the markers (unless --no-write or
 * --quick). `npm run sim` builds and runs it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createPeerRecord, decodePeerRecord } from '../../src/discovery/record.js';
import { NodeIdentity } from '../../src/identity/identity.js';
import { DEFAULT_GOSSIP, GossipEngine } from '../../src/discovery/gossip/engine.js';
import { MemoryGossipStore } from '../../src/discovery/gossip/store.js';
import { machineFacts } from '../machine.js';
import { SIM_START_MS, Simulation, type SimOptions } from './sim.js';

export interface Preset {
  sizes: number[];
  trials: number;
  warmMs: number;
  restMs: number;
  /** Simulated time with changes flowing (churn and refreshes), ms. */
  churnMs: number;
  /** The same at 10,000 nodes and more: its cost grows with N^2 (N/1800 records a second, each to N nodes), ms. */
  churnMsLarge: number;
  maxRounds: number;
}

const FULL: Preset = { sizes: [100, 1000, 10_000], trials: 3, warmMs: 12_000, restMs: 60_000, churnMs: 60_000, churnMsLarge: 20_000, maxRounds: 60 };
const QUICK: Preset = { sizes: [100, 1000], trials: 1, warmMs: 10_000, restMs: 20_000, churnMs: 30_000, churnMsLarge: 20_000, maxRounds: 60 };
const LOSSES = [0, 0.05, 0.1];
const CHURN_LOSS = 0.05;
/** Share of nodes leaving (and as many joining) per minute under churn. */
const CHURN_PER_MINUTE = 0.01;
const MESH_TARGET = 6;
const MESH_MAX = 12;

export interface Reach {
  /** Rounds (gossip intervals) until 50%, 99%, 100% of the nodes held the record; undefined: not within maxRounds. */
  r50: number | undefined;
  r99: number | undefined;
  r100: number | undefined;
}

export interface SizeResult {
  nodes: number;
  setupSeconds: number;
  wallSeconds: number;
  rest: { bytesPerNodePerMinute: number; bytesPerNodePerRound: number; messagesPerNodePerMinute: number; syncBytesPerExchange: number };
  reach: Array<{ loss: number; churn: boolean; trials: Reach[] }>;
  changes: { bytesPerNodePerMinute: number; recordsPublishedPerMinute: number; joins: number; leaves: number; seconds: number; bytesByType: Record<string, number> };
  /** Joined nodes still alive that had 15 s or more: seconds until each held 99% of the records (undefined: not yet). */
  catchUp: { eligible: number; seconds: Array<number | undefined>; heldAtEnd: number[] };
  verifications: number;
  verifierLookups: number;
  cutoffs: number;
  misbehaviour: number;
}

const log = (s: string) => process.stderr.write(`${s}\n`);

/** Publish a new record from a random node, run until every node alive throughout has it. */
function measureReach(sim: Simulation, maxRounds: number, during?: () => void): Reach {
  const live = sim.alive();
  const origin = live[Math.floor(sim.random() * live.length)]!.index;
  const start = sim.clock.now;
  const reached = new Map<number, number>();
  let target: { nodeId: string; seq: number } | undefined;
  sim.onRecord = (node, record, at) => {
    if (target && record.nodeId === target.nodeId && record.seq >= target.seq && !reached.has(node)) reached.set(node, at);
  };
  const r = sim.publish(origin);
  target = { nodeId: r.nodeId, seq: r.seq };
  reached.set(origin, start);
  const watched = live.map((n) => n.index);
  for (let round = 0; round < maxRounds; round++) {
    sim.runFor(sim.interval);
    during?.();
    const still = watched.filter((i) => sim.nodes[i]!.alive);
    if (still.every((i) => reached.has(i))) break;
  }
  sim.onRecord = undefined;
  const still = watched.filter((i) => sim.nodes[i]!.alive);
  const times = still.map((i) => reached.get(i)).filter((t): t is number => t !== undefined).sort((a, b) => a - b);
  const at = (q: number): number | undefined => {
    const k = Math.ceil(q * still.length);
    return times.length >= k ? (times[k - 1]! - start) / sim.interval : undefined;
  };
  return { r50: at(0.5), r99: at(0.99), r100: at(1) };
}

function churnStep(sim: Simulation, perRound: number, carry: { acc: number; joins: number; leaves: number }): void {
  carry.acc += perRound;
  while (carry.acc >= 1) {
    carry.acc -= 1;
    const live = sim.alive();
    const leaver = live[Math.floor(sim.random() * live.length)]!;
    sim.leave(leaver.index, sim.random() < 0.5);
    sim.join();
    carry.joins++;
    carry.leaves++;
  }
}

export function runSize(n: number, preset: Preset): SizeResult {
  const wall0 = performance.now();
  const p = { ...preset, churnMs: n >= 10_000 ? preset.churnMsLarge : preset.churnMs };
  const minutes = p.churnMs / 60_000;
  const churnCount = Math.ceil(n * CHURN_PER_MINUTE * minutes) + 2;
  const options: SimOptions = { nodes: n, joiners: churnCount, seed: 13 + n, meshTarget: MESH_TARGET, meshMax: MESH_MAX };
  const sim = new Simulation(options);
  const setupSeconds = (performance.now() - wall0) / 1000;
  log(`N=${n}: set up in ${setupSeconds.toFixed(1)} s`);
  sim.runFor(p.warmMs);

  // At rest: nothing changes; anti-entropy exchanges still run.
  sim.network.resetCounts();
  const ex0 = sim.alive().reduce((s, x) => s + x.engine!.counters.exchangesStarted, 0);
  sim.runFor(p.restMs);
  const live = sim.alive().length;
  const restBytes = sim.network.bytes.reduce((a, b) => a + b, 0);
  const restMessages = sim.network.messages.reduce((a, b) => a + b, 0);
  const exchanges = sim.alive().reduce((s, x) => s + x.engine!.counters.exchangesStarted, 0) - ex0;
  const rest = {
    bytesPerNodePerMinute: restBytes / live / (p.restMs / 60_000),
    bytesPerNodePerRound: restBytes / live / (p.restMs / sim.interval),
    messagesPerNodePerMinute: restMessages / live / (p.restMs / 60_000),
    syncBytesPerExchange: (sim.network.bytesByType.get('gossip_sync') ?? 0) / Math.max(1, exchanges),
  };
  log(`N=${n}: at rest ${rest.bytesPerNodePerMinute.toFixed(0)} B/node/min`);

  const reach: SizeResult['reach'] = [];
  for (const loss of LOSSES) {
    sim.network.loss = loss;
    const trials: Reach[] = [];
    for (let t = 0; t < p.trials; t++) {
      trials.push(measureReach(sim, p.maxRounds));
      sim.runFor(p.warmMs);
    }
    reach.push({ loss, churn: false, trials });
    log(`N=${n}: loss ${loss * 100}%: ${JSON.stringify(trials)}`);
  }

  // Changes flowing: refreshes at the default rate (every record renewed at half its hour) and churn.
  sim.network.loss = CHURN_LOSS;
  sim.network.resetCounts();
  const carry = { acc: 0, joins: 0, leaves: 0 };
  const churnPerRound = (n * CHURN_PER_MINUTE * sim.interval) / 60_000;
  const refreshPerRound = (n * sim.interval) / 1_800_000;
  const refresh = { acc: 0, count: 0 };
  const during = () => {
    churnStep(sim, churnPerRound, carry);
    refresh.acc += refreshPerRound;
    while (refresh.acc >= 1) {
      refresh.acc -= 1;
      const l = sim.alive();
      sim.publish(l[Math.floor(sim.random() * l.length)]!.index);
      refresh.count++;
    }
  };
  const t0 = sim.clock.now;
  // The reach trial starts a third of the way in (at least 5 rounds of churn before it).
  const half = Math.max(5, Math.floor(p.churnMs / 3 / sim.interval));
  for (let i = 0; i < half; i++) {
    sim.runFor(sim.interval);
    during();
  }
  const churnTrial = measureReach(sim, p.maxRounds, during);
  while (sim.clock.now - t0 < p.churnMs) {
    sim.runFor(sim.interval);
    during();
  }
  reach.push({ loss: CHURN_LOSS, churn: true, trials: [churnTrial] });
  const elapsedMin = (sim.clock.now - t0) / 60_000;
  const changeBytes = sim.network.bytes.reduce((a, b) => a + b, 0);
  const changes = {
    bytesPerNodePerMinute: changeBytes / sim.alive().length / elapsedMin,
    recordsPublishedPerMinute: (refresh.count + carry.joins * 2) / elapsedMin,
    joins: carry.joins,
    leaves: carry.leaves,
    seconds: (sim.clock.now - t0) / 1000,
    bytesByType: Object.fromEntries([...sim.network.bytesByType].map(([k, v]) => [k, Math.round(v / sim.alive().length / elapsedMin)])),
  };
  const joined = [...sim.joins].filter(([i, j]) => sim.nodes[i]!.alive && sim.clock.now - j.at >= 15_000);
  const catchUp = {
    eligible: joined.length,
    seconds: joined.map(([, j]) => (j.caughtUpAt === undefined ? undefined : (j.caughtUpAt - j.at) / 1000)),
    heldAtEnd: joined.map(([i]) => sim.nodes[i]!.store!.size / sim.base.size),
  };
  log(`N=${n}: changes ${changes.bytesPerNodePerMinute.toFixed(0)} B/node/min, churn reach ${JSON.stringify(churnTrial)}, catch-up ${JSON.stringify(catchUp)}`);
  return {
    nodes: n,
    setupSeconds,
    wallSeconds: (performance.now() - wall0) / 1000,
    rest,
    reach,
    changes,
    catchUp,
    verifications: sim.verifier.verifications,
    verifierLookups: sim.verifier.lookups,
    cutoffs: sim.cutoffs,
    misbehaviour: sim.misbehaviour,
  };
}

/**
 * Heap and ArrayBuffer bytes of a real node's store (`MemoryGossipStore`, with its prefix
 * sums built) and engine holding `count` distinct records, after a full GC
 * (run with --expose-gc). The records are decoded copies, so their bytes
 * and objects are counted too.
 */
export function storeMemory(count: number): { records: number; heapBytes: number; recordBytes: number } {
  const gc = (globalThis as { gc?: () => void }).gc;
  const made: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const seed = Buffer.alloc(32);
    seed.writeUInt32BE(i, 0);
    seed.write('memory', 4);
    const id = NodeIdentity.fromPrivateKey(seed);
    const r = createPeerRecord(id, { seq: 1, issuedAtMs: SIM_START_MS, expiresAtMs: SIM_START_MS + 3_600_000, addresses: [`ws://10.0.${(i >> 8) & 255}.${i & 255}:8765`], protocolVersions: [1], name: `node-${i}` });
    made.push(Buffer.from(r.bytes));
  }
  gc?.();
  const used = () => {
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };
  const before = used();
  const store = new MemoryGossipStore();
  const engine = new GossipEngine('00'.repeat(32), SIM_START_MS, { store });
  let recordBytes = 0;
  for (const bytes of made) {
    const r = decodePeerRecord(bytes);
    recordBytes += r.bytes.length;
    store.put(r);
  }
  store.summary('');
  gc?.();
  const heapBytes = used() - before;
  if (engine.store.size !== count) throw new Error('store lost records');
  return { records: store.size, heapBytes, recordBytes };
}

function fmt(x: number | undefined, digits = 1): string {
  return x === undefined ? 'not reached' : x.toFixed(digits);
}

function mean(xs: Array<number | undefined>): number | undefined {
  if (xs.some((x) => x === undefined)) return undefined;
  return (xs as number[]).reduce((a, b) => a + b, 0) / xs.length;
}

function max(xs: Array<number | undefined>): number | undefined {
  if (xs.some((x) => x === undefined)) return undefined;
  return Math.max(...(xs as number[]));
}

function catchUpCell(c: SizeResult['catchUp']): string {
  if (c.eligible === 0) return 'no join early enough';
  const done = c.seconds.filter((x): x is number => x !== undefined).sort((a, b) => a - b);
  const held = [...c.heldAtEnd].sort((a, b) => a - b);
  const least = `; the least caught up held ${(100 * held[0]!).toFixed(0)}% at the end`;
  if (done.length === 0) return `0 of ${c.eligible}${least}`;
  const median = done[Math.floor((done.length - 1) / 2)]!;
  return `${median.toFixed(1)} / ${done.at(-1)!.toFixed(1)} (${done.length} of ${c.eligible})${done.length < c.eligible ? least : ''}`;
}

export function renderTable(results: SizeResult[], interval: number): string {
  const lines: string[] = [];
  lines.push('| N | loss | churn | rounds to 50% | rounds to 99% | rounds to 100% (mean / worst) | seconds to 100% (worst) | trials |');
  lines.push('| ---: | ---: | :---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    for (const row of r.reach) {
      const worst = max(row.trials.map((t) => t.r100));
      lines.push(
        `| ${r.nodes.toLocaleString('en-US')} | ${row.loss * 100}% | ${row.churn ? 'yes' : 'no'} | ${fmt(mean(row.trials.map((t) => t.r50)))} | ${fmt(mean(row.trials.map((t) => t.r99)))} | ${fmt(mean(row.trials.map((t) => t.r100)))} / ${fmt(worst)} | ${fmt(worst === undefined ? undefined : (worst * interval) / 1000)} | ${row.trials.length} |`,
      );
    }
  }
  lines.push('');
  lines.push('| N | at rest: bytes / node / minute | at rest: bytes / node / round | at rest: sync bytes / exchange | changes flowing: bytes / node / minute | records published / minute | joins + leaves (simulated seconds) | a joined node holds 99% of the records after (median / worst, s; caught up of joined 15 s before the end) | signature checks run / asked | wall time |');
  lines.push('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    lines.push(
      `| ${r.nodes.toLocaleString('en-US')} | ${Math.round(r.rest.bytesPerNodePerMinute).toLocaleString('en-US')} | ${Math.round(r.rest.bytesPerNodePerRound)} | ${Math.round(r.rest.syncBytesPerExchange)} | ${Math.round(r.changes.bytesPerNodePerMinute).toLocaleString('en-US')} | ${Math.round(r.changes.recordsPublishedPerMinute)} | ${r.changes.joins} + ${r.changes.leaves} (${Math.round(r.changes.seconds)} s) | ${catchUpCell(r.catchUp)} | ${r.verifications.toLocaleString('en-US')} / ${r.verifierLookups.toLocaleString('en-US')} | ${r.wallSeconds.toFixed(0)} s |`,
    );
  }
  return lines.join('\n');
}

export interface Goals {
  reach10k: boolean | undefined;
  restBytes: boolean | undefined;
  lines: string[];
}

export function judge(results: SizeResult[], memory: ReturnType<typeof storeMemory>): Goals {
  const big = results.find((r) => r.nodes === 10_000);
  const lines: string[] = [];
  let reach10k: boolean | undefined;
  let restBytes: boolean | undefined;
  if (big) {
    const worst = max(big.reach.find((r) => r.loss === 0.1 && !r.churn)!.trials.map((t) => t.r100));
    reach10k = worst !== undefined && worst <= 24;
    lines.push(`- A new record reaches all 10,000 nodes within 24 rounds at 10% loss: **${reach10k ? 'met' : 'missed'}** (worst of the trials: ${fmt(worst)} rounds).`);
    const perAntiEntropyRound = (big.rest.bytesPerNodePerMinute * DEFAULT_GOSSIP.antiEntropyIntervalMs) / 60_000;
    restBytes = perAntiEntropyRound <= 2048;
    lines.push(
      `- At rest, reconciliation costs at most about 2 KB per node per round at 10,000 nodes: **${restBytes ? 'met' : 'missed'}** (${Math.round(big.rest.bytesPerNodePerRound)} bytes per node per gossip round of 1 s, ${Math.round(perAntiEntropyRound)} bytes per node per anti-entropy round of 10 s, where each node starts one exchange and answers about one; ${Math.round(big.rest.syncBytesPerExchange)} bytes of sync messages per exchange, framing included).`,
    );
  } else lines.push('- (10,000 nodes not run in this mode: the goals are judged on the full run.)');
  const per = memory.heapBytes / memory.records;
  lines.push(
    `- Per-node memory for ${memory.records.toLocaleString('en-US')} records: ${(memory.heapBytes / 1024 / 1024).toFixed(1)} MiB of heap (${Math.round(per)} bytes per record, of which ${Math.round(memory.recordBytes / memory.records)} are the record itself); capped by \`maxRecords\` = ${DEFAULT_GOSSIP.maxRecords.toLocaleString('en-US')}, so at most about ${((per * DEFAULT_GOSSIP.maxRecords) / 1024 / 1024).toFixed(0)} MiB.`,
  );
  return { reach10k, restBytes, lines };
}

function main(): void {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const preset = { ...(quick ? QUICK : FULL) };
  const sizesArg = args.indexOf('--sizes');
  if (sizesArg >= 0) preset.sizes = args[sizesArg + 1]!.split(',').map(Number);
  const write = !quick && !args.includes('--no-write');
  const wall0 = performance.now();
  // First, in a clean heap: after the 10,000-node run, its buffers are still being freed while this measures.
  const memory = storeMemory(10_000);
  const results = preset.sizes.map((n) => runSize(n, preset));
  const goals = judge(results, memory);
  const table = renderTable(results, DEFAULT_GOSSIP.gossipIntervalMs);
  const facts = machineFacts();
  const body = [
    `Run of ${facts.date} on ${facts.cpuModel} (${facts.cores} cores), Node ${facts.node}, load ${facts.loadAverage1m.toFixed(2)} at start; ${((performance.now() - wall0) / 1000).toFixed(0)} s in all. Command: \`node --expose-gc dist/bench/gossip/run.js${quick ? ' --quick' : ''}\`.`,
    '',
    table,
    '',
    ...goals.lines,
  ].join('\n');
  process.stdout.write(`${body}\n`);
  if (write) {
    const path = fileURLToPath(new URL('../../../docs/GOSSIP-SIMULATION.md', import.meta.url));
    const doc = readFileSync(path, 'utf8');
    const start = '<!-- sim:begin -->';
    const end = '<!-- sim:end -->';
    const a = doc.indexOf(start);
    const b = doc.indexOf(end);
    if (a < 0 || b < a) throw new Error(`${path}: markers ${start} / ${end} not found`);
    writeFileSync(path, `${doc.slice(0, a + start.length)}\n${body}\n${doc.slice(b)}`);
    log(`written into ${path}`);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
