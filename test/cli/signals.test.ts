/**
 * `connect` as a desktop app stops it (issue 10, item 5): the app sends
 * SIGTERM (or SIGINT, or closes our stdin) when it shuts down. connect must
 * then close its encrypted session with the protocol's close (the sealed
 * CLOSE, then close code 1000), so the `serve` on the other side logs a
 * normal close and not "the connection ended without the peer's sealed close
 * (close code 1006)" (ERR_SESSION_TRUNCATED), and exit 0. Real processes: connect
 * as a child of this test, a real serve around the demo MCP server.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { allowPeer } from '../../src/cli/peers.js';
import { CLI, DEMO_SERVER, makeHome, startServe } from './helpers.js';
import { within } from '../transport/helpers.js';

/** Connect through `mcp-e2e connect`, initialise, then stop it with `stop` and return its exit and serve's log. */
async function stopConnect(stop: 'SIGTERM' | 'SIGINT' | 'EOF') {
  const server = makeHome();
  const client = makeHome();
  allowPeer(join(server.home, 'allowed_peers'), client.identity.nodeId);
  const serve = await startServe(['--home', server.home], [process.execPath, DEMO_SERVER]);
  try {
    const connect = spawn(process.execPath, [CLI, 'connect', serve.url, '--home', client.home, '--peer', server.identity.nodeId], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    connect.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = once(connect, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    const lines = createInterface({ input: connect.stdout! })[Symbol.asyncIterator]();
    connect.stdin!.write(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'signals-test', version: '1' } } }) + '\n');
    const answer = JSON.parse(String((await within(lines.next(), 15_000, 'the initialize response')).value));
    assert.ok(answer.result, `initialize failed: ${JSON.stringify(answer)}; connect said: ${stderr}`);
    // The session is up on serve's side too: its server process answered.
    if (stop === 'EOF') connect.stdin!.end();
    else connect.kill(stop);
    const [code, signal] = await within(exited, 10_000, `connect to exit after ${stop}`);
    const closed = await serve.waitFor((e) => /^connection closed/.test(String(e.msg)));
    return { code, signal, stderr, log: serve.log, closed };
  } finally {
    await serve.stop();
  }
}

for (const stop of ['SIGTERM', 'SIGINT', 'EOF'] as const) {
  test(`connect stopped by ${stop}: it closes the session normally and exits 0`, async () => {
    const r = await stopConnect(stop);
    assert.equal(r.signal, null, `connect was killed by ${r.signal}; its log: ${r.stderr}`);
    assert.equal(r.code, 0, r.stderr);
    // A normal close (1000) is no error on serve's side: only "connection closed", no 1006.
    const warnings = r.log.filter((l) => /"level":"(warn|error)"/.test(l));
    assert.deepEqual(warnings, [], `serve logged: ${r.log.join('\n')}`);
    assert.doesNotMatch(r.log.join('\n'), /abnormally|1006|ERR_SESSION_TRUNCATED/);
    assert.match(String(r.closed.msg), /^connection closed/);
  });
}
