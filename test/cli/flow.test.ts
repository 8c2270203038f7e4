/**
 * The relays under backpressure, as real processes: `serve` with a child
 * that never reads, `connect` with an MCP host that never reads, and a link
 * that stalls (a TCP proxy that stops reading) while one side floods. In
 * each case memory stays bounded, the flooding side is made to wait, and
 * every message arrives: nothing is dropped silently.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { EncryptedWebSocketClientTransport, EncryptedWebSocketServer, NodeIdentity, type EncryptedWebSocketServerTransport } from '../../src/index.js';
import { CLI, eventually, makeHome, nonReadingChildMemory, rssOf, startServe, startTcpProxy } from './helpers.js';
import { deferred, within } from '../transport/helpers.js';

const MiB = 1024 * 1024;
const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));
const note = (i: number) => ({ jsonrpc: '2.0', method: 'notifications/flood', params: { i, pad: 'x'.repeat(MiB) } }) as JSONRPCMessage;

/** Send up to `max` 1 MiB notifications, each awaited; stop at the first that has not gone out after `waitMs`. Returns how many went out. */
async function flood(send: (m: JSONRPCMessage) => Promise<void>, max: number, waitMs = 3000): Promise<number> {
  for (let i = 0; i < max; i++) {
    const out = await Promise.race([send(note(i)).then(() => true), tick(waitMs).then(() => false)]);
    if (!out) return i;
  }
  return max;
}

/** A child that counts the lines it reads (reporting every 40th on stderr) and, with `flood`, writes 120 notifications of 1 MiB. */
const COUNTING_CHILD = `
  let n = 0;
  process.stdin.on('data', (c) => { for (const b of c) if (b === 10 && ++n % 40 === 0) console.error('got ' + n); });
  if (process.argv.includes('flood')) {
    const pad = 'x'.repeat(1 << 20);
    for (let i = 0; i < 120; i++) process.stdout.write(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/flood', params: { i, pad } }) + '\\n');
  }
  console.error('ready');`;

test('serve: a child that never reads its stdin makes the client wait; serve memory stays bounded', async () => {
  const { sent, grownBytes } = await nonReadingChildMemory(1, 256);
  process.stdout.write(`# relay memory (serve, child never reads): ${sent} MiB sent before the client was made to wait, serve RSS +${(grownBytes / MiB).toFixed(1)} MiB\n`);
  assert.ok(sent < 256, 'the client was made to wait');
  assert.ok(grownBytes < 64 * MiB, `serve grew by ${(grownBytes / MiB).toFixed(1)} MiB`);
});

test('connect: an MCP host that never reads stdout makes a flooding server wait; connect memory stays bounded', async () => {
  const serverIdentity = NodeIdentity.generate();
  const conn = deferred<EncryptedWebSocketServerTransport>();
  const server = new EncryptedWebSocketServer({ identity: serverIdentity, allowAnyPeer: true, onConnection: (t) => conn.resolve(t) });
  const { port } = await server.listen(0, '127.0.0.1');
  const client = makeHome();
  const proc = spawn(process.execPath, [CLI, 'connect', `ws://127.0.0.1:${port}`, '--home', client.home, '--peer', serverIdentity.nodeId, '--json'], { stdio: ['pipe', 'pipe', 'pipe'] });
  proc.stdout!.pause(); // the host never reads
  const connected = deferred();
  createInterface({ input: proc.stderr! }).on('line', (l) => /connected to/.test(l) && connected.resolve());
  try {
    const t = await within(conn.promise, 10_000, 'connect to connect');
    await within(connected.promise, 10_000, 'connect to log its connection');
    await t.start();
    const before = rssOf(proc.pid!);
    const sent = await flood((m) => t.send(m), 256);
    await tick(500);
    const grown = rssOf(proc.pid!) - before;
    process.stdout.write(`# relay memory (connect, host never reads): ${sent} MiB sent before the server was made to wait, connect RSS +${(grown / MiB).toFixed(1)} MiB\n`);
    assert.ok(sent < 256, 'the server was made to wait');
    assert.ok(grown < 64 * MiB, `connect grew by ${(grown / MiB).toFixed(1)} MiB`);
  } finally {
    proc.kill('SIGKILL');
    await server.close();
  }
});

test('serve → client over a stalled link: all 120 MiB of a flooding child arrive once the link moves again, none dropped', async () => {
  const server = makeHome();
  const serve = await startServe(['--home', server.home, '--allow-any-peer'], [process.execPath, '-e', COUNTING_CHILD, 'flood']);
  const proxy = await startTcpProxy(serve.port);
  const client = new EncryptedWebSocketClientTransport(`ws://127.0.0.1:${proxy.port}`, { identity: NodeIdentity.generate(), expectedPeer: server.identity.nodeId });
  const seen: number[] = [];
  client.onmessage = (m) => seen.push((m as unknown as { params: { i: number } }).params.i);
  const errors: Error[] = [];
  client.onerror = (e) => errors.push(e);
  try {
    await client.start();
    proxy.stall('toClient');
    await tick(3000); // the child has written everything; serve holds what it cannot send
    proxy.resume('toClient');
    await eventually(() => seen.length === 120 || client.closed, 60_000, 'all 120 messages');
    assert.deepEqual(seen, Array.from({ length: 120 }, (_, i) => i), `received ${seen.length}; errors: ${errors.map((e) => e.message).join('; ')}`);
    assert.ok(!serve.log.some((l) => /ERR_SEND_BUFFER_FULL/.test(l)), 'no send was refused');
  } finally {
    await client.close();
    await proxy.close();
    await serve.stop();
  }
});

test('host → connect → serve over a stalled link: all 120 MiB from the host reach the child, none dropped', async () => {
  const server = makeHome();
  const client = makeHome();
  const serve = await startServe(['--home', server.home, '--allow-any-peer'], [process.execPath, '-e', COUNTING_CHILD]);
  const proxy = await startTcpProxy(serve.port);
  const proc = spawn(process.execPath, [CLI, 'connect', `ws://127.0.0.1:${proxy.port}`, '--home', client.home, '--peer', server.identity.nodeId, '--json', '--verbose'], { stdio: ['pipe', 'ignore', 'pipe'] });
  const log: string[] = [];
  const connected = deferred();
  createInterface({ input: proc.stderr! }).on('line', (l) => (log.push(l), /connected to/.test(l) && connected.resolve()));
  try {
    await within(connected.promise, 10_000, 'connect to connect');
    await serve.waitFor((e) => /\[child\] ready/.test(String(e.msg)));
    proxy.stall('toServer');
    const pad = 'x'.repeat(MiB);
    for (let i = 0; i < 120; i++) proc.stdin!.write(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/flood', params: { i, pad } }) + '\n');
    await tick(3000);
    proxy.resume('toServer');
    await serve.waitFor((e) => /\[child\] got 120/.test(String(e.msg)), 60_000);
    assert.ok(!log.some((l) => /ERR_SEND_BUFFER_FULL|send failed/.test(l)), log.filter((l) => /fail/.test(l)).join('\n'));
  } finally {
    proc.kill('SIGKILL');
    await proxy.close();
    await serve.stop();
  }
});
