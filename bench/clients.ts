/**
 * The client side of the benchmark: one connection abstraction over the
 * plaintext ws/wss clients and the encrypted client transport, and a handle
 * on the server child process.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { decodeJsonRpcMessage } from '../src/transport/json-rpc.js';
import type { NodeIdentity } from '../src/identity/identity.js';
import type { Mode, ModeId } from './modes.js';
import type { ServerConfig, ServerStats } from './server.js';
import { connectEncrypted as openEncrypted } from './encrypted.js';

/** One open connection: send a JSON-RPC message, get JSON-RPC messages back. */
export interface BenchConnection {
  send(message: JSONRPCMessage): void;
  onmessage: (message: JSONRPCMessage) => void;
  /** Resolves once the connection is closed (or after a short grace period). */
  close(): Promise<void>;
}

export interface ClientContext {
  /** PEM trust anchor for wss. */
  ca?: string;
  /** Validate incoming plaintext JSON-RPC with the SDK schema. */
  validate: boolean;
  identity: NodeIdentity;
  /** The server's node id (for pinning in encrypted modes). */
  serverNodeId: string;
}

export const CONNECT_TIMEOUT_MS = 15_000;

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    }),
  ]);
}

function urlOf(mode: Mode, port: number): string {
  return `${mode.kind === 'wss' ? 'wss' : 'ws'}://127.0.0.1:${port}`;
}

function connectPlaintext(mode: Mode, port: number, ctx: ClientContext): Promise<BenchConnection> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(urlOf(mode, port), 'mcp', {
      perMessageDeflate: false,
      maxPayload: 64 * 1024 * 1024,
      ...(mode.kind === 'wss' ? { ca: ctx.ca } : {}),
    });
    const conn: BenchConnection = {
      send: (m) => ws.send(JSON.stringify(m)),
      onmessage: () => {},
      close: () =>
        new Promise<void>((done) => {
          if (ws.readyState === WebSocket.CLOSED) return done();
          const t = setTimeout(() => { ws.terminate(); done(); }, 2000);
          ws.once('close', () => { clearTimeout(t); done(); });
          ws.close();
        }),
    };
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const msg = ctx.validate ? decodeJsonRpcMessage(data as Buffer) : (JSON.parse((data as Buffer).toString('utf8')) as JSONRPCMessage);
      conn.onmessage(msg);
    });
    ws.once('open', () => resolve(conn));
    ws.once('error', reject);
  });
}

async function connectEncrypted(mode: Mode, port: number, ctx: ClientContext): Promise<BenchConnection> {
  const conn: BenchConnection = {
    send: (m) => void t.send(m).catch(() => {}),
    onmessage: () => {},
    close: () => t.close(),
  };
  const t = await openEncrypted(urlOf(mode, port), ctx.identity, ctx.serverNodeId, mode.framing!, mode.signatures!, (m) => conn.onmessage(m));
  return conn;
}

export function connect(mode: Mode, port: number, ctx: ClientContext): Promise<BenchConnection> {
  const p = mode.kind === 'encrypted' ? connectEncrypted(mode, port, ctx) : connectPlaintext(mode, port, ctx);
  return withTimeout(p, CONNECT_TIMEOUT_MS, `${mode.id} connect`);
}

interface Ready {
  ports: Partial<Record<ModeId, number>>;
  sdkPort?: number;
  nodeId: string;
  failures: Partial<Record<ModeId | 'sdk', string>>;
}

/** A running server child process. */
export class ServerProcess {
  readonly ports: Partial<Record<ModeId, number>>;
  readonly nodeId: string;
  readonly failures: Partial<Record<ModeId | 'sdk', string>>;
  /** Port of the SDK-level echo server, when started with `sdk: true`. */
  readonly sdkPort: number | undefined;
  readonly #child: ChildProcess;
  #nextId = 1;
  readonly #pending = new Map<number, (s: ServerStats) => void>();

  private constructor(child: ChildProcess, ready: Ready) {
    this.#child = child;
    this.ports = ready.ports;
    this.sdkPort = ready.sdkPort;
    this.nodeId = ready.nodeId;
    this.failures = ready.failures;
    child.on('message', (raw) => {
      const msg = raw as ServerStats & { id: number };
      const cb = this.#pending.get(msg.id);
      if (cb) {
        this.#pending.delete(msg.id);
        cb(msg);
      }
    });
  }

  /** Fork `dist/bench/server.js` with `config`; `execArgv` adds Node flags (e.g. --cpu-prof). */
  static async start(config: ServerConfig, execArgv: string[] = []): Promise<ServerProcess> {
    const path = fileURLToPath(new URL('./server.js', import.meta.url));
    const child = fork(path, [JSON.stringify(config)], { execArgv: ['--expose-gc', ...execArgv], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const ready = await withTimeout(
      new Promise<Ready>((resolve, reject) => {
        child.once('message', (raw) => {
          const m = raw as Ready & { ready?: boolean; failed?: string };
          if (m.ready) resolve(m);
          else reject(new Error(`server failed to start: ${m.failed}`));
        });
        child.once('exit', (code) => reject(new Error(`server exited with code ${code} before it was ready`)));
      }),
      30_000,
      'server start',
    );
    return new ServerProcess(child, ready);
  }

  #call(cmd: 'stats' | 'gc' | 'exit'): Promise<ServerStats> {
    const id = this.#nextId++;
    const child = this.#child;
    return withTimeout(
      new Promise<ServerStats>((resolve) => {
        this.#pending.set(id, resolve);
        child.send({ id, cmd });
      }),
      30_000,
      `server ${cmd}`,
    ).catch((err: Error) => {
      this.#pending.delete(id);
      throw new Error(`${err.message} (server pid ${child.pid}, exit code ${child.exitCode}, signal ${child.signalCode}, connected ${child.connected})`);
    });
  }

  stats(): Promise<ServerStats> {
    return this.#call('stats');
  }

  /** Full garbage collection on the server, then its stats. */
  gc(): Promise<ServerStats> {
    return this.#call('gc');
  }

  /** Stop the server and wait for the process to exit (so a CPU profile is written). */
  async stop(): Promise<void> {
    if (this.#child.exitCode !== null) return;
    const exited = new Promise<void>((r) => this.#child.once('exit', () => r()));
    try {
      await this.#call('exit');
    } catch {
      this.#child.kill();
    }
    await withTimeout(exited, 10_000, 'server exit').catch(() => this.#child.kill('SIGKILL'));
  }
}
