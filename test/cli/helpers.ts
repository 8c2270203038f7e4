/** Helpers for CLI tests: run the real `mcp-e2e` program as child processes. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer as createNetServer, connect as connectTcp, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { NodeIdentity } from '../../src/identity/identity.js';
import { EncryptedWebSocketClientTransport } from '../../src/transport/client.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const CLI = join(ROOT, 'dist/src/cli/main.js');
export const DEMO_SERVER = join(ROOT, 'dist/src/demo/demo-server.js');
export const EVERYTHING = join(ROOT, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');

export function tempDir(prefix = 'mcp-e2e-cli-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A home directory with a fresh identity. */
export function makeHome(): { home: string; identity: NodeIdentity } {
  const home = tempDir();
  const identity = NodeIdentity.generate();
  identity.save(join(home, 'identity.json'));
  return { home, identity };
}

export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string } = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...opts.env }, input: opts.input ?? '', timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Run, expect exit 2 and exactly one stderr line; return it without the time a relay's log line starts with. */
export function oneLine(args: string[]): string {
  const r = runCli(args);
  assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}, ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.equal(r.stdout, '', 'nothing on stdout');
  return lines[0]!.replace(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} /, '');
}

/** What the SDK's Client.connect() rejects with when `mcp-e2e connect ...args` is its server. */
export async function connectError(args: string[]): Promise<{ code: number | undefined; message: string }> {
  const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, 'connect', ...args], stderr: 'ignore' });
  const client = new Client({ name: 'mcp-e2e-test', version: '1' });
  try {
    await client.connect(transport);
  } catch (err) {
    return { code: (err as { code?: number }).code, message: (err as Error).message };
  } finally {
    await client.close();
  }
  throw new Error('connected');
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

