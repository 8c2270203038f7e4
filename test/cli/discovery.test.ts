/**
 * Discovery from the command line, with real processes on 127.0.0.1:
 * `serve --announce`, `peers` (table, --json, add, record, block, forget),
 * and `connect <node id or name>` with no URL, pinned to the node id, from a
 * record given by hand or learned by `serve` from an incoming session.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { NodeIdentity } from '../../src/identity/identity.js';
import { createPeerRecord } from '../../src/discovery/record.js';
import { PeerRegistry } from '../../src/discovery/registry.js';
import { CLI, DEMO_SERVER, eventually, makeHome, runCli, startServe } from './helpers.js';

/** An SDK client whose server command is `mcp-e2e connect TARGET`. */
async function connectTo(target: string, home: string) {
  const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, 'connect', target, '--no-mdns', '--home', home], stderr: 'pipe' });
  const stderr: string[] = [];
  transport.stderr?.on('data', (c: Buffer) => stderr.push(c.toString()));
  const client = new Client({ name: 'cli-discovery-test', version: '1.0.0' });
  await client.connect(transport);
  return { client, stderr };
}

const text = (r: unknown) => ((r as { content: Array<{ text: string }> }).content[0]!.text);
const registryOf = (home: string) => new PeerRegistry({ path: join(home, 'peers.json') });

test('serve --announce; its record given by hand; connect <node id> and connect <name> reach it, pinned', async () => {
  const a = makeHome();
  const b = makeHome();
  const serve = await startServe(['--home', b.home, '--allow-any-peer', '--announce', '--no-mdns', '--name', 'bee'], [process.execPath, DEMO_SERVER]);
  try {
    await serve.waitFor((e) => typeof e.msg === 'string' && (e.msg as string).startsWith('announcing'));
    const rec = runCli(['peers', 'record', '--home', b.home]);
    assert.equal(rec.code, 0, rec.stderr);
    const hex = rec.stdout.trim();
    const json = JSON.parse(runCli(['peers', 'record', '--json', '--home', b.home]).stdout);
    assert.equal(json.node_id, b.identity.nodeId);
    assert.equal(json.name, 'bee');
    assert.deepEqual(json.addresses, [serve.url]);

    const add = runCli(['peers', 'add', hex, '--home', a.home]);
    assert.equal(add.code, 0, add.stderr);
    assert.match(add.stdout, /^added node /);
    const table = runCli(['peers', '--home', a.home]).stdout;
    const row = table.split('\n').find((l) => l.includes(b.identity.nodeId.slice(0, 12)))!;
    assert.match(row, /^\s+bee\s+[0-9a-f]{12}\s+discovered\s+ws:\/\/127\.0\.0\.1:\d+\s+manual\s+\d+s ago$/);

    const { client, stderr } = await connectTo(b.identity.nodeId, a.home);
    assert.equal(text(await client.callTool({ name: 'echo', arguments: { message: 'by id' } })), 'Echo: by id');
    await client.close();
    assert.match(stderr.join(''), new RegExp(`connected to 127\\.0\\.0\\.1:${serve.port} as ${b.identity.fingerprint}`));
    const listed = JSON.parse(runCli(['peers', '--json', '--home', a.home]).stdout);
    const bee = listed.peers.find((p: { node_id: string }) => p.node_id === b.identity.nodeId);
    assert.equal(bee.state, 'verified');
    assert.equal(bee.last_handshake.url, serve.url);
    assert.deepEqual(listed.known, [], 'connect by id never uses trust on first use');

    // A name resolves only once the node is trusted (allowed) here.
    const refused = runCli(['connect', 'bee', '--no-mdns', '--home', a.home]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /not a URL.*no trusted peer is named "bee".*untrusted nodes call themselves that/);
    assert.equal(runCli(['peers', 'allow', b.identity.nodeId, 'the-bee', '--home', a.home]).code, 0);
    for (const name of ['bee', 'the-bee']) {
      const byName = await connectTo(name, a.home);
      assert.equal(text(await byName.client.callTool({ name: 'add', arguments: { a: 20, b: 22 } })), '42');
      await byName.client.close();
    }
    assert.match(runCli(['peers', '--home', a.home]).stdout, /bee\s+[0-9a-f]{12}\s+trusted/);
    // The serve side recorded the incoming peer as verified.
    await eventually(() => registryOf(b.home).stateOf(a.identity.nodeId) === 'verified', 10_000, 'A verified in B’s registry');

    // Blocked: connect refuses at once; forgetting removes the entry.
    assert.equal(runCli(['peers', 'block', b.identity.nodeId, '--home', a.home]).code, 0);
    const blocked = runCli(['connect', b.identity.nodeId, '--no-mdns', '--home', a.home]);
    assert.equal(blocked.code, 1);
    assert.match(blocked.stderr, /ERR_PEER_BLOCKED/);
    assert.equal(runCli(['peers', 'forget', b.identity.nodeId, '--home', a.home]).code, 0);
    const gone = runCli(['connect', b.identity.nodeId, '--no-mdns', '--home', a.home]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /no address known.*ERR_PEER_NOT_FOUND/);
  } finally {
    await serve.stop();
  }
});

