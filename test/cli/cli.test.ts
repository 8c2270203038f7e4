/**
 * The command-line program, run as real processes: identities and trust
 * files, and serve/connect relays with real MCP programs we did not write
 * (@modelcontextprotocol/server-everything, @modelcontextprotocol/inspector-cli).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { NodeIdentity } from '../../src/identity/identity.js';
import { allowPeer } from '../../src/cli/peers.js';
import { EncryptedWebSocketClientTransport } from '../../src/transport/client.js';
import { CLI, DEMO_SERVER, EVERYTHING, ROOT, alive, eventually, makeHome, runCli, serverProcesses, startServe, tempDir } from './helpers.js';

const INSPECTOR = join(ROOT, 'node_modules/@modelcontextprotocol/inspector-cli/build/index.js');
/** The demo server, but ignoring stdin EOF and SIGTERM (test/cli/fixtures/lingering-server.ts). */
const LINGERING = join(ROOT, 'dist/test/cli/fixtures/lingering-server.js');

/** An SDK client whose server command is `mcp-e2e connect`. */
function connectClient(url: string, home: string, extra: string[] = []) {
  const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, 'connect', url, '--home', home, ...extra], stderr: 'pipe' });
  const stderr: string[] = [];
  transport.stderr?.on('data', (c: Buffer) => stderr.push(c.toString()));
  const client = new Client({ name: 'cli-test', version: '1.0.0' });
  return { client, transport, stderr };
}

test('keygen, id and peers manage the home directory', () => {
  const home = tempDir();
  const env = { MCP_E2E_HOME: home };
  const k = runCli(['keygen'], { env });
  assert.equal(k.code, 0, k.stderr);
  assert.equal(statSync(join(home, 'identity.json')).mode & 0o777, 0o600);
  const again = runCli(['keygen'], { env });
  assert.equal(again.code, 2);
  assert.match(again.stderr, /already exists.*--force/);
  const id = JSON.parse(runCli(['id', '--json'], { env }).stdout);
  assert.deepEqual(Object.keys(id).sort(), ['fingerprint', 'node_id', 'public_key']);
  assert.equal(id.node_id, NodeIdentity.load(join(home, 'identity.json')).nodeId);
  // --home beats the environment variable.
  const other = tempDir();
  assert.equal(runCli(['keygen', '--home', other], { env }).code, 0);
  assert.notEqual(JSON.parse(runCli(['id', '--json', '--home', other], { env }).stdout).node_id, id.node_id);
  const forced = runCli(['keygen', '--force'], { env });
  assert.equal(forced.code, 0);
  assert.notEqual(JSON.parse(runCli(['id', '--json'], { env }).stdout).node_id, id.node_id);

  const peer = NodeIdentity.generate().nodeId;
  assert.equal(runCli(['peers', 'allow', peer, 'laptop'], { env }).code, 0);
  const listed = JSON.parse(runCli(['peers', 'list', '--json'], { env }).stdout);
  assert.deepEqual(listed.allowed, [{ node_id: peer, label: 'laptop' }]);
  assert.equal(runCli(['peers', 'deny', peer], { env }).code, 0);
  assert.deepEqual(JSON.parse(runCli(['peers', 'list', '--json'], { env }).stdout).allowed, []);
  const bad = runCli(['peers', 'allow', 'nope'], { env });
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr.trim().split('\n').length, 1);
  // A newline in a label would add a second allowed id.
  const smuggled = NodeIdentity.generate().nodeId;
  const injected = runCli(['peers', 'allow', peer, `laptop\n${smuggled}`], { env });
  assert.equal(injected.code, 2, injected.stderr);
  assert.match(injected.stderr, /control characters/);
  assert.deepEqual(JSON.parse(runCli(['peers', 'list', '--json'], { env }).stdout).allowed, []);
  // `peers forget` takes the endpoint in any spelling of the same address.
  assert.match(runCli(['peers', 'forget', 'LOCALHOST.:8765'], { env }).stdout, /localhost:8765 is not a known peer/);
  // A home directory (or trust file) others may write is refused, with the fix.
  chmodSync(home, 0o777);
  const open = runCli(['peers', 'list'], { env });
  assert.equal(open.code, 1);
  assert.match(open.stderr, /chmod go-w .*ERR_FILE_PERMISSIONS/);
  chmodSync(home, 0o700);
  writeFileSync(join(home, 'allowed_peers'), `${peer}\n`, { mode: 0o666 });
  chmodSync(join(home, 'allowed_peers'), 0o666);
  assert.match(runCli(['peers', 'list'], { env }).stderr, /allowed_peers let group or others write it/);
});

