/**
 * Failures reach the person looking at the MCP client (issue 10, item 1):
 * what an MCP client shows when `connect` cannot reach the server, the
 * server refuses our identity or presents another one, and when the server
 * process behind `serve` dies before answering (a crash at start, a bad
 * directory, a missing program). Real processes: the MCP SDK's stdio client
 * and the MCP Inspector CLI launching `mcp-e2e connect`, real `serve`s
 * around server-filesystem and shell commands.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { NodeIdentity } from '../../src/identity/identity.js';
import { allowPeer } from '../../src/cli/peers.js';
import { RELAY_ERROR_CODE } from '../../src/cli/relay.js';
import { EncryptedWebSocketClientTransport } from '../../src/transport/client.js';
import { CLI, DEMO_SERVER, ROOT, connectError, freePort, makeHome, runCli, startServe } from './helpers.js';
import { within } from '../transport/helpers.js';

const FILESYSTEM = join(ROOT, 'node_modules/@modelcontextprotocol/server-filesystem/dist/index.js');
const INSPECTOR = join(ROOT, 'node_modules/@modelcontextprotocol/inspector-cli/build/index.js');

test('connect cannot reach the server: the MCP client gets the cause, not "no connection"', async () => {
  const client = makeHome();
  const port = await freePort();
  const e = await connectError([`ws://127.0.0.1:${port}`, '--home', client.home]);
  assert.equal(e.code, RELAY_ERROR_CODE);
  assert.equal(e.message, `MCP error -32000: mcp-e2e: cannot connect to ws://127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port}; is \`mcp-e2e serve\` running at 127.0.0.1:${port}?`);
});

test('the server refuses our identity: the MCP client is told the command that fixes it, with our full node id', async () => {
  const server = makeHome();
  const client = makeHome();
  const serve = await startServe(['--home', server.home], [process.execPath, DEMO_SERVER]);
  try {
    const e = await connectError([serve.url, '--home', client.home, '--peer', server.identity.nodeId]);
    assert.equal(e.message, `MCP error -32000: mcp-e2e: the server at 127.0.0.1:${serve.port} refused our identity: ask its operator to run \`mcp-e2e peers allow ${client.identity.nodeId}\``);
    // The command it names is the one that works.
    assert.equal(runCli(['peers', 'allow', client.identity.nodeId, '--home', server.home]).code, 0);
    await serve.waitFor((entry) => /allowlist reloaded: 1 peer/.test(String(entry.msg)));
    const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, 'connect', serve.url, '--home', client.home, '--peer', server.identity.nodeId], stderr: 'ignore' });
    const mcp = new Client({ name: 'errors-test', version: '1' });
    await mcp.connect(transport);
    await mcp.close();
  } finally {
    await serve.stop();
  }
});

test('a pinned server presents another key: the MCP client hears of it, not a bare close', async () => {
  const server = makeHome();
  const client = makeHome();
  const serve = await startServe(['--home', server.home, '--allow-any-peer'], [process.execPath, DEMO_SERVER]);
  try {
    const other = NodeIdentity.generate();
    const e = await connectError([serve.url, '--home', client.home, '--peer', other.nodeId]);
    assert.match(e.message, new RegExp(`^MCP error -32000: mcp-e2e: peer identity ${server.identity.fingerprint} is not the pinned peer ${other.fingerprint} \\(node id ${server.identity.nodeId}\\)$`));
  } finally {
    await serve.stop();
  }
});

test('the server process dies before answering initialize: the client is told how (and, if the operator allows, its last stderr line)', async () => {
  const server = makeHome();
  const client = makeHome();
  allowPeer(join(server.home, 'allowed_peers'), client.identity.nodeId);
  // A real server given a directory that does not exist.
  const badDir = [process.execPath, FILESYSTEM, join(server.home, 'no-such-dir')];
  let serve = await startServe(['--home', server.home], badDir);
  try {
    const e = await connectError([serve.url, '--home', client.home, '--peer', server.identity.nodeId]);
    assert.equal(e.message, 'MCP error -32000: mcp-e2e serve: the MCP server process exited with code 1 before answering; the server\'s log says why');
    // The operator's log has the detail.
    await serve.waitFor((entry) => /\[child\] Error: None of the specified directories are accessible/.test(String(entry.msg)));
  } finally {
    await serve.stop();
  }
  serve = await startServe(['--home', server.home, '--share-stderr'], badDir);
  try {
    const e = await connectError([serve.url, '--home', client.home, '--peer', server.identity.nodeId]);
    assert.equal(e.message, 'MCP error -32000: mcp-e2e serve: the MCP server process exited with code 1 before answering; its last line on stderr: Error: None of the specified directories are accessible');
  } finally {
    await serve.stop();
  }
});

test('the MCP Inspector CLI shows why a wrapped server that cannot start (exit 127) failed', async () => {
  const server = makeHome();
  const client = makeHome();
  allowPeer(join(server.home, 'allowed_peers'), client.identity.nodeId);
  const serve = await startServe(['--home', server.home, '--share-stderr'], ['/bin/sh', '-c', 'echo "sh: 1: my-mcp-server: not found\\x1b[2K" >&2; exit 127']);
  try {
    const wrapper = join(client.home, 'connect.sh');
    writeFileSync(wrapper, `#!/bin/sh\nexec "${process.execPath}" "${CLI}" connect ${serve.url} --peer ${server.identity.nodeId} --home "${client.home}"\n`, { mode: 0o755 });
    const r = spawnSync(process.execPath, [INSPECTOR, wrapper, '--method', 'tools/list'], { cwd: join(ROOT, 'test'), encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 1);
    // The control sequence the server wrote is escaped on its way to the client.
    assert.match(r.stdout + r.stderr, /MCP error -32000: mcp-e2e serve: the MCP server process exited with code 127 before answering; its last line on stderr: sh: 1: my-mcp-server: not found\\x1b\[2K/);
  } finally {
    await serve.stop();
  }
});

test('a server process that dies before the client asks anything: the first request is answered with the reason', async () => {
  const server = makeHome();
  const serve = await startServe(['--home', server.home, '--allow-any-peer'], ['/bin/sh', '-c', 'kill -SEGV $$']);
  const t = new EncryptedWebSocketClientTransport(serve.url, { identity: NodeIdentity.generate(), expectedPeer: server.identity.nodeId });
  try {
    const answer = new Promise<unknown>((resolve) => (t.onmessage = resolve));
    await t.start();
    await serve.waitFor((e) => /server process killed by SIGSEGV/.test(String(e.msg)));
    await t.send({ jsonrpc: '2.0', id: 7, method: 'initialize', params: {} });
    assert.deepEqual(await within(answer, 10_000, 'the answer to initialize'), {
      jsonrpc: '2.0',
      id: 7,
      error: { code: RELAY_ERROR_CODE, message: 'mcp-e2e serve: the MCP server process killed by SIGSEGV before answering; the server\'s log says why' },
    });
    await t.whenClosed();
  } finally {
    await t.close();
    await serve.stop();
  }
});

test('serve checks at start that its command can run', () => {
  const { home } = makeHome();
  const cases: Array<[string, string]> = [
    ['no-such-mcp-server', 'not found in the PATH it gets ('],
    [join(home, 'missing.js'), 'no such file'],
    [home, 'it is a directory'],
    [join(home, 'identity.json'), `not executable (chmod +x ${join(home, 'identity.json')})`],
  ];
  for (const [cmd, why] of cases) {
    const r = runCli(['serve', '--home', home, '--', cmd]);
    assert.equal(r.code, 2, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.ok(lines[0]!.includes(`mcp-e2e: error: cannot run the MCP server ${JSON.stringify(cmd)}: ${why}`), lines[0]);
  }
});

test('connect that cannot start (a typo, a bad config file, no identity) answers the MCP client\'s initialize with the reason, not a bare close', async () => {
  const { home } = makeHome();
  const typo = await connectError(['ws://127.0.0.1:1', '--peeer', 'x', '--home', home]);
  assert.equal(typo.code, RELAY_ERROR_CODE);
  assert.equal(typo.message, 'MCP error -32000: mcp-e2e: unknown option --peeer (did you mean --peer?) (see mcp-e2e connect --help)');
  writeFileSync(join(home, 'config.json'), '{"connect": {"reconect": true}}', { mode: 0o600 });
  const config = await connectError(['ws://127.0.0.1:1', '--home', home]);
  assert.match(config.message, /^MCP error -32000: mcp-e2e: config file .*config\.json: "reconect" in "connect" is not an option of connect \(did you mean "reconnect"\?\)$/);
  const empty = join(home, 'nobody');
  const noIdentity = await connectError(['ws://127.0.0.1:1', '--home', empty]);
  assert.match(noIdentity.message, /^MCP error -32000: mcp-e2e: no identity at .*nobody\/identity\.json; create one with: mcp-e2e keygen --home \S+nobody$/);
  // With nothing on stdin to answer, the line is on stderr and connect exits at once.
  const r = runCli(['connect', 'ws://127.0.0.1:1', '--peeer', 'x', '--home', home]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown option --peeer/);
  assert.equal(r.stdout, '');
});