test('a record for B pointing at C: connect <B> fails with ERR_PEER_KEY_CHANGED and C’s server never starts its MCP program', async () => {
  const a = makeHome();
  const b = NodeIdentity.generate();
  const c = makeHome();
  const serveC = await startServe(['--home', c.home, '--allow-any-peer'], [process.execPath, DEMO_SERVER]);
  try {
    const now = Date.now();
    const lying = createPeerRecord(b, { seq: now, issuedAtMs: now, expiresAtMs: now + 600_000, addresses: [serveC.url], protocolVersions: [1], name: 'bee' });
    assert.equal(runCli(['peers', 'add', lying.toHex(), '--home', a.home]).code, 0);
    const r = runCli(['connect', b.nodeId, '--no-mdns', '--home', a.home]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`tried ${serveC.url.replace(/[.]/g, '\\.')} \\(ERR_PEER_KEY_CHANGED`));
    assert.match(r.stderr, /code=ERR_PEER_KEY_CHANGED/);
    await new Promise((res) => setTimeout(res, 300));
    assert.ok(!serveC.log.some((l) => /peer .* connected/.test(l)), serveC.log.join('\n'));
  } finally {
    await serveC.stop();
  }
});

test('serve learns a peer from an incoming session; connect <its id> then works from that home with no URL given', async () => {
  const a = makeHome();
  const b = makeHome();
  const serveA = await startServe(['--home', a.home, '--allow-any-peer', '--announce', '--no-mdns', '--name', 'ay'], [process.execPath, DEMO_SERVER]);
  const serveB = await startServe(['--home', b.home, '--allow-any-peer', '--announce', '--no-mdns', '--name', 'bee'], [process.execPath, DEMO_SERVER]);
  try {
    await serveA.waitFor((e) => typeof e.msg === 'string' && (e.msg as string).startsWith('announcing'));
    await serveB.waitFor((e) => typeof e.msg === 'string' && (e.msg as string).startsWith('announcing'));
    // B's home knows A; a `connect` from B's home carries B's record (made by B's serve) to A.
    assert.equal(runCli(['peers', 'add', runCli(['peers', 'record', '--home', a.home]).stdout.trim(), '--home', b.home]).code, 0);
    const fromB = await connectTo(a.identity.nodeId, b.home);
    assert.equal(text(await fromB.client.callTool({ name: 'echo', arguments: { message: 'hello a' } })), 'Echo: hello a');
    await eventually(() => registryOf(a.home).get(b.identity.nodeId)?.record !== undefined, 10_000, 'B’s record in A’s registry');
    await fromB.client.close();
    const info = registryOf(a.home).get(b.identity.nodeId)!;
    assert.deepEqual(info.record!.addresses, [serveB.url]);
    assert.equal(info.state, 'verified');
    assert.ok(info.sources.includes('session') && info.sources.includes('incoming'));
    const fromA = await connectTo(b.identity.nodeId, a.home);
    assert.equal(text(await fromA.client.callTool({ name: 'echo', arguments: { message: 'hello b' } })), 'Echo: hello b');
    await fromA.client.close();
  } finally {
    await Promise.all([serveA.stop(), serveB.stop()]);
  }
});