test('every user mistake gives one clear line', async () => {
  const { home } = makeHome();
  const cases: Array<[string[], RegExp]> = [
    [['id', '--home', tempDir()], /no identity at .*mcp-e2e keygen/],
    [['connect', 'not a url', '--home', home], /not a URL/],
    [['connect', 'http://x', '--home', home], /unsupported URL scheme/],
    [['serve', '--home', home], /needs the stdio MCP server/],
    [['serve', '--home', home, '--port', 'abc', '--', 'x'], /--port expects a number/],
    [['frobnicate'], /unknown command/],
    [['id', '--bogus'], /^mcp-e2e: error: unknown option --bogus \(see mcp-e2e id --help\)$/],
  ];
  for (const [args, re] of cases) {
    const r = runCli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr.trim(), re);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  // Nobody listening: exit 1, one line that says what to check.
  const closedPort = createServer();
  await new Promise<void>((r) => closedPort.listen(0, '127.0.0.1', r));
  const freePort = (closedPort.address() as { port: number }).port;
  await new Promise((r) => closedPort.close(r));
  const unreachable = runCli(['connect', `ws://127.0.0.1:${freePort}`, '--home', home]);
  assert.equal(unreachable.code, 1, unreachable.stderr);
  assert.match(unreachable.stderr, /ECONNREFUSED.*is `mcp-e2e serve` running/);
  assert.equal(unreachable.stderr.trim().split('\n').length, 1, unreachable.stderr);
  // A port in use.
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  const port = (blocker.address() as { port: number }).port;
  const r = runCli(['serve', '--home', home, '--allow-any-peer', '--port', String(port), '--', 'node', DEMO_SERVER]);
  blocker.close();
  assert.equal(r.code, 2);
  assert.match(r.stderr, new RegExp(`port ${port} .* already in use`));
  // A key file readable by others.
  chmodSync(join(home, 'identity.json'), 0o644);
  const loose = runCli(['id', '--home', home]);
  assert.equal(loose.code, 1);
  assert.match(loose.stderr, /chmod 600/);
});

test('MCP Inspector CLI through connect → serve → server-everything: tools/list and tools/call echo', async () => {
  const server = makeHome();
  const client = makeHome();
  allowPeer(join(server.home, 'allowed_peers'), client.identity.nodeId);
  const serve = await startServe(['--home', server.home], [process.execPath, EVERYTHING]);
  try {
    // The Inspector takes a command without flags of its own: wrap ours.
    const wrapper = join(client.home, 'connect.sh');
    writeFileSync(wrapper, `#!/bin/sh\nexec "${process.execPath}" "${CLI}" connect ${serve.url} --peer ${server.identity.nodeId} --home "${client.home}"\n`, { mode: 0o755 });
    // The Inspector looks for ../package.json relative to its working directory.
    const inspect = (...args: string[]) =>
      spawnSync(process.execPath, [INSPECTOR, wrapper, ...args], { cwd: join(ROOT, 'test'), encoding: 'utf8', timeout: 60_000 });
    const list = inspect('--method', 'tools/list');
    assert.equal(list.status, 0, list.stderr);
    const names = (JSON.parse(list.stdout).tools as Array<{ name: string }>).map((t) => t.name);
    assert.ok(names.includes('echo') && names.length >= 10, names.join(','));
    const call = inspect('--method', 'tools/call', '--tool-name', 'echo', '--tool-arg', 'message=through the tunnel');
    assert.equal(call.status, 0, call.stderr);
    assert.equal(JSON.parse(call.stdout).content[0].text, 'Echo: through the tunnel');
    await serve.waitFor((e) => String(e.msg).includes(client.identity.fingerprint));
  } finally {
    await serve.stop();
  }
});

