/**
 * mcp-e2e benchmark suite (issue 5).
 *
 *   node dist/bench/run.js [--quick] [--reps N] [--modes ws,wss,...]
 *        [--figures connect,rtt,throughput,burst,micro] [--sizes 100B,1KB,64KB,1MB]
 *        [--out FILE] [--profile] [--no-validate]
 *
 * The client is this process; echo servers run in a child process on
 * 127.0.0.1 (one shared server for connect/round trip/throughput, a fresh
 * one per mode and repetition for the burst and memory figures). Every
 * figure is measured for all modes in each repetition, the mode order
 * rotating between repetitions. Prints Markdown to stdout and writes JSON
 * (machine facts, options, per-repetition values, summaries, target
 * verdicts) to bench/results/.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NodeIdentity } from '../src/identity/identity.js';
import { makeSelfSignedCert, type SelfSignedCert } from './cert.js';
import { ServerProcess, connect, withTimeout, type ClientContext } from './clients.js';
import { burstAndMemory, pipelined, Requester, roundTrips, sealOpenCost, sequentialConnects, windowFor, type BurstResult, type ThroughputResult } from './figures.js';
import { machineFacts } from './machine.js';
import { SDK_VARIANTS, sdkRoundTrips } from './sdk.js';
import { MODES, modeById, type Mode, type ModeId } from './modes.js';
import { SIZES, type SizeSpec } from './payload.js';
import { judgeTargets, renderMarkdown, type Results } from './report.js';
import { quantile, summarize } from './stats.js';

const FIGURES = ['connect', 'rtt', 'throughput', 'burst', 'micro', 'sdk'] as const;
type Figure = (typeof FIGURES)[number];

interface Preset {
  reps: number;
  connectCount: number;
  burstCount: number;
  burstConcurrency: number;
  /**
   * Idle connections of the memory figure (the marginal cost is measured
   * over the second half). More than the burst: at 1,000 the growth of the
   * second half (0.8-1.7 MiB for plain ws) was within a few pages of V8's and
   * the allocator's own growth steps, and the ws RSS figure moved 1.0-3.3
   * KiB/conn between repetitions.
   */
  memoryCount: number;
  /** Per size label: [samples, warm-up] per repetition. */
  rtt: Record<string, [number, number]>;
  throughputWarmMs: number;
  throughputMs: number;
  maxWindow: number;
  /** Largest total of request bytes in flight in the pipelined figure (fewer in flight for large messages). */
  windowBytes: number;
  /** Fewest requests in flight in the pipelined figure. */
  minWindow: number;
  /** How long connections idle before the memory reading, ms. */
  idleMs: number;
  /** SDK-level 1 KB tools/call round trips: [samples, warm-up] per variant and repetition. */
  sdk: [number, number];
  /** CPU budget per framing, size and repetition of the seal/open figure, ms. */
  microBudgetMs: number;
  watchdogMs: number;
}

const FULL: Preset = {
  reps: 3,
  connectCount: 100,
  burstCount: 1000,
  burstConcurrency: 100,
  memoryCount: 3000,
  rtt: { '100 B': [1000, 100], '1 KB': [1000, 100], '64 KB': [150, 15], '1 MB': [15, 2] },
  throughputWarmMs: 200,
  throughputMs: 600,
  maxWindow: 64,
  windowBytes: 8 * 2 ** 20,
  minWindow: 4,
  idleMs: 300,
  sdk: [500, 50],
  microBudgetMs: 150,
  watchdogMs: 30 * 60_000,
};

const QUICK: Preset = {
  reps: 1,
  connectCount: 15,
  burstCount: 40,
  burstConcurrency: 20,
  memoryCount: 40,
  rtt: { '100 B': [100, 20], '1 KB': [100, 20], '64 KB': [10, 2], '1 MB': [3, 1] },
  throughputWarmMs: 30,
  throughputMs: 100,
  maxWindow: 32,
  windowBytes: 2 ** 20,
  minWindow: 2,
  idleMs: 50,
  sdk: [60, 10],
  microBudgetMs: 40,
  watchdogMs: 120_000,
};

interface Options {
  quick: boolean;
  preset: Preset;
  modes: Mode[];
  figures: Set<Figure>;
  sizes: SizeSpec[];
  out?: string;
  profile: boolean;
  validate: boolean;
}

function usage(message: string): never {
  process.stderr.write(`${message}\nusage: node dist/bench/run.js [--quick] [--reps N] [--modes ${MODES.map((m) => m.id).join(',')}] [--figures ${FIGURES.join(',')}] [--sizes 100B,1KB,64KB,1MB] [--out FILE] [--profile] [--no-validate]\n`);
  process.exit(64);
}