test('connect <node id> --reconnect: a killed serve comes back on its address, the relay reconnects pinned to the id', async () => {
  const a = makeHome();
  const b = makeHome();
  let serve = await startServe(['--home', b.home, '--allow-any-peer', '--announce', '--no-mdns'], [process.execPath, DEMO_SERVER]);
  const port = serve.port;
  const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, 'connect', b.identity.nodeId, '--no-mdns', '--reconnect', '--json', '--home', a.home], stderr: 'pipe' });
  let log = '';
  transport.stderr?.on('data', (c: Buffer) => (log += c.toString()));
  const client = new Client({ name: 'cli-discovery-reconnect', version: '1.0.0' });
  try {
    await serve.waitFor((e) => typeof e.msg === 'string' && (e.msg as string).startsWith('announcing'));
    assert.equal(runCli(['peers', 'add', runCli(['peers', 'record', '--home', b.home]).stdout.trim(), '--home', a.home]).code, 0);
    await client.connect(transport);
    assert.equal(text(await client.callTool({ name: 'echo', arguments: { message: 'one' } })), 'Echo: one');
    await serve.stop('SIGKILL');
    await eventually(() => log.includes('connection lost; reconnecting'), 10_000, 'the relay to notice');
    serve = await startServe(['--home', b.home, '--allow-any-peer', '--announce', '--no-mdns', '--port', String(port)], [process.execPath, DEMO_SERVER]);
    await eventually(() => log.includes('re-initialised'), 30_000, 'the relay to reconnect');
    assert.equal(text(await client.callTool({ name: 'echo', arguments: { message: 'two' } })), 'Echo: two');
    assert.equal(log.split('\n').filter((l) => l.includes('"connected to 127.0.0.1')).length, 2);
  } finally {
    await client.close();
    await serve.stop();
  }
});

test('usage errors: --name without --announce, a bad --public-url, --plaintext with a node id', () => {
  const a = makeHome();
  const r1 = runCli(['serve', '--home', a.home, '--name', 'x', '--', process.execPath, DEMO_SERVER]);
  assert.equal(r1.code, 2);
  assert.match(r1.stderr, /add --announce/);
  const r2 = runCli(['serve', '--home', a.home, '--announce', '--public-url', 'http://x', '--', process.execPath, DEMO_SERVER]);
  assert.equal(r2.code, 2);
  assert.match(r2.stderr, /--public-url "http:\/\/x" is not an address/);
  const r3 = runCli(['serve', '--home', a.home, '--announce', '--name', 'a\u0007b', '--', process.execPath, DEMO_SERVER]);
  assert.equal(r3.code, 2);
  assert.match(r3.stderr, /cannot announce that: --name/);
  const r4 = runCli(['connect', NodeIdentity.generate().nodeId, '--plaintext', '--home', a.home]);
  assert.equal(r4.code, 2);
  const r5 = runCli(['peers', 'add', 'nothex', '--home', a.home]);
  assert.equal(r5.code, 2);
  const r6 = runCli(['peers', 'add', NodeIdentity.generate().nodeId, 'http://x', '--home', a.home]);
  assert.equal(r6.code, 2);
  const r7 = runCli(['peers', 'record', '--home', a.home]);
  assert.equal(r7.code, 2);
  assert.match(r7.stderr, /serve --announce/);
});
