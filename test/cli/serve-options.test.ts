/**
 * `serve` options and defences that concern the operator's machine: the
 * child's environment, control characters in what the child and peers
 * write to the log, browsers (Origin), connection caps, and the log under a
 * flood of refusals.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NodeIdentity } from '../../src/identity/identity.js';
import { EncryptedWebSocketClientTransport } from '../../src/transport/client.js';
import { SUBPROTOCOL_ENCRYPTED, SUBPROTOCOL_PLAINTEXT } from '../../src/protocol.js';
import { openRaw } from '../transport/raw-peers.js';
import { makeHome, runCli, startServe } from './helpers.js';

/** A child that prints the names of its environment variables, then idles. */
const ENV_CHILD = 'console.error("env " + Object.keys(process.env).sort().join(",")); setInterval(() => {}, 1000);';

async function childEnv(args: string[], env: NodeJS.ProcessEnv): Promise<string[]> {
  const server = makeHome();
  const serve = await startServe(['--home', server.home, '--allow-any-peer', ...args], [process.execPath, '-e', ENV_CHILD], { env });
  try {
    const t = new EncryptedWebSocketClientTransport(serve.url, { identity: NodeIdentity.generate(), expectedPeer: server.identity.nodeId });
    await t.start();
    const entry = await serve.waitFor((e) => /\[child\] env /.test(String(e.msg)));
    await t.close();
    return String(entry.msg).replace(/^.*\[child\] env /, '').split(',');
  } finally {
    await serve.stop();
  }
}

test('the child never gets mcp-e2e\'s own variables; --clean-env gives it only the basics and --pass-env names', async () => {
  const env = { MCP_E2E_SECRET: 'x', mcp_e2e_other: 'y', FOO_FOR_CHILD: 'z' };
  const inherited = await childEnv([], env);
  assert.ok(inherited.includes('FOO_FOR_CHILD') && inherited.includes('PATH'), inherited.join(','));
  // The only MCP_E2E_* names are the caller's, which serve sets (test/cli/peer-env.test.ts).
  assert.deepEqual(inherited.filter((n) => n.toUpperCase().startsWith('MCP_E2E_')), ['MCP_E2E_PEER_FINGERPRINT', 'MCP_E2E_PEER_ID'], inherited.join(','));
  const clean = await childEnv(['--clean-env'], env);
  assert.ok(clean.includes('PATH') && !clean.includes('FOO_FOR_CHILD'), clean.join(','));
  const passed = await childEnv(['--clean-env', '--pass-env', 'FOO_FOR_CHILD'], env);
  assert.ok(passed.includes('FOO_FOR_CHILD') && !passed.includes('MCP_E2E_SECRET'), passed.join(','));
});

test('control characters a child writes to stderr reach the log escaped (readable and JSON): no terminal escapes, no forged lines', async () => {
  const evil = 'process.stderr.write("title \\u001b]0;pwned\\u0007 erase \\u001b[2K\\r fake \\u009b31m end\\n"); setInterval(() => {}, 1000);';
  for (const readable of [true, false]) {
    const server = makeHome();
    const serve = await startServe(['--home', server.home, '--allow-any-peer'], [process.execPath, '-e', evil], { readable });
    try {
      const t = new EncryptedWebSocketClientTransport(serve.url, { identity: NodeIdentity.generate(), expectedPeer: server.identity.nodeId });
      await t.start();
      const entry = await serve.waitFor((e) => /\[child\] title/.test(String(e.msg)));
      await t.close();
      const line = serve.log.find((l) => l.includes('[child] title'))!;
      assert.ok(!/[\u0000-\u001f\u007f-\u009f]/.test(line), `raw control character in ${JSON.stringify(line)}`);
      if (readable) assert.match(line, /title \\x1b\]0;pwned\\x07 erase \\x1b\[2K\\x0d fake \\x9b31m end/);
      else assert.match(String(entry.msg), /\u001b\]0;pwned/, 'JSON keeps the text, escaped on the wire');
    } finally {
      await serve.stop();
    }
  }
});

test('browsers: an upgrade with an Origin is refused (403) unless --allow-origin lists it; a flood of refusals is logged in a few lines', async () => {
  const server = makeHome();
  const serve = await startServe(['--home', server.home, '--allow-any-peer', '--allow-plaintext', '--allow-origin', 'http://localhost:3000'], ['/bin/cat']);
  try {
    for (let i = 0; i < 60; i++) await assert.rejects(openRaw(serve.url, [SUBPROTOCOL_PLAINTEXT], { origin: 'https://evil.example' }), /403/);
    const ok = await openRaw(serve.url, [SUBPROTOCOL_PLAINTEXT], { origin: 'http://localhost:3000' });
    ok.terminate();
    const noOrigin = await openRaw(serve.url, [SUBPROTOCOL_ENCRYPTED]);
    noOrigin.terminate();
    await new Promise((r) => setTimeout(r, 300));
    const refusals = serve.log.filter((l) => l.includes('ERR_ORIGIN_REFUSED'));
    assert.ok(refusals.length > 0 && refusals.length <= 20, `${refusals.length} refusal lines for 60 refusals`);
  } finally {
    await serve.stop();
  }
});

test('--max-connections-per-peer and --max-connections cap what one key, and everyone, can open', async () => {
  const server = makeHome();
  const serve = await startServe(['--home', server.home, '--allow-any-peer', '--max-connections', '2', '--max-connections-per-peer', '1'], ['/bin/cat']);
  const open: EncryptedWebSocketClientTransport[] = [];
  const connect = async (identity: NodeIdentity) => {
    const t = new EncryptedWebSocketClientTransport(serve.url, { identity, expectedPeer: server.identity.nodeId });
    // Refused before the handshake: start() rejects; after it (per peer): onerror, once started.
    const refused = new Promise<string | undefined>((resolve) => (t.onerror = (e) => resolve((e as { code?: string }).code)));
    open.push(t);
    const early = await t.start().then(
      () => undefined,
      (e: { code?: string }) => e.code,
    );
    return early ?? Promise.race([refused, new Promise<string>((r) => setTimeout(() => r('open'), 1500))]);
  };
  try {
    const key = NodeIdentity.generate();
    assert.equal(await connect(key), 'open');
    assert.equal(await connect(key), 'ERR_LIMIT_REACHED', 'a second connection of one key');
    assert.equal(await connect(NodeIdentity.generate()), 'open');
    assert.equal(await connect(NodeIdentity.generate()), 'ERR_LIMIT_REACHED', 'a third connection in all');
  } finally {
    for (const t of open) await t.close();
    await serve.stop();
  }
});

test('--pass-env naming one of mcp-e2e\'s own variables is refused at start, not ignored', () => {
  const server = makeHome();
  for (const name of ['MCP_E2E_SECRET', 'mcp_e2e_home']) {
    const r = runCli(['serve', '--home', server.home, '--allow-any-peer', '--port', '0', '--clean-env', '--pass-env', 'FOO', '--pass-env', name, '--', process.execPath, '-e', '']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`--pass-env ${name}: mcp-e2e's own variables never reach the server process`));
  }
});
