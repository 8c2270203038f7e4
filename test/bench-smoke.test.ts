/**
 * Keeps the benchmark suite (bench/, issue 5) from rotting: runs
 * `node dist/bench/run.js --quick` in a child process and checks that it
 * prints the Markdown tables and writes the JSON results, with every mode
 * measured. Skipped, with a message, until src/transport exists; from then
 * on the encrypted modes are required (`--require-encrypted`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const RUN_JS = fileURLToPath(new URL('../bench/run.js', import.meta.url));
const TRANSPORT_DIR = fileURLToPath(new URL('../../src/transport/', import.meta.url));
const CHILD_TIMEOUT_MS = 240_000;
const ENCRYPTED = ['e2e-json-signed', 'e2e-json', 'e2e-binary-signed', 'e2e-binary'];
const haveOpenssl = spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0;

const skip = existsSync(TRANSPORT_DIR) ? false : 'src/transport does not exist yet: the encrypted modes cannot be benchmarked (bench smoke test skipped)';

test('bench --quick prints the tables and writes the JSON results for every mode', { skip, timeout: CHILD_TIMEOUT_MS + 30_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-e2e-bench-smoke-'));
  const out = join(dir, 'results.json');
  try {
    const child = spawn(process.execPath, [RUN_JS, '--quick', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_TIMEOUT_MS);
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    clearTimeout(timer);
    assert.equal(code, 0, `bench exited with ${code}\n--- stderr ---\n${stderr}\n--- stdout ---\n${stdout}`);

    for (const heading of ['## 1. Connection setup', '## 2. Round trip', '## 3. Pipelined throughput', '## 4. Server memory', '## 5. Seal / open', '## 6. SDK level', '## Goals']) {
      assert.ok(stdout.includes(heading), `missing "${heading}" in the output`);
    }
    assert.match(stdout, /^\| mode \| p50 \| × ws \| × wss \|/m, 'connection table header');
    assert.match(stdout, /\*\*(met|missed)\*\*/, 'target verdicts');

    const json = JSON.parse(readFileSync(out, 'utf8'));
    assert.equal(typeof json.machine.cpuModel, 'string');
    assert.equal(typeof json.machine.openssl, 'string');
    assert.equal(json.machine.node, process.version);
    assert.deepEqual(json.errors, []);
    const modes = ['ws', ...(haveOpenssl ? ['wss'] : []), ...ENCRYPTED];
    for (const m of modes) {
      assert.ok(json.results.connect[m]?.p50.median > 0, `connect p50 of ${m}`);
      assert.ok(json.results.burst[m]?.connPerSec.median > 0, `connections/s of ${m}`);
      assert.ok(Number.isFinite(json.results.memory[m]?.rssKiBPerConn.median), `memory of ${m}`);
      for (const size of ['100 B', '1 KB', '64 KB', '1 MB']) {
        assert.ok(json.results.rtt[size][m]?.p50.median > 0, `round trip ${size} of ${m}`);
        assert.ok(json.results.throughput[size][m]?.msgPerSec.median > 0, `throughput ${size} of ${m}`);
      }
    }
    assert.equal(Object.keys(json.results.micro).length, 4, 'seal/open for all four framings');
    assert.equal(Object.keys(json.results.sdk).length, 3, 'SDK-level round trips for every variant');
    const judged = json.targets.filter((t: { verdict: string }) => t.verdict !== 'n/a');
    assert.ok(judged.length >= (haveOpenssl ? 15 : 10), `targets judged: ${judged.length}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bench/signature-cost runs and reports both sessions and the tight loop', { timeout: 120_000 }, () => {
  const r = spawnSync(process.execPath, [fileURLToPath(new URL('../bench/signature-cost.js', import.meta.url)), '--rounds', '200'], { encoding: 'utf8', timeout: 110_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /tight loop: sign [\d.]+ µs, verify [\d.]+ µs/);
  assert.match(r.stdout, /signed p50 [\d.]+ µs .* unsigned p50 [\d.]+ µs .* difference -?[\d.]+ µs/);
});

test('bench/wake-cost runs and reports a row per busy time', { timeout: 120_000 }, () => {
  const r = spawnSync(process.execPath, [fileURLToPath(new URL('../bench/wake-cost.js', import.meta.url)), '--rounds', '100', '--busy', '0,100'], { encoding: 'utf8', timeout: 110_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /\| 0 µs \| [\d.]+ µs \| -?[\d.]+ µs \|/);
  assert.match(r.stdout, /\| 100 µs \| [\d.]+ µs \| -?[\d.]+ µs \|/);
});

test('bench/setup-timeline runs and reports every step of both set-ups', { timeout: 120_000 }, () => {
  const r = spawnSync(process.execPath, [fileURLToPath(new URL('../bench/setup-timeline.js', import.meta.url)), '--connections', '10', '--signatures'], { encoding: 'utf8', timeout: 110_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /encrypted: binary framing, signed/);
  for (const point of ['HTTP 101 received', 'WebSocket open', 'step 1 sent', 'step 2 received', 'step 3 sent', 'connected']) {
    assert.match(r.stdout, new RegExp(`\\| encrypted \\| ${point} \\| \\d+ µs \\| \\d+ µs \\|`), point);
  }
  assert.match(r.stdout, /\| plain ws \| connected \| \d+ µs/);
  assert.doesNotMatch(r.stdout, /\| plain ws \| step/);
});