function parseArgs(argv: string[]): Options {
  const quick = argv.includes('--quick');
  const preset = { ...(quick ? QUICK : FULL) };
  const o: Options = { quick, preset, modes: [...MODES], figures: new Set(FIGURES), sizes: [...SIZES], profile: false, validate: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => argv[++i] ?? usage(`${a} needs a value`);
    switch (a) {
      case '--quick': break;
      case '--reps': {
        const n = Number(value());
        if (!Number.isInteger(n) || n < 1 || n > 50) usage('--reps expects 1..50');
        preset.reps = n;
        break;
      }
      case '--modes': {
        const ids = value().split(',');
        try {
          o.modes = MODES.filter((m) => ids.includes(m.id));
          ids.forEach(modeById);
        } catch (err) {
          usage((err as Error).message);
        }
        break;
      }
      case '--figures': {
        const f = value().split(',');
        for (const x of f) if (!(FIGURES as readonly string[]).includes(x)) usage(`unknown figure "${x}"`);
        o.figures = new Set(f as Figure[]);
        break;
      }
      case '--sizes': {
        const want = value().split(',').map((s) => s.replace(/\s/g, '').toUpperCase());
        o.sizes = SIZES.filter((s) => want.includes(s.label.replace(/\s/g, '').toUpperCase()));
        if (o.sizes.length !== want.length) usage(`unknown size in "${want.join(',')}" (100B,1KB,64KB,1MB)`);
        break;
      }
      case '--out': o.out = value(); break;
      case '--profile': o.profile = true; break;
      case '--no-validate': o.validate = false; break;
      default: usage(`unknown option ${a}`);
    }
  }
  return o;
}

const REPO = resolve(fileURLToPath(new URL('../../', import.meta.url)));
const log = (s: string) => process.stderr.write(`[bench] ${s}\n`);