test('serve refuses a client whose key is not allowed; connect says what to do', async () => {
  const server = makeHome();
  const stranger = makeHome();
  allowPeer(join(server.home, 'allowed_peers'), NodeIdentity.generate().nodeId);
  const serve = await startServe(['--home', server.home], [process.execPath, DEMO_SERVER]);
  try {
    const c = connectClient(serve.url, stranger.home, ['--peer', server.identity.nodeId]);
    await assert.rejects(c.client.connect(c.transport));
    await c.client.close();
    assert.match(c.stderr.join(''), /refused our identity.*peers allow/);
    const refusal = await serve.waitFor((e) => e.code === 'ERR_PEER_REJECTED');
    assert.match(String(refusal.msg), /not on the allowlist/);
    // Allowing it at run time (the file is re-read) lets it in without a restart.
    allowPeer(join(server.home, 'allowed_peers'), stranger.identity.nodeId);
    await serve.waitFor((e) => /allowlist reloaded: 2 peer/.test(String(e.msg)));
    const d = connectClient(serve.url, stranger.home, ['--peer', server.identity.nodeId]);
    await d.client.connect(d.transport);
    assert.ok((await d.client.listTools()).tools.some((t) => t.name === 'echo'));
    await d.client.close();
  } finally {
    await serve.stop();
  }
});

test('connect: trust on first use, then a changed server key is refused loudly', async () => {
  const client = makeHome();
  const first = makeHome();
  const second = makeHome();
  const serveA = await startServe(['--home', first.home, '--allow-any-peer'], [process.execPath, DEMO_SERVER]);
  const port = serveA.port;
  try {
    const c = connectClient(serveA.url, client.home);
    await c.client.connect(c.transport);
    await c.client.listTools();
    await c.client.close();
    const known = JSON.parse(readFileSync(join(client.home, 'known_peers.json'), 'utf8'));
    assert.equal(known.peers[`127.0.0.1:${port}`].node_id, first.identity.nodeId);
  } finally {
    await serveA.stop();
  }
  // Another identity now answers on the same address.
  const serveB = await startServe(['--home', second.home, '--allow-any-peer', '--port', String(port)], [process.execPath, DEMO_SERVER]);
  try {
    const c = connectClient(serveB.url, client.home);
    await assert.rejects(c.client.connect(c.transport));
    await c.client.close();
    const err = c.stderr.join('');
    assert.match(err, /has changed/);
    assert.match(err, /ERR_PEER_KEY_CHANGED/);
    assert.match(err, new RegExp(`peers forget 127.0.0.1:${port}`));
    // Forgetting the old identity is the way forward.
    assert.equal(runCli(['peers', 'forget', `127.0.0.1:${port}`, '--home', client.home]).code, 0);
    const d = connectClient(serveB.url, client.home);
    await d.client.connect(d.transport);
    await d.client.close();
  } finally {
    await serveB.stop();
  }
});

