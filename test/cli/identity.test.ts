/**
 * Node ids, fingerprints and names as people meet them (issue 10, items 2
 * and 3): what the CLI prints for copying is what its commands accept; a
 * fingerprint selects only among peers known here; names are given here;
 * trust on first use says what it trusted, strict mode refuses unknown
 * servers, scan shows a server's identity without sending ours, forget
 * takes the URL as printed, and keygen --force does not pull the key from
 * under a running serve. Real processes throughout.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { NodeIdentity } from '../../src/identity/identity.js';
import { CLI, DEMO_SERVER, ROOT, makeHome, runCli, startServe, tempDir } from './helpers.js';

/** Connect an SDK client through `mcp-e2e connect ...args`; resolves with its tool names and connect's stderr, or rejects. */
async function viaConnect(args: string[]): Promise<{ tools: string[]; stderr: string }> {
  const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, 'connect', ...args], stderr: 'pipe' });
  let stderr = '';
  transport.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const client = new Client({ name: 'identity-test', version: '1' });
  try {
    await client.connect(transport);
    const tools = (await client.listTools()).tools.map((t) => t.name);
    return { tools, stderr };
  } catch (err) {
    throw Object.assign(err as Error, { stderr });
  } finally {
    await client.close();
  }
}

const ok = (r: ReturnType<typeof runCli>) => {
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
};