export interface Serve {
  proc: ChildProcess;
  url: string;
  port: number;
  log: string[];
  /** Resolves with the first log entry matching `pred`. */
  waitFor(pred: (entry: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface ServeOptions {
  /** Readable log lines instead of `--json` (entries are then only parsed for the URL). */
  readable?: boolean;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Give no `--port 0` when `args` has no --port (the port comes from a config file). */
  noPort?: boolean;
}

/** Start `mcp-e2e serve` (`--json` unless `readable`) and wait until it listens. */
export async function startServe(args: string[], command: string[], opts: ServeOptions = {}): Promise<Serve> {
  const proc = spawn(process.execPath, [CLI, 'serve', ...(opts.readable ? [] : ['--json']), ...(args.includes('--port') || opts.noPort ? [] : ['--port', '0']), ...args, '--', ...command], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...opts.env },
    cwd: opts.cwd ?? ROOT,
  });
  const log: string[] = [];
  const entries: Array<Record<string, unknown>> = [];
  const waiters = new Set<{ pred: (e: Record<string, unknown>) => boolean; resolve: (e: Record<string, unknown>) => void }>();
  createInterface({ input: proc.stderr! }).on('line', (line) => {
    log.push(line);
    let e: Record<string, unknown>;
    try {
      e = opts.readable ? { msg: line, ...(/ \(url=(\S+) /.exec(line) ? { url: / \(url=(\S+) /.exec(line)![1] } : {}) } : JSON.parse(line);
    } catch {
      return;
    }
    entries.push(e);
    for (const w of waiters) if (w.pred(e)) (waiters.delete(w), w.resolve(e));
  });
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const waitFor = (pred: (e: Record<string, unknown>) => boolean, timeoutMs = 15_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const hit = entries.find(pred);
      if (hit) return resolve(hit);
      const timer = setTimeout(() => reject(new Error(`timed out waiting for a serve log entry; log:\n${log.join('\n')}`)), timeoutMs);
      waiters.add({ pred, resolve: (e) => (clearTimeout(timer), resolve(e)) });
      void exited.then(() => reject(new Error(`serve exited; log:\n${log.join('\n')}`)));
    });
  const listening = await waitFor((e) => typeof e.url === 'string');
  const url = listening.url as string;
  return {
    proc,
    url,
    port: Number(new URL(url).port),
    log,
    waitFor,
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}

/** True while a process with this pid exists (and is not a zombie). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = spawnSync('ps', ['-o', 'stat=', '-p', String(pid)], { encoding: 'utf8' }).stdout.trim();
  return stat !== '' && !stat.startsWith('Z');
}

/** Wait until `pred` holds, polling (for process exits, which have no event we can subscribe to across processes). */
export async function eventually(pred: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Pids of the processes whose parent is `ppid`. */
export function childPids(ppid: number): number[] {
  const out = spawnSync('ps', ['-o', 'pid=', '--ppid', String(ppid)], { encoding: 'utf8' }).stdout;
  return out.split('\n').map((s) => Number(s.trim())).filter((n) => n > 0);
}

/** Resident set size of a process, bytes (Linux /proc). */
export function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(status);
  if (!kb) throw new Error(`no VmRSS for ${pid}`);
  return Number(kb[1]) * 1024;
}

/**
 * A TCP proxy on 127.0.0.1 in front of `port`, whose link can be stalled in
 * one direction (the proxy stops reading that side: TCP backpressure, as a
 * slow or congested network gives) or blackholed (nothing flows either way
 * and nothing is closed: a link that died silently).
 */
export async function startTcpProxy(port: number) {
  const pairs: Array<{ down: Socket; up: Socket }> = [];
  let downStalled = false;
  let upStalled = false;
  const server = createNetServer((down) => {
    const up = connectTcp(port, '127.0.0.1');
    const pair = { down, up };
    pairs.push(pair);
    for (const s of [down, up]) s.on('error', () => {});
    down.on('close', () => up.destroy());
    up.on('close', () => down.destroy());
    if (!upStalled) down.pipe(up);
    if (!downStalled) up.pipe(down);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const set = (which: 'toClient' | 'toServer', stalled: boolean) => {
    if (which === 'toClient') downStalled = stalled;
    else upStalled = stalled;
    for (const { down, up } of pairs) {
      const [from, to] = which === 'toClient' ? [up, down] : [down, up];
      if (stalled) {
        from.unpipe(to);
        from.pause();
      } else from.pipe(to);
    }
  };
  return {
    port: (server.address() as AddressInfo).port,
    stall: (which: 'toClient' | 'toServer') => set(which, true),
    resume: (which: 'toClient' | 'toServer') => set(which, false),
    /** Nothing flows either way, nothing is closed. */
    blackhole: () => {
      set('toClient', true);
      set('toServer', true);
    },
    close: async () => {
      for (const { down, up } of pairs) (down.destroy(), up.destroy());
      await new Promise((r) => server.close(r));
    },
  };
}

/** Pids of the live (not zombie) processes in process group `pgid`. */
export function groupMembers(pgid: number): number[] {
  const out = spawnSync('ps', ['-eo', 'pid=,pgid=,stat='], { encoding: 'utf8' }).stdout;
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter(([, g, stat]) => Number(g) === pgid && stat !== undefined && !stat.startsWith('Z'))
    .map(([p]) => Number(p));
}

/** The server processes `serve` started (its children, without its watchdog). */
export function serverProcesses(servePid: number): number[] {
  const out = spawnSync('ps', ['-o', 'pid=,args=', '--ppid', String(servePid)], { encoding: 'utf8' }).stdout;
  return out
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.includes("trap '' INT TERM HUP"))
    .map((l) => Number(l.split(/\s+/)[0]));
}

/**
 * `serve` around a child that never reads its stdin; a client sends
 * `messageMiB` MiB notifications, each awaited, until one has not gone out
 * after `waitMs` (the client is made to wait) or `max` went out. Returns how
 * many went out and serve's RSS growth meanwhile (bytes). Shared by
 * test/cli/flow.test.ts and bench/relay-memory.ts.
 */
export async function nonReadingChildMemory(messageMiB: number, max: number, waitMs = 3000): Promise<{ sent: number; grownBytes: number }> {
  const server = makeHome();
  const serve = await startServe(['--home', server.home, '--allow-any-peer'], [process.execPath, '-e', 'setInterval(() => {}, 1000); console.error("ready")']);
  const client = new EncryptedWebSocketClientTransport(serve.url, { identity: NodeIdentity.generate(), expectedPeer: server.identity.nodeId });
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  try {
    await client.start();
    await serve.waitFor((e) => /\[child\] ready/.test(String(e.msg)));
    const before = rssOf(serve.proc.pid!);
    const pad = 'x'.repeat(messageMiB * 1024 * 1024 - 100);
    let sent = 0;
    for (; sent < max; sent++) {
      const message = { jsonrpc: '2.0' as const, method: 'notifications/pad', params: { i: sent, pad } };
      if (!(await Promise.race([client.send(message).then(() => true), sleep(waitMs).then(() => false)]))) break;
    }
    await sleep(500);
    if (client.closed) throw new Error('the connection failed instead of waiting');
    return { sent, grownBytes: rssOf(serve.proc.pid!) - before };
  } finally {
    await client.close().catch(() => {});
    await serve.stop();
  }
}