test('no child process survives: client killed, serve stopped, serve killed, child exiting', async () => {
  const server = makeHome();
  const client = makeHome();
  allowPeer(join(server.home, 'allowed_peers'), client.identity.nodeId);
  const pidOf = async (c: Client) => Number(((await c.callTool({ name: 'pid' })).content as Array<{ text: string }>)[0]!.text);

  // 1. The client side is killed: serve terminates that connection's child.
  let serve = await startServe(['--home', server.home], [process.execPath, DEMO_SERVER]);
  const a = connectClient(serve.url, client.home, ['--peer', server.identity.nodeId]);
  await a.client.connect(a.transport);
  const childA = await pidOf(a.client);
  assert.ok(alive(childA));
  process.kill(a.transport.pid!, 'SIGKILL');
  await eventually(() => !alive(childA), 10_000, 'the child of a killed client to exit');

  // 2. serve is stopped (SIGTERM): its children go, the client side notices.
  const b = connectClient(serve.url, client.home, ['--peer', server.identity.nodeId]);
  const closed = new Promise<void>((r) => (b.client.onclose = () => r()));
  await b.client.connect(b.transport);
  const childB = await pidOf(b.client);
  assert.equal(await serve.stop('SIGTERM'), 0);
  assert.ok(!alive(childB), 'serve exited before its child');
  await closed;

  // 3. serve is killed outright (SIGKILL, no cleanup possible), with a child
  // that ignores stdin EOF and SIGTERM: pdeathsig and the watchdog kill it.
  serve = await startServe(['--home', server.home], [process.execPath, LINGERING]);
  const c = connectClient(serve.url, client.home, ['--peer', server.identity.nodeId]);
  await c.client.connect(c.transport);
  const childC = await pidOf(c.client);
  assert.deepEqual(serverProcesses(serve.proc.pid!), [childC]);
  await serve.stop('SIGKILL');
  await eventually(() => !alive(childC), 10_000, 'the child of a SIGKILLed serve to exit');
  await c.client.close();

  // 4. The child exits by itself: its connection closes.
  serve = await startServe(['--home', server.home], [process.execPath, '-e', 'setTimeout(() => process.exit(3), 300)']);
  try {
    const d = connectClient(serve.url, client.home, ['--peer', server.identity.nodeId]);
    const dClosed = new Promise<void>((r) => (d.transport.onclose = () => r()));
    d.transport.start().catch(() => {});
    await serve.waitFor((e) => /server process exited with code 3/.test(String(e.msg)));
    await dClosed;
    assert.ok(!existsSync(`/proc/${d.transport.pid}`) || !alive(d.transport.pid!));
  } finally {
    await serve.stop();
  }
});

test('a child that ignores SIGTERM is killed after the grace period', async () => {
  const server = makeHome();
  const client = makeHome();
  allowPeer(join(server.home, 'allowed_peers'), client.identity.nodeId);
  const stubborn = 'process.on("SIGTERM", () => console.error("ignoring SIGTERM")); setInterval(() => {}, 1000); process.stdin.resume(); console.error("ready");';
  const serve = await startServe(['--home', server.home], [process.execPath, '-e', stubborn]);
  try {
    const t = new EncryptedWebSocketClientTransport(serve.url, { identity: client.identity, expectedPeer: server.identity.nodeId });
    await t.start();
    // Only once the child has installed its SIGTERM handler.
    await serve.waitFor((e) => /\[child\] ready/.test(String(e.msg)));
    const [pid] = serverProcesses(serve.proc.pid!);
    assert.ok(pid && alive(pid));
    await t.close();
    await serve.waitFor((e) => /ignoring SIGTERM/.test(String(e.msg)));
    await serve.waitFor((e) => /did not exit within \d+ ms of SIGTERM; killing it/.test(String(e.msg)));
    await eventually(() => !alive(pid!), 5000, 'the stubborn child to be killed');
  } finally {
    await serve.stop();
  }
});

test('an empty MCP_E2E_HOME counts as unset (the default home under HOME), and an empty --home is refused: neither is the working directory', () => {
  const fakeHome = tempDir();
  const k = runCli(['keygen'], { env: { MCP_E2E_HOME: '', HOME: fakeHome } });
  assert.equal(k.code, 0, k.stderr);
  assert.ok(statSync(join(fakeHome, '.mcp-e2e', 'identity.json')).isFile());
  const empty = runCli(['id', '--home', '']);
  assert.equal(empty.code, 2);
  assert.match(empty.stderr, /--home needs a directory/);
});
