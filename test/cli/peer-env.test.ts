/**
 * What `serve` tells the server it runs about the caller: the caller's node
 * id, fingerprint and the name given to it here, in the environment of the
 * server process of its connection. Real processes throughout: `serve`
 * around a stdio MCP server (test/cli/fixtures/env-server.ts), SDK clients
 * whose server command is `mcp-e2e connect`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { allowPeer } from '../../src/cli/peers.js';
import { NodeIdentity } from '../../src/identity/identity.js';
import { CLI, ROOT, makeHome, runCli, startServe } from './helpers.js';

/** A stdio MCP server whose tool `caller` returns its MCP_E2E_* variables and its arguments. */
export const ENV_SERVER = join(ROOT, 'dist/test/cli/fixtures/env-server.js');

/** Call `caller` through `mcp-e2e connect URL --home HOME --peer SERVER_ID`, as an MCP client app would. */
export async function callerSeenBy(url: string, home: string, serverNodeId: string): Promise<{ env: Record<string, string>; argv: string[]; path: boolean }> {
  const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, 'connect', url, '--home', home, '--peer', serverNodeId], stderr: 'pipe' });
  const stderr: string[] = [];
  transport.stderr?.on('data', (c: Buffer) => stderr.push(c.toString()));
  const client = new Client({ name: 'peer-env-test', version: '1.0.0' });
  try {
    await client.connect(transport);
    const result = (await client.callTool({ name: 'caller' })) as { content: Array<{ type: string; text: string }> };
    return JSON.parse(result.content[0]!.text);
  } catch (err) {
    throw new Error(`${(err as Error).message}; connect said: ${stderr.join('')}`);
  } finally {
    await client.close();
  }
}

test('the server process learns who is calling: MCP_E2E_PEER_ID, _FINGERPRINT and the name given here (also with --clean-env), nothing inherited', async () => {
  const server = makeHome();
  const alice = makeHome();
  const bob = makeHome();
  allowPeer(join(server.home, 'allowed_peers'), alice.identity.nodeId, 'alice');
  allowPeer(join(server.home, 'allowed_peers'), bob.identity.nodeId);
  // serve's own environment claims to be someone: none of it may reach the child.
  const spoof = { MCP_E2E_PEER_ID: 'f'.repeat(64), MCP_E2E_PEER_NAME: 'mallory', MCP_E2E_PEER_FINGERPRINT: 'ffff-ffff-ffff-ffff-ffff' };
  for (const extra of [[], ['--clean-env']]) {
    const serve = await startServe(['--home', server.home, ...extra], [process.execPath, ENV_SERVER], { env: spoof });
    try {
      const a = await callerSeenBy(serve.url, alice.home, server.identity.nodeId);
      assert.deepEqual(a.env, { MCP_E2E_PEER_ID: alice.identity.nodeId, MCP_E2E_PEER_FINGERPRINT: alice.identity.fingerprint, MCP_E2E_PEER_NAME: 'alice' }, `serve ${extra.join(' ')}`);
      assert.ok(a.path, 'the child still has its PATH');
      // No name given here: no MCP_E2E_PEER_NAME at all (not an empty one, not the spoofed one).
      const b = await callerSeenBy(serve.url, bob.home, server.identity.nodeId);
      assert.deepEqual(b.env, { MCP_E2E_PEER_ID: bob.identity.nodeId, MCP_E2E_PEER_FINGERPRINT: bob.identity.fingerprint }, `serve ${extra.join(' ')}`);
    } finally {
      await serve.stop();
    }
  }
});

test('per-peer command (allowlist command=): each peer gets its own server; a rename keeps it; a malformed command= cuts the peer off, never the default', async () => {
  const server = makeHome();
  const alice = makeHome();
  const bob = makeHome();
  const allow = join(server.home, 'allowed_peers');
  const own = [process.execPath, ENV_SERVER, '--tag', "bob's own # not a comment"];
  writeFileSync(allow, `# bob gets his own server\ncommand=${JSON.stringify(own)} ${bob.identity.nodeId} bob\n${alice.identity.nodeId} alice\n`, { mode: 0o600 });
  const serve = await startServe(['--home', server.home], [process.execPath, ENV_SERVER, '--tag', 'default']);
  try {
    const a = await callerSeenBy(serve.url, alice.home, server.identity.nodeId);
    assert.deepEqual(a.argv, ['--tag', 'default']);
    const b = await callerSeenBy(serve.url, bob.home, server.identity.nodeId);
    assert.deepEqual(b.argv, ['--tag', "bob's own # not a comment"]);
    assert.equal(b.env.MCP_E2E_PEER_NAME, 'bob');
    assert.ok(serve.log.some((l) => l.includes(`starting the server command ${allow} gives this peer`)), serve.log.join('\n'));
    const listed = JSON.parse(runCli(['peers', 'list', '--json', '--home', server.home]).stdout).allowed;
    assert.deepEqual(listed, [{ node_id: bob.identity.nodeId, label: 'bob', command: own }, { node_id: alice.identity.nodeId, label: 'alice' }]);

    // peers allow ID NEWNAME renames and keeps the command; serve re-reads the file.
    assert.equal(runCli(['peers', 'allow', bob.identity.nodeId, 'robert', '--home', server.home]).code, 0);
    await serve.waitFor((e) => /allowlist reloaded/.test(String(e.msg)));
    const renamed = await callerSeenBy(serve.url, bob.home, server.identity.nodeId);
    assert.deepEqual([renamed.argv, renamed.env.MCP_E2E_PEER_NAME], [['--tag', "bob's own # not a comment"], 'robert']);

    // An ssh-style command="..." does not parse: bob is refused (fail closed), alice goes on.
    writeFileSync(allow, `command="node ${ENV_SERVER}" ${bob.identity.nodeId} robert\n${alice.identity.nodeId} alice\n`);
    const refused = await serve.waitFor((e) => /allowlist not fully reloaded/.test(String(e.msg)));
    assert.match(String(refused.msg), new RegExp(`${allow} line 1: command= takes a JSON array of strings, run without a shell`));
    await assert.rejects(callerSeenBy(serve.url, bob.home, server.identity.nodeId));
    assert.deepEqual((await callerSeenBy(serve.url, alice.home, server.identity.nodeId)).argv, ['--tag', 'default']);
  } finally {
    await serve.stop();
  }
});

