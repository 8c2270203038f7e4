/**
 * Revocation takes effect on live sessions: `mcp-e2e peers deny` (or an edit
 * of allowed_peers, even one with a bad line) while a client is connected
 * through `mcp-e2e connect` ends that client's session within 2 s.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { NodeIdentity } from '../../src/identity/identity.js';
import { allowPeer } from '../../src/cli/peers.js';
import { CLI, DEMO_SERVER, makeHome, runCli, startServe } from './helpers.js';

async function connected(url: string, home: string, serverNodeId: string): Promise<Client> {
  const client = new Client({ name: 'revocation-test', version: '1' });
  await client.connect(new StdioClientTransport({ command: process.execPath, args: [CLI, 'connect', url, '--home', home, '--peer', serverNodeId], stderr: 'ignore' }));
  return client;
}

/** Call a tool until a call fails; returns ms from `since` to the failure. */
async function msUntilRefused(client: Client, since: number): Promise<number> {
  for (;;) {
    try {
      await client.callTool({ name: 'echo', arguments: { message: 'still in?' } }, undefined, { timeout: 1000 });
    } catch {
      return Date.now() - since;
    }
    if (Date.now() - since > 10_000) throw new Error('the revoked client is still served after 10 s');
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('peers deny while a client is connected: its next call fails within 2 s', async () => {
  const server = makeHome();
  const client = makeHome();
  allowPeer(join(server.home, 'allowed_peers'), client.identity.nodeId);
  const serve = await startServe(['--home', server.home], [process.execPath, DEMO_SERVER]);
  try {
    const c = await connected(serve.url, client.home, server.identity.nodeId);
    assert.ok((await c.callTool({ name: 'echo', arguments: { message: 'hi' } })).content);
    const denied = runCli(['peers', 'deny', client.identity.nodeId, '--home', server.home]);
    assert.equal(denied.code, 0, denied.stderr);
    const ms = await msUntilRefused(c, Date.now());
    assert.ok(ms < 2000, `the revoked client was cut off after ${ms} ms`);
    const entry = await serve.waitFor((e) => e.code === 'ERR_PEER_REJECTED' && e.node_id === client.identity.nodeId);
    assert.match(String(entry.msg), /not on the allowlist/);
    await c.close();
  } finally {
    await serve.stop();
  }
});

test('an allowlist edit with a bad line still removes the peer that left it (fails closed), and says which line', async () => {
  const server = makeHome();
  const client = makeHome();
  const other = NodeIdentity.generate().nodeId;
  const path = join(server.home, 'allowed_peers');
  allowPeer(path, client.identity.nodeId);
  allowPeer(path, other);
  const serve = await startServe(['--home', server.home], [process.execPath, DEMO_SERVER]);
  try {
    const c = await connected(serve.url, client.home, server.identity.nodeId);
    assert.ok((await c.callTool({ name: 'echo', arguments: { message: 'hi' } })).content);
    const since = Date.now();
    writeFileSync(path, `${other}\nthis line is a typo\n`);
    const ms = await msUntilRefused(c, since);
    assert.ok(ms < 2000, `cut off after ${ms} ms`);
    const entry = await serve.waitFor((e) => /allowlist not fully reloaded/.test(String(e.msg)));
    assert.match(String(entry.msg), new RegExp(`${path} line 2`));
    assert.match(String(entry.msg), /1 removed, 1 still allowed/);
    await c.close();
  } finally {
    await serve.stop();
  }
});

test('in a mesh (serve --announce), peers deny closes the connected peer\'s session and its server process at once, not at its next message', async () => {
  const server = makeHome();
  const client = makeHome();
  allowPeer(join(server.home, 'allowed_peers'), client.identity.nodeId);
  const serve = await startServe(['--home', server.home, '--announce', '--no-mdns'], [process.execPath, DEMO_SERVER]);
  try {
    const c = await connected(serve.url, client.home, server.identity.nodeId);
    assert.ok((await c.callTool({ name: 'echo', arguments: { message: 'hi' } })).content);
    assert.equal(runCli(['peers', 'deny', client.identity.nodeId, '--home', server.home]).code, 0);
    // Before the client sends anything more, serve has closed the session (in a mesh the server admits everyone, so nothing else would).
    const entry = await serve.waitFor((e) => /no longer on .*closing its session/.test(String(e.msg)));
    assert.equal(entry.node_id, client.identity.nodeId);
    await serve.waitFor((e) => /connection closed; stopping its server process/.test(String(e.msg)));
    await assert.rejects(c.callTool({ name: 'echo', arguments: { message: 'still in?' } }, undefined, { timeout: 2000 }));
    await c.close();
  } finally {
    await serve.stop();
  }
});
