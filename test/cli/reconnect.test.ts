/**
 * `mcp-e2e connect --reconnect`: the serve process is killed under a live MCP
 * session and started again on the same port. The relay answers the request
 * that was in flight with a JSON-RPC error, reconnects with a new handshake
 * (a different session id), replays the client's `initialize`, and the same
 * MCP client goes on calling tools, unaware of the swap.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { allowPeer } from '../../src/cli/peers.js';
import { CLI, EVERYTHING, makeHome, startServe, startTcpProxy } from './helpers.js';

/** `connect` with its JSON log lines parsed as they come. */
function startConnect(args: string[]) {
  const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, 'connect', ...args, '--json'], stderr: 'pipe' });
  const entries: Array<Record<string, unknown>> = [];
  const waiters = new Set<{ pred: (e: Record<string, unknown>) => boolean; resolve: () => void }>();
  let partial = '';
  transport.stderr?.on('data', (chunk: Buffer) => {
    partial += chunk.toString();
    const lines = partial.split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      try {
        entries.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        continue;
      }
      for (const w of waiters) if (w.pred(entries.at(-1)!)) (waiters.delete(w), w.resolve());
    }
  });
  const waitFor = (pred: (e: Record<string, unknown>) => boolean, what: string, ms = 20_000) =>
    new Promise<void>((resolve, reject) => {
      if (entries.some(pred)) return resolve();
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}; connect log:\n${entries.map((e) => JSON.stringify(e)).join('\n')}`)), ms);
      waiters.add({ pred, resolve: () => (clearTimeout(timer), resolve()) });
    });
  return { transport, entries, waitFor };
}

/** What connect answers a request lost with the link (LINK_LOST_ERROR_CODE in src/cli/connect.ts, which cannot be imported: it imports the CLI's main). */
const LINK_LOST_ERROR_CODE = -32000;

const text = (r: unknown) => (r as { content: Array<{ text: string }> }).content[0]!.text;

test('connect --reconnect survives a killed serve: in-flight request answered with an error, new handshake, initialize replayed', async () => {
  const server = makeHome();
  const client = makeHome();
  allowPeer(join(server.home, 'allowed_peers'), client.identity.nodeId);
  let serve = await startServe(['--home', server.home], [process.execPath, EVERYTHING]);
  const port = serve.port;
  const c = startConnect([serve.url, '--home', client.home, '--peer', server.identity.nodeId, '--reconnect']);
  const mcp = new Client({ name: 'reconnect-cli-test', version: '1' });
  try {
    await mcp.connect(c.transport);
    assert.equal(text(await mcp.callTool({ name: 'echo', arguments: { message: 'before' } })), 'Echo: before');

    // A long request, then a short one behind it: once the short one is
    // answered, the long one has certainly reached the server.
    const long = mcp.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 60, steps: 1 } }, undefined, { timeout: 120_000 });
    const longOutcome = long.then(
      () => ({ code: 0, message: 'resolved' }),
      (e: { code?: number; message: string }) => ({ code: e.code, message: e.message }),
    );
    assert.equal(text(await mcp.callTool({ name: 'echo', arguments: { message: 'behind' } })), 'Echo: behind');

    await serve.stop('SIGKILL');
    const lost = await longOutcome;
    assert.equal(lost.code, LINK_LOST_ERROR_CODE, lost.message);
    assert.match(lost.message, /connection to the server was lost/);
    await c.waitFor((e) => e.msg === 'connection lost; reconnecting', 'the relay to notice');

    // The server comes back on the same port (same identity, new process).
    serve = await startServe(['--home', server.home, '--port', String(port)], [process.execPath, EVERYTHING]);
    await c.waitFor((e) => /re-initialised/.test(String(e.msg)), 'the MCP session to be re-initialised');

    // The same MCP client carries on, without a new initialize of its own.
    assert.equal(text(await mcp.callTool({ name: 'echo', arguments: { message: 'after' } })), 'Echo: after');
    assert.ok((await mcp.listTools()).tools.some((t) => t.name === 'echo'));

    const connected = c.entries.filter((e) => String(e.msg).startsWith('connected to'));
    assert.equal(connected.length, 2, JSON.stringify(connected));
    const [first, second] = connected.map((e) => e.session as string);
    assert.match(first!, /^[0-9a-f]{32}$/);
    assert.match(second!, /^[0-9a-f]{32}$/);
    assert.notEqual(first, second, 'a new handshake, never the old session');
    assert.equal(connected[1]!.reconnection, 1);
    assert.equal(connected[0]!.node_id, server.identity.nodeId);
    assert.equal(connected[1]!.node_id, server.identity.nodeId);
  } finally {
    await mcp.close();
    await serve.stop();
  }
});

test('connect --reconnect does not retry a refused identity', async () => {
  const server = makeHome();
  const stranger = makeHome();
  const serve = await startServe(['--home', server.home], [process.execPath, EVERYTHING]);
  try {
    const c = startConnect([serve.url, '--home', stranger.home, '--peer', server.identity.nodeId, '--reconnect']);
    const mcp = new Client({ name: 'reconnect-cli-test', version: '1' });
    await assert.rejects(mcp.connect(c.transport));
    await mcp.close();
    await c.waitFor((e) => e.code === 'ERR_PEER_REJECTED', 'the refusal');
    assert.ok(!c.entries.some((e) => e.msg === 'connection lost; reconnecting'), 'no reconnection after a refusal');
  } finally {
    await serve.stop();
  }
});

test('connect notices a link that died silently (keepalive, on by default, --keepalive to tune) and --reconnect brings it back', async () => {
  const server = makeHome();
  const client = makeHome();
  allowPeer(join(server.home, 'allowed_peers'), client.identity.nodeId);
  const serve = await startServe(['--home', server.home], [process.execPath, EVERYTHING]);
  const proxy = await startTcpProxy(serve.port);
  const c = startConnect([`ws://127.0.0.1:${proxy.port}`, '--home', client.home, '--peer', server.identity.nodeId, '--reconnect', '--keepalive', '300']);
  const mcp = new Client({ name: 'keepalive-cli-test', version: '1' });
  try {
    await mcp.connect(c.transport);
    assert.equal(text(await mcp.callTool({ name: 'echo', arguments: { message: 'before' } })), 'Echo: before');
    // Nothing flows and nothing is closed: without pings, nobody would ever know.
    proxy.blackhole();
    await c.waitFor((e) => e.code === 'ERR_IDLE_TIMEOUT', 'the keepalive to declare the link dead', 15_000);
    await c.waitFor((e) => e.msg === 'connection lost; reconnecting', 'the reconnection to start');
    proxy.resume('toClient');
    proxy.resume('toServer');
    await c.waitFor((e) => /re-initialised/.test(String(e.msg)), 'the MCP session to be re-initialised', 30_000);
    assert.equal(text(await mcp.callTool({ name: 'echo', arguments: { message: 'after' } })), 'Echo: after');
  } finally {
    await mcp.close();
    await proxy.close();
    await serve.stop();
  }
});