test('serve refuses an allowlist with a malformed command= line, naming file and line, and a per-peer program that cannot run; peers deny removes a command= line', () => {
  const server = makeHome();
  const id = NodeIdentity.generate().nodeId;
  const file = join(server.home, 'peers.txt');
  const cases: Array<[string, RegExp]> = [
    [`command="node server.js" ${id}`, /line 2: command= takes a JSON array of strings, run without a shell, e\.g\. command=\["node","\/srv\/server\.js","--read-only"\] NODE_ID NAME/],
    [`command=["node" ${id}`, /line 2: the command= array does not end/],
    [`${id} bob command=["node"]`, /line 2: options go before the node id/],
    [`from="10.0.0.0/8" ${id}`, /line 2: unknown option "from=" \(the only option is command=\)/],
    [`command=["/nonexistent/mcp-server"] ${id} bob`, /cannot run the MCP server "\/nonexistent\/mcp-server" that .*peers\.txt gives "bob": no such file/],
  ];
  for (const [line, message] of cases) {
    writeFileSync(file, `# line 1\n${line}\n`, { mode: 0o600 });
    const r = runCli(['serve', '--home', server.home, '--allow', file, '--port', '0', '--', process.execPath, ENV_SERVER]);
    assert.notEqual(r.code, 0, line);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, message, line);
    if (!/cannot run/.test(r.stderr)) assert.match(r.stderr, new RegExp(`${file} line 2: .*\\[ERR_INVALID_NODE_ID\\]`));
  }
  // --allow-any-peer does not read the allowlist: it refuses to start rather than serve a restricted peer the default command.
  const allow = join(server.home, 'allowed_peers');
  writeFileSync(allow, `command=["/bin/cat"] ${id} bob\n`, { mode: 0o600 });
  const any = runCli(['serve', '--home', server.home, '--allow-any-peer', '--port', '0', '--', process.execPath, ENV_SERVER]);
  assert.equal(any.code, 2);
  assert.match(any.stderr, /--allow-any-peer would give the default server command to the 1 peer\(s\) that .*allowed_peers restricts with command= \(bob\)/);
  // peers deny removes a line with a command= option (its first word is not the id), as any other.
  const denied = runCli(['peers', 'deny', 'bob', '--home', server.home]);
  assert.equal(denied.code, 0, denied.stderr);
  assert.match(denied.stdout, /^removed /);
  assert.doesNotMatch(readFileSync(allow, 'utf8'), new RegExp(id));
});

test('a command= added for a connected peer ends its live session (never left on the old, unrestricted server); its next connection runs the new command', async () => {
  const server = makeHome();
  const alice = makeHome();
  const allow = join(server.home, 'allowed_peers');
  allowPeer(allow, alice.identity.nodeId, 'alice');
  const serve = await startServe(['--home', server.home], [process.execPath, ENV_SERVER, '--tag', 'default']);
  const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, 'connect', serve.url, '--home', alice.home, '--peer', server.identity.nodeId], stderr: 'ignore' });
  const client = new Client({ name: 'peer-env-test', version: '1.0.0' });
  try {
    await client.connect(transport);
    const argvOf = async () => JSON.parse(((await client.callTool({ name: 'caller' }, undefined, { timeout: 2000 })) as { content: Array<{ text: string }> }).content[0]!.text).argv;
    assert.deepEqual(await argvOf(), ['--tag', 'default']);
    const restricted = [process.execPath, ENV_SERVER, '--tag', 'restricted'];
    writeFileSync(allow, `command=${JSON.stringify(restricted)} ${alice.identity.nodeId} alice\n`);
    const entry = await serve.waitFor((e) => /changed; closing its session/.test(String(e.msg)));
    assert.equal(entry.node_id, alice.identity.nodeId);
    // The live session is gone: no call reaches the old process any more.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const argv = await argvOf().catch(() => undefined);
      if (argv === undefined) break;
      assert.deepEqual(argv, ['--tag', 'default'], 'the old session never runs the new command');
      assert.ok(Date.now() < deadline, 'the session was still served 10 s after its command changed');
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual((await callerSeenBy(serve.url, alice.home, server.identity.nodeId)).argv, ['--tag', 'restricted']);
  } finally {
    await client.close();
    await serve.stop();
  }
});