/** Per-repetition raw values, by figure path. */
class Collector {
  readonly #values = new Map<string, number[]>();
  add(key: string, v: number): void {
    let list = this.#values.get(key);
    if (!list) this.#values.set(key, (list = []));
    list.push(v);
  }
  get(key: string) {
    return summarize(this.#values.get(key) ?? []);
  }
  has(key: string): boolean {
    return this.#values.has(key);
  }
  toJSON(): Record<string, number[]> {
    return Object.fromEntries(this.#values);
  }
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const opt = parseArgs(argv);
  const p = opt.preset;
  const started = Date.now();
  const watchdog = setTimeout(() => {
    log(`watchdog: run exceeded ${p.watchdogMs / 1000} s, aborting`);
    process.exit(2);
  }, p.watchdogMs);
  watchdog.unref();
  const machine = machineFacts();
  const notes: string[] = [];
  const errors: string[] = [];
  const unavailable = new Map<ModeId, string>();

  let cert: SelfSignedCert | undefined;
  if (opt.modes.some((m) => m.kind === 'wss')) {
    try {
      cert = makeSelfSignedCert();
    } catch (err) {
      unavailable.set('wss', `could not make a self-signed certificate with openssl: ${(err as Error).message}`);
      notes.push(`wss skipped: ${unavailable.get('wss')}`);
    }
  }
  const modes = opt.modes.filter((m) => !unavailable.has(m.id));
  const serverModes = modes.map((m) => m.id);
  const profileDir = join(REPO, 'bench', 'results', 'profiles', machine.date.replace(/[:.]/g, '-'));
  const serverArgv = (name: string) => (opt.profile ? ['--cpu-prof', '--cpu-prof-dir', profileDir, '--cpu-prof-name', `${name}.cpuprofile`] : []);
  const serverConfig = (ids: ModeId[]) => ({ modes: ids, certPath: cert?.certPath, keyPath: cert?.keyPath, validate: opt.validate });

  const c = new Collector();
  const ctx: ClientContext = {
    ca: cert?.cert,
    validate: opt.validate,
    identity: NodeIdentity.generate(),
    serverNodeId: '',
  };
  const failed = new Set<ModeId>();
  const fail = (mode: Mode, what: string, err: unknown) => {
    const msg = `${mode.id} ${what}: ${(err as Error)?.message ?? String(err)}`;
    log(`ERROR ${msg}`);
    errors.push(msg);
    failed.add(mode.id);
  };
  const live = (list: Mode[]) => list.filter((m) => !failed.has(m.id));
  const burstRaw: Partial<Record<ModeId, number>> = {};
  const phaseMs: Record<string, number> = {};
  let phaseStart = Date.now();
  const phase = (name: string) => {
    const now = Date.now();
    phaseMs[name] = (phaseMs[name] ?? 0) + (now - phaseStart);
    phaseStart = now;
  };
  const windows: Record<string, number> = {};

  const wantSdk = opt.figures.has('sdk');
  const needShared = (['connect', 'rtt', 'throughput'].some((f) => opt.figures.has(f as Figure)) && modes.length > 0) || wantSdk;
  const shared = needShared ? await ServerProcess.start({ ...serverConfig(serverModes), sdk: wantSdk }, serverArgv('shared-server')) : undefined;
  try {
    if (shared) {
      ctx.serverNodeId = shared.nodeId;
      for (const [id, why] of Object.entries(shared.failures)) {
        if (id === 'sdk') errors.push(`SDK-level server: ${why}`);
        else fail(modeById(id), 'server start', new Error(why));
      }
    }
    if (shared) {
      // Warm-up, not recorded: JIT-compile every mode's paths on both sides
      // so the first mode measured is not penalised.
      log('warm-up');
      for (const mode of live(modes)) {
        try {
          await sequentialConnects([{ mode, port: shared.ports[mode.id]! }], 3, ctx);
          const conn = await connect(mode, shared.ports[mode.id]!, ctx);
          const req = new Requester(conn);
          for (const size of opt.sizes.filter((s) => s.bytes <= (opt.quick ? 1024 : 64 * 1024))) {
            await roundTrips(req, size.bytes, opt.quick ? 20 : 50, 0);
            await pipelined(req, mode, shared, size.bytes, windowFor(size.bytes, p.maxWindow, p.windowBytes, p.minWindow), 0, opt.quick ? 30 : 200);
          }
          await conn.close();
        } catch (err) {
          fail(mode, 'warm-up', err);
        }
      }
    }
    phase('start and warm-up');
    for (let rep = 0; rep < p.reps; rep++) {
      const order = [...modes.slice(rep % modes.length), ...modes.slice(0, rep % modes.length)];
      log(`repetition ${rep + 1}/${p.reps}: ${order.map((m) => m.id).join(', ')}`);

      if (shared && opt.figures.has('connect')) {
        const targets = live(order).map((mode) => ({ mode, port: shared.ports[mode.id]! }));
        try {
          // One warm-up round so lazy initialisation is not in the samples.
          await sequentialConnects(targets, 2, ctx);
          const samples = await sequentialConnects(targets, p.connectCount, ctx);
          for (const [id, s] of samples) {
            c.add(`connect.${id}.p50`, quantile(s, 0.5));
            c.add(`connect.${id}.p99`, quantile(s, 0.99));
          }
        } catch (err) {
          // Find the culprit by trying each mode alone.
          for (const t of targets) {
            try {
              await sequentialConnects([t], 1, ctx);
            } catch (e) {
              fail(t.mode, 'connect', e);
            }
          }
          if (!targets.some((t) => failed.has(t.mode.id))) errors.push(`connect: ${(err as Error).message}`);
        }
        phase('connect');
      }

      if (shared && (opt.figures.has('rtt') || opt.figures.has('throughput'))) {
        const reqs = new Map<ModeId, { req: Requester; close: () => Promise<void> }>();
        for (const mode of live(order)) {
          try {
            const conn = await connect(mode, shared.ports[mode.id]!, ctx);
            reqs.set(mode.id, { req: new Requester(conn), close: () => conn.close() });
          } catch (err) {
            fail(mode, 'connect', err);
          }
        }
        if (opt.figures.has('rtt')) {
          for (const size of opt.sizes) {
            const [count, warm] = p.rtt[size.label]!;
            for (const mode of live(order)) {
              const r = reqs.get(mode.id);
              if (!r) continue;
              try {
                const s = await roundTrips(r.req, size.bytes, count, warm);
                c.add(`rtt.${size.label}.${mode.id}.p50`, quantile(s, 0.5));
                c.add(`rtt.${size.label}.${mode.id}.p99`, quantile(s, 0.99));
              } catch (err) {
                fail(mode, `round trip ${size.label}`, err);
              }
            }
          }
          phase('rtt');
        }
        if (opt.figures.has('throughput')) {
          for (const size of opt.sizes) {
            const window = windowFor(size.bytes, p.maxWindow, p.windowBytes, p.minWindow);
            windows[size.label] = window;
            for (const mode of live(order)) {
              const r = reqs.get(mode.id);
              if (!r) continue;
              try {
                const t: ThroughputResult = await pipelined(r.req, mode, shared, size.bytes, window, p.throughputWarmMs, p.throughputMs);
                for (const k of ['msgPerSec', 'mibPerSec', 'serverCpuUsPerMsg', 'clientCpuUsPerMsg', 'serverWritesPerMsg'] as const) {
                  c.add(`throughput.${size.label}.${mode.id}.${k}`, t[k]);
                }
              } catch (err) {
                fail(mode, `pipelined ${size.label}`, err);
              }
            }
          }
          phase('throughput');
        }
        for (const r of reqs.values()) await r.close();
      }

      if (shared?.sdkPort !== undefined && wantSdk) {
        const variants = [...SDK_VARIANTS.slice(rep % SDK_VARIANTS.length), ...SDK_VARIANTS.slice(0, rep % SDK_VARIANTS.length)];
        for (const v of variants) {
          try {
            const s = await withTimeout(sdkRoundTrips(shared.sdkPort, v, ctx.identity, shared.nodeId, 1024, p.sdk[0], p.sdk[1]), 120_000, `SDK ${v.id}`);
            c.add(`sdk.${v.id}.p50`, quantile(s, 0.5));
            c.add(`sdk.${v.id}.p99`, quantile(s, 0.99));
          } catch (err) {
            errors.push(`SDK-level ${v.id}: ${(err as Error).message}`);
          }
        }
        phase('sdk');
      }

      if (opt.figures.has('burst')) {
        for (const mode of live(order)) {
          let server: ServerProcess | undefined;
          try {
            server = await ServerProcess.start(serverConfig([mode.id]), serverArgv(`burst-${mode.id}-${rep + 1}`));
            if (server.failures[mode.id]) throw new Error(server.failures[mode.id]);
            const b: BurstResult = await burstAndMemory(mode, server, p.burstCount, p.burstConcurrency, { ...ctx, serverNodeId: server.nodeId }, p.idleMs, p.memoryCount);
            for (const k of ['connPerSec', 'serverCpuUsPerConn', 'rssKiBPerConn', 'heapKiBPerConn', 'rssKiBPerConnFirstHalf'] as const) c.add(`burst.${mode.id}.${k}`, b[k]);
            burstRaw[mode.id] = (burstRaw[mode.id] ?? 0) + b.failed;
            if (b.failed > 0) errors.push(`${mode.id}: ${b.failed} of ${p.memoryCount + p.burstCount} memory and burst connections failed`);
          } catch (err) {
            // One lost repetition of this figure; the mode stays in the run.
            const msg = `${mode.id} burst (repetition ${rep + 1}): ${(err as Error)?.message ?? String(err)}`;
            log(`ERROR ${msg}`);
            errors.push(msg);
          } finally {
            await server?.stop();
          }
        }
        phase('burst+memory');
      }

      if (opt.figures.has('micro')) {
        for (const framing of ['json', 'binary'] as const) {
          for (const signatures of [true, false]) {
            const combo = `${framing}${framing === 'json' ? '-hex' : ''}, ${signatures ? 'signed' : 'unsigned'}`;
            for (const size of opt.sizes) {
              const m = sealOpenCost(framing, signatures, size.bytes, p.microBudgetMs);
              c.add(`micro.${combo}.${size.label}.sealUs`, m.sealUs);
              c.add(`micro.${combo}.${size.label}.openUs`, m.openUs);
            }
          }
        }
        phase('micro');
      }
    }
  } finally {
    await shared?.stop();
    cert?.dispose();
  }

  // Summaries.
  const results: Results = { connect: {}, burst: {}, memory: {}, rtt: {}, throughput: {}, micro: {}, sdk: {} };
  for (const v of SDK_VARIANTS) {
    const p50 = c.get(`sdk.${v.id}.p50`);
    const p99 = c.get(`sdk.${v.id}.p99`);
    if (p50 && p99) results.sdk[v.id] = { label: v.label, p50, p99 };
  }
  for (const mode of modes) {
    const id = mode.id;
    const p50 = c.get(`connect.${id}.p50`);
    const p99 = c.get(`connect.${id}.p99`);
    if (p50 && p99) results.connect[id] = { p50, p99 };
    const cps = c.get(`burst.${id}.connPerSec`);
    const cpu = c.get(`burst.${id}.serverCpuUsPerConn`);
    if (cps && cpu) results.burst[id] = { connPerSec: cps, serverCpuUsPerConn: cpu, failed: burstRaw[id] ?? 0 };
    const rss = c.get(`burst.${id}.rssKiBPerConn`);
    const heap = c.get(`burst.${id}.heapKiBPerConn`);
    const firstHalf = c.get(`burst.${id}.rssKiBPerConnFirstHalf`);
    if (rss && heap) results.memory[id] = { rssKiBPerConn: rss, heapKiBPerConn: heap, ...(firstHalf ? { rssKiBPerConnFirstHalf: firstHalf } : {}) };
    for (const size of opt.sizes) {
      const r50 = c.get(`rtt.${size.label}.${id}.p50`);
      const r99 = c.get(`rtt.${size.label}.${id}.p99`);
      if (r50 && r99) (results.rtt[size.label] ??= {})[id] = { p50: r50, p99: r99 };
      const k = (m: string) => c.get(`throughput.${size.label}.${id}.${m}`);
      const mps = k('msgPerSec');
      if (mps) {
        (results.throughput[size.label] ??= {})[id] = {
          msgPerSec: mps, mibPerSec: k('mibPerSec')!, serverCpuUsPerMsg: k('serverCpuUsPerMsg'), clientCpuUsPerMsg: k('clientCpuUsPerMsg'),
          ...(k('serverWritesPerMsg') ? { serverWritesPerMsg: k('serverWritesPerMsg')! } : {}),
          window: windows[size.label]!,
        };
      }
    }
  }
  for (const framing of ['json-hex', 'binary']) {
    for (const s of ['signed', 'unsigned']) {
      const combo = `${framing}, ${s}`;
      for (const size of opt.sizes) {
        const seal = c.get(`micro.${combo}.${size.label}.sealUs`);
        const open = c.get(`micro.${combo}.${size.label}.openUs`);
        if (seal && open) (results.micro[combo] ??= {})[size.label] = { sealUs: seal, openUs: open };
      }
    }
  }

  // Write coalescing: one socket write per reply means none.
  const uncoalesced: string[] = [];
  for (const [size, per] of Object.entries(results.throughput)) {
    if (size !== '100 B' && size !== '1 KB') continue;
    for (const [id, v] of Object.entries(per)) {
      const w = v.serverWritesPerMsg?.median;
      if (w !== undefined && w >= 0.9 && modeById(id).kind === 'encrypted') uncoalesced.push(`${id} ${size} ${w.toFixed(2)}`);
    }
  }
  if (uncoalesced.length) {
    notes.push(`no write coalescing: with ${windowFor(1024, p.maxWindow, p.windowBytes, p.minWindow)} requests in flight the encrypted server made about one socket write per reply (${uncoalesced.join('; ')}); plain ws does the same, wss coalesces inside TLS; the transport's SendQueue should coalesce (see src/transport/send-queue.ts)`);
  }
  for (const [id, why] of unavailable) if (!notes.some((n) => n.includes(why))) notes.push(`${id} skipped: ${why}`);
  if (errors.length) notes.push(...errors.map((e) => `error: ${e}`));

  const targets = judgeTargets(results, modes);
  const command = `node dist/bench/run.js${argv.length ? ' ' + argv.join(' ') : ''}`;
  const elapsedS = (Date.now() - started) / 1000;
  notes.push(`run took ${elapsedS.toFixed(1)} s (${Object.entries(phaseMs).map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`).join(', ')})`);
  const markdown = renderMarkdown(results, modes, targets, machine, {
    command, reps: p.reps, notes, connectCount: p.connectCount, burstCount: p.burstCount, burstConcurrency: p.burstConcurrency, memoryCount: p.memoryCount,
  });
  process.stdout.write(markdown);

  const outPath = opt.out ? resolve(opt.out) : join(REPO, 'bench', 'results', `bench-${machine.date.replace(/[:.]/g, '-')}${opt.quick ? '-quick' : ''}.json`);
  mkdirSync(dirname(outPath), { recursive: true });
  const json = {
    command,
    machine,
    options: { quick: opt.quick, ...p, modes: opt.modes.map((m) => m.id), figures: [...opt.figures], sizes: opt.sizes.map((s) => s.label), validate: opt.validate },
    modes: opt.modes.map((m) => ({ ...m, available: !unavailable.has(m.id) && !failed.has(m.id), reason: unavailable.get(m.id) })),
    results,
    raw: c.toJSON(),
    targets,
    notes,
    errors,
    elapsedSeconds: elapsedS,
    phaseSeconds: Object.fromEntries(Object.entries(phaseMs).map(([k, v]) => [k, v / 1000])),
  };
  writeFileSync(outPath, JSON.stringify(json, null, 2) + '\n');
  log(`results written to ${relative(process.cwd(), outPath) || outPath}${opt.profile ? `; server CPU profiles in ${relative(process.cwd(), profileDir)}` : ''}`);
  clearTimeout(watchdog);
  process.exitCode = errors.length ? 1 : 0;
}

main().catch((err: Error) => {
  log(`failed: ${err.stack ?? err.message}`);
  process.exit(1);
});
