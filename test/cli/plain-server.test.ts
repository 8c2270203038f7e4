/**
 * Encrypting `connect` pointed at a plain MCP WebSocket server (issue 10,
 * item 4): one that accepts the upgrade without selecting mcp-e2e.v2, or
 * answers it with HTTP 400 (supergateway at a path other than its own).
 * connect must say so at once, in its log and to the MCP client, with the
 * flag that fixes it, instead of waiting for the handshake timeout (10 s).
 * Real processes: connect as a child, real `ws` servers and supergateway
 * (around server-everything).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { WebSocketServer } from 'ws';
import { RELAY_ERROR_CODE } from '../../src/cli/relay.js';
import { CLI, EVERYTHING, ROOT, makeHome } from './helpers.js';
import { within } from '../transport/helpers.js';

const INITIALIZE = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'plain-server-test', version: '1' } } };

/** `mcp-e2e connect URL`, as an MCP client runs it: what answers its initialize, connect's log and exit code, and how long it took. */
async function connectTo(url: string) {
  const { home } = makeHome();
  const started = Date.now();
  const connect = spawn(process.execPath, [CLI, 'connect', url, '--home', home], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  connect.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = once(connect, 'exit') as Promise<[number | null]>;
  const lines = createInterface({ input: connect.stdout! })[Symbol.asyncIterator]();
  connect.stdin!.write(JSON.stringify(INITIALIZE) + '\n');
  const answer = JSON.parse(String((await within(lines.next(), 30_000, 'the answer to initialize')).value));
  const [code] = await within(exited, 30_000, 'connect to exit');
  return { answer, code, stderr, ms: Date.now() - started };
}

/** What both kinds of server must give: exit 1, one log line, the same line for the MCP client, well before the 10 s handshake timeout. */
function assertSaysAtOnce(r: Awaited<ReturnType<typeof connectTo>>, message: string) {
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.ok(lines[0]!.endsWith(` mcp-e2e: error: ${message} [ERR_SUBPROTOCOL]`), r.stderr);
  assert.deepEqual(r.answer.error, { code: RELAY_ERROR_CODE, message: `mcp-e2e: ${message}` });
  // Process start included; the handshake timeout connect would otherwise wait for is 10 s.
  assert.ok(r.ms < 5000, `connect took ${r.ms} ms`);
}

test('a ws server that accepts the upgrade without a subprotocol: connect says it is a plain MCP server, at once', async () => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: () => false });
  await once(wss, 'listening');
  try {
    const url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/message`;
    const r = await connectTo(url);
    assertSaysAtOnce(r, `${url} is a plain MCP WebSocket server (it did not select the mcp-e2e.v2 subprotocol), or an mcp-e2e server of another protocol version; use --plaintext if you mean it`);
  } finally {
    for (const c of wss.clients) c.terminate();
    await new Promise((r) => wss.close(r));
  }
});

test('supergateway answering the upgrade at / with HTTP 400: connect says it is no mcp-e2e endpoint, at once', async () => {
  const port = await new Promise<number>((resolve) => {
    // A free port for supergateway, which takes only a number.
    const probe = new WebSocketServer({ host: '127.0.0.1', port: 0 }, () => {
      const p = (probe.address() as AddressInfo).port;
      probe.close(() => resolve(p));
    });
  });
  const gateway = spawn(process.execPath, [join(ROOT, 'node_modules/supergateway/dist/index.js'), '--stdio', `node ${EVERYTHING}`, '--outputTransport', 'ws', '--port', String(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    let log = '';
    const listening = new Promise<void>((resolve, reject) => {
      const onData = (d: Buffer) => {
        log += d.toString();
        if (log.includes('Listening on port')) resolve();
      };
      gateway.stdout!.on('data', onData);
      gateway.stderr!.on('data', onData);
      gateway.once('exit', (code) => reject(new Error(`supergateway exited (${code}): ${log}`)));
    });
    await within(listening, 20_000, 'supergateway to listen');
    const r = await connectTo(`ws://127.0.0.1:${port}/`);
    assertSaysAtOnce(
      r,
      `ws://127.0.0.1:${port} is not an mcp-e2e endpoint: it refused the WebSocket upgrade with HTTP 400, as a plain MCP WebSocket server does at a path it does not serve; use --plaintext if you mean it`,
    );
  } finally {
    if (gateway.exitCode === null) {
      const exited = once(gateway, 'exit');
      gateway.kill('SIGTERM');
      await exited;
    }
  }
});
