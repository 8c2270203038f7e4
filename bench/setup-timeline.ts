/**
 * Where the time of one connection set-up goes, step by step, against plain
 * ws (docs/BENCHMARKS.md, "Connections").
 *
 *   node dist/bench/setup-timeline.js [--connections N] [--signatures]
 *
 * The server (a child process) is a plain ws echo server and an encrypted
 * echo server (binary framing); the client (this process) opens and closes N
 * connections to each, one at a time, and notes when the client-side
 * WebSocket emits and sends (ws's own prototype methods are wrapped for
 * that, in this process only): the HTTP 101, `open`, handshake step 1 sent,
 * step 2 received, step 3 sent, and `start()` resolved. Prints the median
 * time of each point from the connect call, and the median of each step.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { WebSocket, WebSocketServer } from 'ws';
import { EncryptedWebSocketClientTransport, EncryptedWebSocketServer, NodeIdentity } from '../src/index.js';
import { ONE_ADDRESS_MANY_CLIENTS } from '../test/transport/helpers.js';
import { quantile } from './stats.js';

const { values } = parseArgs({ options: { server: { type: 'boolean' }, connections: { type: 'string', default: '400' }, signatures: { type: 'boolean', default: false } } });

async function server(signatures: boolean): Promise<void> {
  // Gone with the parent, however it ended: a forgotten echo server would skew the next run.
  process.on('disconnect', () => process.exit(0));
  const identity = NodeIdentity.generate();
  const plain = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  plain.on('connection', (ws) => ws.on('message', (d) => ws.send(d)));
  await new Promise<void>((resolve) => plain.once('listening', resolve));
  const encrypted = new EncryptedWebSocketServer({
    identity,
    allowAnyPeer: true,
    signatures,
    framings: ['binary'],
    limits: { maxConnections: 4096, maxConnectionsPerAddress: 4096, maxConnectionsPerPeer: 4096, ...ONE_ADDRESS_MANY_CLIENTS },
    onConnection: async (t) => {
      t.onerror = () => {};
      t.onmessage = (m) => void t.send(m).catch(() => {});
      await t.start();
    },
  });
  const { port } = await encrypted.listen(0, '127.0.0.1');
  process.send!({ plain: (plain.address() as { port: number }).port, encrypted: port, nodeId: identity.nodeId });
}

type Mark = [string, number];

async function client(n: number, signatures: boolean): Promise<void> {
  const child = fork(fileURLToPath(import.meta.url), ['--server', ...(signatures ? ['--signatures'] : [])]);
  const ports = (await new Promise((resolve) => child.once('message', resolve))) as { plain: number; encrypted: number; nodeId: string };
  const marks: Mark[] = [];
  let t0 = 0n;
  const mark = (what: string) => marks.push([what, Number(process.hrtime.bigint() - t0) / 1000]);
  const proto = WebSocket.prototype as unknown as { emit(ev: string, ...a: unknown[]): boolean; send(...a: unknown[]): void };
  const emit = proto.emit;
  const send = proto.send;
  let sent = 0;
  let received = 0;
  proto.emit = function (this: unknown, ev: string, ...a: unknown[]) {
    if (ev === 'upgrade') mark('HTTP 101 received');
    else if (ev === 'open') mark('WebSocket open');
    else if (ev === 'message' && received++ === 0) mark('step 2 received');
    return emit.call(this, ev, ...a);
  };
  proto.send = function (this: unknown, ...a: unknown[]) {
    const k = sent++;
    if (k < 2) mark(k === 0 ? 'step 1 sent' : 'step 3 sent');
    return send.apply(this, a);
  };
  const identity = NodeIdentity.generate();
  const runs: Record<'plain' | 'encrypted', Mark[][]> = { plain: [], encrypted: [] };
  const warmup = Math.max(20, Math.floor(n / 10));
  for (let i = 0; i < n + warmup; i++) {
    for (const kind of ['plain', 'encrypted'] as const) {
      marks.length = 0;
      sent = 0;
      received = 0;
      t0 = process.hrtime.bigint();
      if (kind === 'plain') {
        const ws = new WebSocket(`ws://127.0.0.1:${ports.plain}`, { perMessageDeflate: false });
        await new Promise((resolve) => ws.once('open', resolve));
        mark('connected');
        ws.close();
        await new Promise((resolve) => ws.once('close', resolve));
      } else {
        const t = new EncryptedWebSocketClientTransport(`ws://127.0.0.1:${ports.encrypted}`, { identity, expectedPeer: ports.nodeId, signatures, framings: ['binary'] });
        t.onerror = () => {};
        await t.start();
        mark('connected');
        if (t.negotiated?.signatures !== signatures) throw new Error('the session did not negotiate the mode asked for');
        await t.close();
      }
      if (i >= warmup) runs[kind].push(marks.filter(([what]) => what !== 'step 1 sent' || kind === 'encrypted').slice(0, marks.findIndex(([w]) => w === 'connected') + 1));
    }
  }
  child.kill();
  console.log(`Node ${process.version}; ${n} connections each, one at a time (after ${warmup} not counted); encrypted: binary framing, ${signatures ? 'signed' : 'unsigned'}`);
  console.log('| connection | point | p50 from connect call | p50 of the step before it |');
  console.log('| --- | --- | --- | --- |');
  for (const kind of ['plain', 'encrypted'] as const) {
    const names = runs[kind][0]!.map(([what]) => what);
    // Rows are by position: every run must have noted the same points in the same order.
    const odd = runs[kind].find((r) => r.map(([what]) => what).join() !== names.join());
    if (odd) throw new Error(`a ${kind} connection noted ${odd.map(([w]) => w).join(', ')}, not ${names.join(', ')}`);
    names.forEach((name, k) => {
      const at = runs[kind].map((r) => r[k]![1]);
      const step = runs[kind].map((r) => r[k]![1] - (k > 0 ? r[k - 1]![1] : 0));
      console.log(`| ${kind === 'plain' ? 'plain ws' : 'encrypted'} | ${name} | ${quantile(at, 0.5).toFixed(0)} µs | ${quantile(step, 0.5).toFixed(0)} µs |`);
    });
  }
}

if (values.server) await server(values.signatures);
else {
  const n = Number(values.connections);
  if (!Number.isInteger(n) || n < 10) throw new RangeError('--connections expects an integer of at least 10');
  await client(n, values.signatures);
}
