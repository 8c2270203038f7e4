/**
 * Peer registry benchmark (issue 11): the operations of src/discovery/registry.ts
 * on a registry file of N peers, N = 1,000 and 10,000.
 *
 *   node dist/bench/registry.js [--quick] [--reps N] [--sizes 1000,10000] [--out FILE]
 *
 * Each peer has a signed record (two addresses, a name, a service: about 250
 * bytes) and one unsigned hint. Figures, medians over the repetitions:
 * - file size, bytes;
 * - load (cold): a fresh process opens the registry and looks one peer up
 *   (what `mcp-e2e connect <id>` pays), measured inside the child from
 *   before the constructor to after the lookup;
 * - load (warm): the constructor in this process;
 * - parse all: `list()` after a load (every entry parsed: `mcp-e2e peers`);
 * - merge-write: one `flush()` with 1 and with 100 changed peers (lock,
 *   re-read, merge, evict, write, fsync, rename);
 * - lookup: `get(nodeId)` of a random known peer, first use (parses its
 *   line) and warm, µs per call; `dialAddresses`, warm;
 * - ingest: `addRecordBytes` of a new record from the network (decode,
 *   Ed25519 verification, store), µs per record.
 * Markdown on stdout, JSON in bench/results/.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NodeIdentity } from '../src/identity/identity.js';
import { createPeerRecord, type PeerRecord } from '../src/discovery/record.js';
import { PeerRegistry } from '../src/discovery/registry.js';
import { machineFacts } from './machine.js';
import { summarize, type Summary } from './stats.js';

const REGISTRY_JS = fileURLToPath(new URL('../src/discovery/registry.js', import.meta.url));

interface Options {
  reps: number;
  sizes: number[];
  out: string | undefined;
}

function parseOptions(argv: string[]): Options {
  const o: Options = { reps: 5, sizes: [1000, 10_000], out: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') {
      o.reps = 2;
      o.sizes = [1000];
    } else if (a === '--reps') o.reps = Number(argv[++i]);
    else if (a === '--sizes') o.sizes = argv[++i]!.split(',').map(Number);
    else if (a === '--out') o.out = argv[++i];
    else throw new Error(`unknown option ${a}`);
  }
  if (!Number.isInteger(o.reps) || o.reps < 1 || o.sizes.some((n) => !Number.isInteger(n) || n < 1)) throw new Error('bad --reps or --sizes');
  return o;
}

function records(n: number, now: number): PeerRecord[] {
  const out: PeerRecord[] = [];
  for (let i = 0; i < n; i++) {
    out.push(
      createPeerRecord(NodeIdentity.generate(), {
        seq: now,
        issuedAtMs: now,
        expiresAtMs: now + 3_600_000,
        addresses: [`ws://10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:8765/mcp`, `wss://node-${i}.example/mcp`],
        protocolVersions: [1],
        name: `node-${i}`,
        service: { name: 'everything', version: '2026.8.31' },
      }),
    );
  }
  return out;
}

const ms = (t0: number) => performance.now() - t0;

interface SizeResult {
  peers: number;
  fileBytes: number;
  loadColdMs: Summary | undefined;
  loadWarmMs: Summary | undefined;
  parseAllMs: Summary | undefined;
  mergeWrite1Ms: Summary | undefined;
  mergeWrite100Ms: Summary | undefined;
  lookupFirstUs: Summary | undefined;
  lookupWarmUs: Summary | undefined;
  dialAddressesUs: Summary | undefined;
  ingestUs: Summary | undefined;
}

function coldLoad(path: string, nodeId: string): number {
  const script = `
    const { PeerRegistry } = await import(${JSON.stringify(REGISTRY_JS)});
    const t0 = performance.now();
    const r = new PeerRegistry({ path: ${JSON.stringify(path)}, flushIntervalMs: 0 });
    if (!r.get(${JSON.stringify(nodeId)})) throw new Error('peer not found');
    process.stdout.write(String(performance.now() - t0));`;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  if (child.status !== 0) throw new Error(`cold load failed: ${child.stderr}`);
  return Number(child.stdout);
}

function measure(n: number, reps: number): SizeResult {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-e2e-bench-registry-'));
  try {
    const path = join(dir, 'peers.json');
    const now = Date.now();
    process.stderr.write(`registry: making ${n} records...\n`);
    const recs = records(n, now);
    const fresh = records(Math.min(200, n), now);
    const setup = new PeerRegistry({ path, flushIntervalMs: 0, maxPeers: n + 1000 });
    for (const r of recs) {
      const o = setup.addRecordBytes(r.bytes, 'gossip');
      if (!o.accepted) throw new Error(o.message);
      setup.addHint(r.nodeId, [`ws://192.168.${(n >> 8) & 255}.${n & 255}:8765`], 'mdns');
    }
    setup.flush();
    const fileBytes = statSync(path).size;
    const ids = recs.map((r) => r.nodeId);
    const pick = () => ids[Math.floor(Math.random() * ids.length)]!;

    const runs: Record<Exclude<keyof SizeResult, 'peers' | 'fileBytes'>, number[]> = {
      loadColdMs: [], loadWarmMs: [], parseAllMs: [], mergeWrite1Ms: [], mergeWrite100Ms: [], lookupFirstUs: [], lookupWarmUs: [], dialAddressesUs: [], ingestUs: [],
    };
    for (let rep = 0; rep < reps; rep++) {
      process.stderr.write(`registry: ${n} peers, repetition ${rep + 1}/${reps}\n`);
      runs.loadColdMs.push(coldLoad(path, pick()));
      let t0 = performance.now();
      const reg = new PeerRegistry({ path, flushIntervalMs: 0, maxPeers: n + 1000 });
      runs.loadWarmMs.push(ms(t0));
      // First use of single lines (each parses its entry), then warm calls.
      const firstIds = Array.from({ length: 200 }, pick);
      t0 = performance.now();
      for (const id of firstIds) reg.get(id);
      runs.lookupFirstUs.push((ms(t0) * 1000) / firstIds.length);
      const warm = Array.from({ length: 2000 }, () => firstIds[Math.floor(Math.random() * firstIds.length)]!);
      t0 = performance.now();
      for (const id of warm) reg.get(id);
      runs.lookupWarmUs.push((ms(t0) * 1000) / warm.length);
      t0 = performance.now();
      for (const id of warm) reg.dialAddresses(id);
      runs.dialAddressesUs.push((ms(t0) * 1000) / warm.length);
      t0 = performance.now();
      reg.list();
      runs.parseAllMs.push(ms(t0));
      reg.addHint(pick(), [`ws://172.16.0.${rep + 1}:1`], 'mdns');
      t0 = performance.now();
      reg.flush();
      runs.mergeWrite1Ms.push(ms(t0));
      for (let i = 0; i < 100; i++) reg.addHint(pick(), [`ws://172.17.${rep}.${i + 1}:1`], 'mdns');
      t0 = performance.now();
      reg.flush();
      runs.mergeWrite100Ms.push(ms(t0));
      // Ingest new records (then forget them again, so every repetition sees N peers).
      const batch = fresh.slice(0, 100);
      t0 = performance.now();
      for (const r of batch) {
        const o = reg.addRecordBytes(r.bytes, 'gossip');
        if (!o.accepted) throw new Error(o.message);
      }
      runs.ingestUs.push((ms(t0) * 1000) / batch.length);
      for (const r of batch) reg.forget(r.nodeId);
      reg.flush();
    }
    return {
      peers: n,
      fileBytes,
      ...(Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, summarize(v)])) as Omit<SizeResult, 'peers' | 'fileBytes'>),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function fmt(s: Summary | undefined, digits = 1): string {
  if (!s) return 'n/a';
  return `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;
}

function markdown(results: SizeResult[], reps: number): string {
  const lines = [
    `## Peer registry (${reps} repetitions; median, min–max)`,
    '',
    `| peers | file | load, cold process (ms) | load, warm (ms) | parse all (ms) | merge-write 1 change (ms) | merge-write 100 changes (ms) | lookup first use (µs) | lookup warm (µs) | dialAddresses (µs) | ingest a new record (µs) |`,
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of results) {
    lines.push(
      `| ${r.peers.toLocaleString('en-US')} | ${(r.fileBytes / 1024).toFixed(0)} KiB | ${fmt(r.loadColdMs)} | ${fmt(r.loadWarmMs)} | ${fmt(r.parseAllMs)} | ${fmt(r.mergeWrite1Ms)} | ${fmt(r.mergeWrite100Ms)} | ${fmt(r.lookupFirstUs)} | ${fmt(r.lookupWarmUs, 2)} | ${fmt(r.dialAddressesUs, 2)} | ${fmt(r.ingestUs, 0)} |`,
    );
  }
  return lines.join('\n') + '\n';
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const machine = machineFacts();
  const results = options.sizes.map((n) => measure(n, options.reps));
  process.stdout.write(markdown(results, options.reps));
  const out = options.out ?? resolve(fileURLToPath(new URL('../../bench/results/', import.meta.url)), `registry-${machine.date.replace(/[:.]/g, '-')}.json`);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify({ machine, options, results }, null, 2) + '\n');
  process.stderr.write(`wrote ${out}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error)?.stack ?? String(err)}\n`);
  process.exitCode = 1;
});
