/**
 * Plaintext mode is exactly the SDK's WebSocket dialect (subprotocol `mcp`,
 * one JSON-RPC text frame per message): the SDK's own client talks to our
 * server, and our client talks to a third-party server (supergateway in
 * front of server-everything). Encryption never falls back to it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { WebSocketClientTransport } from '@modelcontextprotocol/sdk/client/websocket.js';
import { EncryptedWebSocketClientTransport, NodeIdentity, SUBPROTOCOL_ENCRYPTED, SUBPROTOCOL_PLAINTEXT } from '../../src/index.js';
import { codeOf, describeCode, connectClient, deferred, startServer, textOf, within, type ServerFixture } from './helpers.js';
import { closeOf, openRaw } from './raw-peers.js';

// The SDK's WebSocket client uses the global WebSocket, which Node 20 lacks.
(globalThis as { WebSocket?: unknown }).WebSocket ??= (await import('ws')).WebSocket;

const repo = (path: string) => fileURLToPath(new URL(`../../../${path}`, import.meta.url));

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

describe('plaintext: the SDK WebSocketClientTransport against our server', () => {
  let srv: ServerFixture;
  before(async () => {
    srv = await startServer({ allowPlaintext: true });
  });
  after(async () => {
    await srv.close();
  });

  test('initialize, tools/list, tools/call; the server sees no peer identity', async () => {
    const client = new Client({ name: 'sdk-ws-client', version: '1' });
    await client.connect(new WebSocketClientTransport(new URL(srv.url)));
    try {
      const { tools } = await client.listTools();
      assert.ok(tools.some((t) => t.name === 'echo'));
      assert.equal(textOf(await client.callTool({ name: 'echo', arguments: { message: 'plain' } })), 'Echo: plain');
      const who = JSON.parse(textOf(await client.callTool({ name: 'whoami', arguments: {} })));
      assert.equal(who.clientId, null, 'no authInfo on a plaintext connection');
      const st = srv.transports.at(-1)!;
      assert.equal(st.mode, 'plaintext');
      assert.equal(st.peer, undefined);
    } finally {
      await client.close();
    }
  });

  test('our own client in plaintext mode works too, and an encrypting client still gets encryption', async () => {
    const plain = await connectClient(srv.url, { enableEncryption: false });
    assert.equal(textOf(await plain.client.callTool({ name: 'add', arguments: { a: 1, b: 1 } })), '2');
    assert.equal(plain.transport.encrypted, false);
    await plain.client.close();
    const enc = await connectClient(srv.url, { identity: NodeIdentity.generate(), expectedPeer: srv.identity.nodeId });
    assert.equal(enc.transport.encrypted, true);
    assert.equal(srv.transports.at(-1)!.mode, 'encrypted');
    await enc.client.close();
  });

  test('the SDK client against an encryption-only server is refused with 1008 ERR_PLAINTEXT_REFUSED', async () => {
    const strict = await startServer();
    try {
      const t = new WebSocketClientTransport(new URL(strict.url));
      const closed = deferred();
      t.onclose = () => closed.resolve();
      await t.start();
      await within(closed.promise, 5000, 'the server to close the plaintext connection');
      assert.equal(codeOf(await strict.nextError()), 'ERR_PLAINTEXT_REFUSED');
      // Our plaintext client learns the code.
      const ours = new EncryptedWebSocketClientTransport(strict.url, { enableEncryption: false });
      const err = deferred<Error>();
      ours.onerror = (e) => err.resolve(e);
      await ours.start();
      // As an unauthenticated claim: a close reason is never taken as a fact.
      assert.equal(describeCode(await within(err.promise, 5000, 'the refusal')), 'ERR_CONNECTION_CLOSED (peer: ERR_PLAINTEXT_REFUSED)');
    } finally {
      await strict.close();
    }
  });
});

describe('plaintext only: a server with enableEncryption: false', () => {
  let srv: ServerFixture;
  before(async () => {
    srv = await startServer({ enableEncryption: false });
  });
  after(async () => {
    await srv.close();
  });

  test('serves the SDK WebSocketClientTransport with an McpServer; nobody is authenticated', async () => {
    const client = new Client({ name: 'sdk-ws-client', version: '1' });
    await client.connect(new WebSocketClientTransport(new URL(srv.url)));
    try {
      assert.equal(textOf(await client.callTool({ name: 'echo', arguments: { message: 'plain only' } })), 'Echo: plain only');
      assert.equal(srv.transports.at(-1)!.mode, 'plaintext');
      assert.equal(srv.transports.at(-1)!.peer, undefined);
    } finally {
      await client.close();
    }
  });

  test('an encrypting client is refused with 1008 ERR_SUBPROTOCOL, never served in clear', async () => {
    const mark = srv.errors.length;
    const t = new EncryptedWebSocketClientTransport(srv.url, { identity: NodeIdentity.generate(), expectedPeer: srv.identity.nodeId });
    await assert.rejects(t.start(), { code: 'ERR_CONNECTION_CLOSED', peerCode: 'ERR_SUBPROTOCOL' });
    assert.equal(codeOf(await srv.errorWithCode('ERR_SUBPROTOCOL', mark)), 'ERR_SUBPROTOCOL');
    const raw = await openRaw(srv.url, [SUBPROTOCOL_ENCRYPTED]);
    assert.equal(raw.protocol, SUBPROTOCOL_ENCRYPTED, 'answered, so that the refusal can carry its reason');
    assert.deepEqual(await closeOf(raw), { code: 1008, reason: 'ERR_SUBPROTOCOL' });
  });

  test('offered both subprotocols, it answers mcp; a server that encrypts answers mcp-e2e.v2', async () => {
    const raw = await openRaw(srv.url, [SUBPROTOCOL_ENCRYPTED, SUBPROTOCOL_PLAINTEXT]);
    assert.equal(raw.protocol, SUBPROTOCOL_PLAINTEXT);
    raw.terminate();
    const both = await startServer({ allowPlaintext: true });
    try {
      const enc = await openRaw(both.url, [SUBPROTOCOL_PLAINTEXT, SUBPROTOCOL_ENCRYPTED]);
      assert.equal(enc.protocol, SUBPROTOCOL_ENCRYPTED);
      enc.terminate();
    } finally {
      await both.close();
    }
  });
});

describe('plaintext: our client against supergateway + server-everything', () => {
  let gateway: ChildProcess;
  let url: string;
  before(async () => {
    const port = await freePort();
    const everything = `node ${repo('node_modules/@modelcontextprotocol/server-everything/dist/index.js')}`;
    gateway = spawn(process.execPath, [repo('node_modules/supergateway/dist/index.js'), '--stdio', everything, '--outputTransport', 'ws', '--port', String(port)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const listening = deferred();
    let log = '';
    const onData = (d: Buffer) => {
      log += d.toString();
      if (log.includes('Listening on port')) listening.resolve();
    };
    gateway.stdout!.on('data', onData);
    gateway.stderr!.on('data', onData);
    gateway.once('exit', (code) => listening.reject(new Error(`supergateway exited (${code}): ${log}`)));
    await within(listening.promise, 20_000, 'supergateway to listen');
    url = `ws://127.0.0.1:${port}/message`;
  });
  after(async () => {
    if (gateway.exitCode === null) {
      const exited = once(gateway, 'exit');
      gateway.kill('SIGTERM');
      await exited;
    }
  });

  test('initialize, tools/list, tools/call echo', async () => {
    const c = await connectClient(url, { enableEncryption: false });
    try {
      assert.equal(c.transport.peer, undefined);
      const { tools } = await c.client.listTools();
      assert.ok(tools.some((t) => t.name === 'echo'), `tools: ${tools.map((t) => t.name)}`);
      const r = await c.client.callTool({ name: 'echo', arguments: { message: 'through the gateway' } });
      assert.match(textOf(r), /through the gateway/);
    } finally {
      await c.client.close();
    }
  });

  test('an encrypting client never falls back to plaintext against it', async () => {
    // supergateway answers with whatever subprotocol is offered first, so the
    // upgrade succeeds; it never answers the handshake, nothing is sent in clear,
    // and the timeout says what kind of server behaves so (issue 10, item 4).
    const t = new EncryptedWebSocketClientTransport(url, { identity: NodeIdentity.generate(), allowAnyPeer: true, handshakeTimeoutMs: 1000 });
    const err = await t.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.equal(codeOf(err), 'ERR_HANDSHAKE_TIMEOUT', (err as Error)?.message);
    assert.match((err as Error).message, /accepted the mcp-e2e\.v2 subprotocol but did not answer the handshake within \d+ ms \(a plain MCP WebSocket server/);
    assert.equal(t.closed, true);
  });
});
