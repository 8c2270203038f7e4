/**
 * The benchmark's server process: echo servers for the selected modes on
 * 127.0.0.1, controlled over the IPC channel of `child_process.fork`.
 *
 * Every server does the same work per message: parse the JSON-RPC request,
 * build the reply, serialize and send it. The plaintext servers also
 * check it as our transport does (strict UTF-8, JSON, the JSON-RPC rules of
 * PROTOCOL.md §6.7: decodeJsonRpcMessage) when `validate` is set, because
 * the SDK's own WebSocket transport validates on receive too (with its zod
 * schema, 1.2-3 µs per message against 0.2 for ours).
 *
 * IPC protocol (parent → child): `{ id, cmd: 'stats' | 'gc' | 'exit' }`;
 * replies `{ id, ...ServerStats }`. On start the child sends
 * `{ ready: true, ports, nodeId }` or `{ failed: message }`.
 */
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { TLSSocket } from 'node:tls';
import { WebSocketServer, type WebSocket } from 'ws';
import { decodeJsonRpcMessage } from '../src/transport/json-rpc.js';
import { NodeIdentity } from '../src/identity/identity.js';
import { echoReply } from './payload.js';
import { modeById, type Mode, type ModeId } from './modes.js';
import { startEncryptedEchoServer } from './encrypted.js';
import { startSdkEchoServer } from './sdk.js';

export interface ServerConfig {
  modes: ModeId[];
  certPath?: string;
  keyPath?: string;
  /** Validate incoming plaintext JSON-RPC with the SDK schema (as the SDK's transports do). */
  validate: boolean;
  /** Also start the SDK-level echo server (McpServer over our transports). */
  sdk?: boolean;
}

export interface ServerStats {
  /** User + system CPU of the server process, µs since start. */
  cpuUs: number;
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  /** Socket write requests (each one write or writev) on plain TCP sockets, since start. */
  tcpWrites: number;
  /** Same for TLS sockets (cleartext writes handed to TLS; TLS may coalesce further). */
  tlsWrites: number;
  /** Open connections across all modes. */
  connections: number;
  /** Messages echoed since start. */
  echoed: number;
}

let tcpWrites = 0;
let tlsWrites = 0;
let connections = 0;
let echoed = 0;
const encryptedCounters: Array<{ connections: number; echoed: number }> = [];

// Count socket write requests: each `_writeGeneric` call is one libuv write
// (write or writev) of one or more chunks. Used to see whether a transport
// coalesces the frames of one event-loop turn into one write.
const proto = Socket.prototype as unknown as { _writeGeneric?: (...args: unknown[]) => unknown };
const originalWriteGeneric = proto._writeGeneric;
if (typeof originalWriteGeneric === 'function') {
  proto._writeGeneric = function (this: Socket, ...args: unknown[]) {
    if (this instanceof TLSSocket) tlsWrites++;
    else tcpWrites++;
    return originalWriteGeneric.apply(this, args);
  };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function plaintextEcho(ws: WebSocket, validate: boolean): void {
  connections++;
  ws.on('close', () => connections--);
  ws.on('error', () => {});
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    let msg: unknown;
    try {
      msg = validate ? decodeJsonRpcMessage(data as Buffer) : JSON.parse((data as Buffer).toString('utf8'));
    } catch {
      return;
    }
    const reply = echoReply(msg);
    if (!reply) return;
    echoed++;
    ws.send(JSON.stringify(reply));
  });
}

async function startPlaintext(mode: Mode, config: ServerConfig): Promise<{ port: number; close: () => void }> {
  const port = await freePort();
  if (mode.kind === 'ws') {
    const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
    wss.on('connection', (ws) => plaintextEcho(ws, config.validate));
    await new Promise<void>((resolve, reject) => {
      wss.once('listening', resolve);
      wss.once('error', reject);
    });
    return { port, close: () => wss.close() };
  }
  if (!config.certPath || !config.keyPath) throw new Error('wss needs a certificate');
  const https = createHttpsServer({
    cert: readFileSync(config.certPath),
    key: readFileSync(config.keyPath),
    minVersion: 'TLSv1.3',
  });
  const wss = new WebSocketServer({ server: https, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
  wss.on('connection', (ws) => plaintextEcho(ws, config.validate));
  await new Promise<void>((resolve, reject) => {
    https.once('error', reject);
    https.listen(port, '127.0.0.1', resolve);
  });
  return { port, close: () => { wss.close(); https.close(); } };
}

async function startEncrypted(mode: Mode, identity: NodeIdentity): Promise<{ port: number; close: () => void }> {
  const counters = { connections: 0, echoed: 0 };
  const server = await startEncryptedEchoServer(identity, mode.framing!, mode.signatures!, counters);
  encryptedCounters.push(counters);
  return { port: server.port, close: () => void server.close() };
}

function stats(): ServerStats {
  const cpu = process.cpuUsage();
  const mem = process.memoryUsage();
  return {
    cpuUs: cpu.user + cpu.system,
    rss: mem.rss,
    heapTotal: mem.heapTotal,
    heapUsed: mem.heapUsed,
    external: mem.external,
    arrayBuffers: mem.arrayBuffers,
    tcpWrites,
    tlsWrites,
    connections: connections + encryptedCounters.reduce((n, c) => n + c.connections, 0),
    echoed: echoed + encryptedCounters.reduce((n, c) => n + c.echoed, 0),
  };
}

async function fullGc(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return;
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '{}') as ServerConfig;
  const identity = NodeIdentity.generate();
  const ports: Partial<Record<ModeId, number>> = {};
  const closers: Array<() => void> = [];
  const failures: Partial<Record<ModeId | 'sdk', string>> = {};
  for (const id of config.modes) {
    const mode = modeById(id);
    try {
      const s = mode.kind === 'encrypted' ? await startEncrypted(mode, identity) : await startPlaintext(mode, config);
      ports[id] = s.port;
      closers.push(s.close);
    } catch (err) {
      failures[id] = (err as Error).message;
    }
  }
  let sdkPort: number | undefined;
  if (config.sdk) {
    try {
      const s = await startSdkEchoServer(identity);
      sdkPort = s.port;
      closers.push(() => void s.close());
    } catch (err) {
      failures.sdk = (err as Error).message;
    }
  }
  process.on('message', (raw) => {
    const msg = raw as { id: number; cmd: string };
    void (async () => {
      if (msg.cmd === 'gc') await fullGc();
      if (msg.cmd === 'exit') {
        for (const c of closers) c();
        process.send!({ id: msg.id, ...stats() }, () => process.exit(0));
        return;
      }
      process.send!({ id: msg.id, ...stats() });
    })();
  });
  process.on('disconnect', () => process.exit(0));
  process.send!({ ready: true, ports, sdkPort, nodeId: identity.nodeId, failures });
}

main().catch((err: Error) => {
  process.send?.({ failed: err.stack ?? err.message });
  process.exit(1);
});