test('what keygen, id and serve print for copying is what peers allow and connect --peer accept', async () => {
  const serverHome = tempDir();
  const clientHome = tempDir();
  const keygen = ok(runCli(['keygen', '--home', serverHome])).split('\n');
  const serverId = /^node id ([0-9a-f]{64})$/.exec(keygen[0]!)?.[1];
  assert.ok(serverId, keygen[0]);
  assert.match(keygen[1]!, /^fingerprint [0-9a-f]{4}(-[0-9a-f]{4}){4} \(for comparing by voice; commands take the node id\)$/);
  ok(runCli(['keygen', '--home', clientHome]));
  const clientId = ok(runCli(['id', '--home', clientHome])).split('\n')[0]!;
  assert.match(clientId, /^[0-9a-f]{64}$/);
  // The server's operator pastes what the client's `mcp-e2e id` printed first.
  assert.match(ok(runCli(['peers', 'allow', clientId, 'alice', '--home', serverHome])), new RegExp(`^allowed ${clientId} \\(fingerprint [-0-9a-f]{24}, named "alice"\\) in `));
  const serve = await startServe(['--home', serverHome], [process.execPath, DEMO_SERVER], { readable: true });
  try {
    // serve prints the command that pins it; the client runs it as printed.
    const listening = serve.log.find((l) => l.includes('clients pin it with:'))!;
    const printed = /clients pin it with: (mcp-e2e connect .*?) \(url=/.exec(listening)![1]!.replace('HOST', '127.0.0.1').split(' ');
    assert.deepEqual(printed.slice(0, 4), ['mcp-e2e', 'connect', `ws://127.0.0.1:${serve.port}`, '--peer']);
    assert.equal(printed[4], serverId);
    assert.ok((await viaConnect([...printed.slice(2), '--home', clientHome])).tools.includes('echo'));
    await serve.waitFor((e) => String(e.msg).includes('peer "alice" (') && String(e.msg).endsWith('connected (conn=1 node_id=' + clientId + ')'));

    // A fingerprint selects a peer known here: here, the server connect recorded on first use.
    const fingerprint = NodeIdentity.load(join(serverHome, 'identity.json')).fingerprint;
    await assert.rejects(viaConnect([serve.url, '--home', clientHome, '--peer', fingerprint]), (err: Error & { stderr?: string }) => {
      assert.match(err.stderr ?? '', /no peer known here has the fingerprint .*: a fingerprint only selects a peer already known here, it is not enough to pin one; give the full node id/);
      return true;
    });
    assert.ok((await viaConnect([serve.url, '--home', clientHome])).stderr.includes(`first connection to 127.0.0.1:${serve.port}`));
    assert.ok((await viaConnect([serve.url, '--home', clientHome, '--peer', fingerprint])).tools.includes('echo'));
    assert.ok((await viaConnect([serve.url, '--home', clientHome, '--peer', fingerprint.toUpperCase().replace(/-/g, '')])).tools.includes('echo'));
    // A name given here (peers allow ID NAME, with the id copied from `peers`) selects it too.
    ok(runCli(['peers', 'allow', fingerprint, 'work-server', '--home', clientHome]));
    assert.ok((await viaConnect([serve.url, '--home', clientHome, '--peer', 'work-server'])).tools.includes('echo'));
  } finally {
    await serve.stop();
  }
});

test('the demo prints the full node id where it shows --peer', () => {
  const r = spawnSync(process.execPath, [join(ROOT, 'dist/src/demo/demo.js')], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  const pinned = /--peer (\S+)/.exec(r.stdout)?.[1];
  const server = /server node id {2}([0-9a-f]{64})/.exec(r.stdout)?.[1];
  assert.ok(server && pinned === server, r.stdout);
});

test('names are local and unambiguous; deny and forget take them', () => {
  const { home } = makeHome();
  const a = NodeIdentity.generate().nodeId;
  const b = NodeIdentity.generate().nodeId;
  ok(runCli(['peers', 'allow', a, 'alice', '--home', home]));
  const taken = runCli(['peers', 'allow', b, 'alice', '--home', home]);
  assert.equal(taken.code, 2);
  assert.match(taken.stderr, /the name "alice" is already given to [-0-9a-f]{24} \([0-9a-f]{64}\); choose another, or deny that one first/);
  const idLike = runCli(['peers', 'allow', b, 'abcd-0123-4567-89ab-cdef', '--home', home]);
  assert.match(idLike.stderr, /a name must not look like a node id or a fingerprint/);
  assert.match(runCli(['peers', 'allow', b, 'bob#2', '--home', home]).stderr, /a name must not contain #/);
  // Renaming a peer keeps one line for it.
  assert.match(ok(runCli(['peers', 'allow', a, 'alice', 'laptop', '--home', home])), /^renamed .*named "alice laptop"/);
  assert.equal(readFileSync(join(home, 'allowed_peers'), 'utf8'), `${a} alice laptop\n`);
  assert.match(ok(runCli(['peers', 'deny', 'alice laptop', '--home', home])), new RegExp(`^removed ${a} `));
  const unknown = runCli(['peers', 'deny', 'nobody', '--home', home]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /"nobody" is neither a node id \(64 hex digits\) nor the name or fingerprint of a peer known here/);
});

test('trust on first use, as ssh users know it: a notice, --strict-peer, scan, forget by URL', async () => {
  const server = makeHome();
  const client = makeHome();
  const serve = await startServe(['--home', server.home, '--allow-any-peer'], [process.execPath, DEMO_SERVER]);
  try {
    // Strict: an unknown server is refused, and the MCP client is told how to check and pin it.
    await assert.rejects(viaConnect([serve.url, '--home', client.home, '--strict-peer']), (err: Error) => {
      assert.equal(
        err.message,
        `MCP error -32000: mcp-e2e: no identity is recorded for 127.0.0.1:${serve.port}, and unknown servers are refused (strict); it presented ${server.identity.fingerprint} (node id ${server.identity.nodeId}): check it with \`mcp-e2e scan ${serve.url}\`, then connect with --peer NODE_ID`,
      );
      return true;
    });
    // scan shows the identity; the server never sees ours (no session, no identity of ours in its log).
    const before = serve.log.length;
    const scan = ok(runCli(['scan', serve.url, '--home', client.home])).split('\n');
    assert.equal(scan[0], server.identity.nodeId);
    assert.equal(scan[1], `fingerprint ${server.identity.fingerprint} (compare it with what the server's operator reads from \`mcp-e2e id\`)`);
    assert.equal(scan[2], `127.0.0.1:${serve.port} is not recorded here; once the fingerprint matches: mcp-e2e connect ${serve.url} --peer ${server.identity.nodeId}`);
    // Before any session, the refusal is only the close frame's unauthenticated claim (protocol version 2, PROTOCOL.md §9.1).
    const refused = await serve.waitFor((e) => e.code === 'ERR_CONNECTION_CLOSED' && /refused: .*its close frame says ERR_PEER_REJECTED/.test(String(e.msg)));
    assert.ok(!serve.log.slice(before).some((l) => l.includes(client.identity.nodeId) || l.includes(client.identity.fingerprint) || /connected/.test(l)), serve.log.slice(before).join('\n'));
    assert.match(String(refused.msg), /the peer closed the connection/);
    // First use: one notice with the fingerprint, the identity recorded; strict then accepts it.
    const first = await viaConnect([serve.url, '--home', client.home]);
    assert.match(first.stderr, new RegExp(`warn: first connection to 127\\.0\\.0\\.1:${serve.port}: its identity is now recorded in .*known_peers\\.json: ${server.identity.nodeId} \\(fingerprint ${server.identity.fingerprint}\\)`));
    const again = await viaConnect([serve.url, '--home', client.home, '--strict-peer']);
    assert.ok(!again.stderr.includes('first connection'));
    assert.equal(JSON.parse(ok(runCli(['scan', serve.url, '--home', client.home, '--json']))).known, 'same');
    // forget takes the URL as connect was given it.
    assert.equal(ok(runCli(['peers', 'forget', serve.url, '--home', client.home])), `forgot the identity of 127.0.0.1:${serve.port}\n`);
    assert.deepEqual(JSON.parse(ok(runCli(['peers', '--json', '--home', client.home]))).known, []);
  } finally {
    await serve.stop();
  }
});

test('keygen --force is refused while a serve of that home runs; serve warns when its key file is replaced', async () => {
  const server = makeHome();
  const serve = await startServe(['--home', server.home, '--allow-any-peer'], [process.execPath, DEMO_SERVER]);
  try {
    const r = runCli(['keygen', '--force', '--home', server.home]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, `mcp-e2e: error: a serve of ${server.home} is running (pid ${serve.proc.pid}) and would go on with the old identity: stop it, then run keygen --force again\n`);
    assert.equal(NodeIdentity.load(join(server.home, 'identity.json')).nodeId, server.identity.nodeId);
    // Replaced by other means: serve says it goes on with the old key.
    NodeIdentity.generate().save(join(server.home, 'identity.json'), { overwrite: true });
    await serve.waitFor((e) => String(e.msg) === `${join(server.home, 'identity.json')} changed; this serve goes on as node ${server.identity.nodeId} until it is restarted`, 10_000);
  } finally {
    await serve.stop();
  }
  // Once it has stopped (or was killed: a stale marker does not count), keygen --force works.
  const killed = await startServe(['--home', server.home, '--allow-any-peer'], [process.execPath, DEMO_SERVER]);
  await killed.stop('SIGKILL');
  ok(runCli(['keygen', '--force', '--home', server.home]));
});
