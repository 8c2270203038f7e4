/**
 * EncryptedWebSocketClientTransport: construction rules, lifecycle
 * guarantees, trust on first use, backpressure, and hostile servers.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  allowAnyPeer,
  ContentType,
  EncryptedWebSocketClientTransport,
  EncryptedWebSocketServer,
  KnownPeersStore,
  NodeIdentity,
  type Session,
} from '../../src/index.js';
import { WebSocketServer, type ServerOptions, type WebSocket } from 'ws';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { McpE2eError } from '../../src/errors.js';
import { codeOf, connectClient, deferred, startServer, textOf, within } from './helpers.js';
import { startRawServer, startSilentServer } from './raw-peers.js';

const id = () => NodeIdentity.generate();

describe('EncryptedWebSocketClientTransport: construction', () => {
  test('refuses to be built without a way to authenticate the server', () => {
    assert.throws(() => new EncryptedWebSocketClientTransport('ws://127.0.0.1:1/', { identity: id() }), TypeError);
    assert.throws(() => new EncryptedWebSocketClientTransport('ws://127.0.0.1:1/', { allowAnyPeer: true }), TypeError);
    assert.throws(() => new EncryptedWebSocketClientTransport('http://127.0.0.1:1/', { identity: id(), allowAnyPeer: true }), TypeError);
    assert.throws(() => new EncryptedWebSocketClientTransport('ws://127.0.0.1:1/', { identity: id(), expectedPeer: 'abc' }), { code: 'ERR_INVALID_NODE_ID' });
    assert.throws(() => new EncryptedWebSocketClientTransport('ws://127.0.0.1:1/', { identity: id(), allowAnyPeer: true, framings: [] }), RangeError);
    assert.throws(() => new EncryptedWebSocketClientTransport('ws://127.0.0.1:1/', { enableEncryption: false, expectedPeer: id().nodeId }), TypeError);
    assert.throws(() => new EncryptedWebSocketClientTransport('ws://127.0.0.1:1/', { identity: id(), allowAnyPeer: true, maxMessageBytes: 0 }), RangeError);
    // Plaintext needs nothing.
    assert.equal(new EncryptedWebSocketClientTransport('ws://127.0.0.1:1/', { enableEncryption: false }).mode, 'plaintext');
  });

  test('refuses more than one way to authenticate the server, naming them', () => {
    const pin = id().nodeId;
    const trust = allowAnyPeer();
    assert.throws(() => new EncryptedWebSocketClientTransport('ws://127.0.0.1:1/', { identity: id(), expectedPeer: pin, trust }), {
      name: 'TypeError',
      message: 'give one way to authenticate the server, not "expectedPeer" and "trust"',
    });
    assert.throws(() => new EncryptedWebSocketClientTransport('ws://127.0.0.1:1/', { identity: id(), trust, allowAnyPeer: true }), {
      name: 'TypeError',
      message: 'give one way to authenticate the server, not "trust" and "allowAnyPeer: true"',
    });
    assert.throws(() => new EncryptedWebSocketClientTransport('ws://127.0.0.1:1/', { identity: id(), expectedPeer: pin, allowAnyPeer: true }), /not "expectedPeer" and "allowAnyPeer: true"/);
    // One way, with allowAnyPeer: false beside it, is fine.
    assert.ok(new EncryptedWebSocketClientTransport('ws://127.0.0.1:1/', { identity: id(), expectedPeer: pin, allowAnyPeer: false }));
    assert.ok(new EncryptedWebSocketClientTransport('ws://127.0.0.1:1/', { identity: id(), trust }));
  });

  test('refuses an option it does not know, naming it', () => {
    assert.throws(() => new EncryptedWebSocketClientTransport('ws://127.0.0.1:1/', { enableEncrypton: false } as never), {
      name: 'TypeError',
      message: /EncryptedWebSocketClientTransport: unknown option "enableEncrypton"/,
    });
    assert.throws(() => new EncryptedWebSocketClientTransport('ws://127.0.0.1:1/', { identity: id(), allowAnyPeer: true, limits: {} } as never), {
      name: 'TypeError',
      message: /unknown option "limits"/,
    });
    // Every known option is accepted.
    new EncryptedWebSocketClientTransport('ws://127.0.0.1:1/', {
      identity: id(), allowAnyPeer: true, enableEncryption: true, signatures: false, framings: ['json'], headers: {},
      maxMessageBytes: 1024, handshakeTimeoutMs: 1000, keepaliveIntervalMs: 0, idleTimeoutMs: 0, sendHighWaterMarkBytes: 1024, maxSendBufferBytes: 4096,
      session: { rekeyAfterRecords: 10, rekeyAfterBytes: 1024, rekeyAfterMs: 1000 },
    });
  });

  test('endpoint is host:port, with the scheme default port', () => {
    const t = (u: string) => new EncryptedWebSocketClientTransport(u, { identity: id(), allowAnyPeer: true }).endpoint;
    assert.equal(t('ws://example.org/x'), 'example.org:80');
    assert.equal(t('wss://example.org/x'), 'example.org:443');
    assert.equal(t('ws://127.0.0.1:8123/'), '127.0.0.1:8123');
    assert.equal(t('ws://[::1]:9/'), '[::1]:9');
  });
});

describe('EncryptedWebSocketClientTransport: lifecycle', () => {
  test('starting twice throws; onclose fires exactly once, also after close()', async () => {
    const srv = await startServer();
    try {
      const t = new EncryptedWebSocketClientTransport(srv.url, { identity: id(), expectedPeer: srv.identity.nodeId });
      let closes = 0;
      t.onclose = () => closes++;
      await t.start();
      assert.equal(t.peer?.nodeId, srv.identity.nodeId);
      await assert.rejects(t.start(), /already started/);
      await t.close();
      await t.close();
      assert.equal(closes, 1);
      await assert.rejects(t.send({ jsonrpc: '2.0', method: 'notifications/initialized' }), { code: 'ERR_CONNECTION_CLOSED' });
    } finally {
      await srv.close();
    }
  });

  test('close() before start() fires onclose once; start() then fails', async () => {
    const t = new EncryptedWebSocketClientTransport('ws://127.0.0.1:9/', { identity: id(), allowAnyPeer: true });
    let closes = 0;
    t.onclose = () => closes++;
    await t.close();
    await assert.rejects(t.start(), { code: 'ERR_CONNECTION_CLOSED' });
    assert.equal(closes, 1);
  });

  test('close() during the handshake ends start() with ERR_CONNECTION_CLOSED and onclose once', async () => {
    const silent = await startSilentServer();
    try {
      const t = new EncryptedWebSocketClientTransport(silent.url, { identity: id(), allowAnyPeer: true });
      let closes = 0;
      t.onclose = () => closes++;
      const starting = t.start();
      await within(silent.firstMessage, 5000, 'handshake step 1');
      await t.close();
      await assert.rejects(starting, { code: 'ERR_CONNECTION_CLOSED' });
      assert.equal(closes, 1);
    } finally {
      await silent.close();
    }
  });

  test('close() while connecting ends start() with ERR_CONNECTION_CLOSED and onclose once', async () => {
    const silent = await startSilentServer();
    try {
      const t = new EncryptedWebSocketClientTransport(silent.url, { identity: id(), allowAnyPeer: true });
      let closes = 0;
      t.onclose = () => closes++;
      const starting = t.start();
      const closing = t.close();
      await assert.rejects(starting, { code: 'ERR_CONNECTION_CLOSED' });
      await closing;
      assert.equal(closes, 1);
    } finally {
      await silent.close();
    }
  });

  test('no server listening: ERR_CONNECT_FAILED', async () => {
    const srv = await startServer();
    const url = srv.url;
    await srv.close();
    const t = new EncryptedWebSocketClientTransport(url, { identity: id(), allowAnyPeer: true });
    const errs: Error[] = [];
    t.onerror = (e) => errs.push(e);
    await assert.rejects(t.start(), { code: 'ERR_CONNECT_FAILED' });
    assert.equal(codeOf(errs[0]), 'ERR_CONNECT_FAILED');
  });

  test('a server that never answers the handshake: ERR_HANDSHAKE_TIMEOUT within handshakeTimeoutMs', async () => {
    const silent = await startSilentServer();
    try {
      const t = new EncryptedWebSocketClientTransport(silent.url, { identity: id(), allowAnyPeer: true, handshakeTimeoutMs: 150 });
      // It accepted our subprotocol and said nothing: the message says what kind of server does that.
      await assert.rejects(t.start(), { code: 'ERR_HANDSHAKE_TIMEOUT', message: /accepted the mcp-e2e\.v2 subprotocol but did not answer .*plain MCP WebSocket server/ });
    } finally {
      await silent.close();
    }
  });
});

describe('EncryptedWebSocketClientTransport: a plain MCP WebSocket server (issue 10, item 4)', () => {
  /** Start against a real `ws` server built with `options`; the error, how long it took, and what went to onerror. */
  async function against(options: ServerOptions, path = '/') {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, ...options });
    await once(wss, 'listening');
    try {
      const url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}${path}`;
      // The default handshake timeout, explicitly: the failure must come long before it.
      const t = new EncryptedWebSocketClientTransport(url, { identity: id(), allowAnyPeer: true, handshakeTimeoutMs: 10_000 });
      const errs: Error[] = [];
      t.onerror = (e) => errs.push(e);
      const started = Date.now();
      const err = await t.start().then(() => assert.fail('started'), (e: unknown) => e as McpE2eError);
      return { url, err, ms: Date.now() - started, errs, closed: t.closed };
    } finally {
      for (const c of wss.clients) c.terminate();
      await new Promise((r) => wss.close(r));
    }
  }

  test('the upgrade succeeds without a subprotocol: ERR_SUBPROTOCOL at once, saying what the server is', async () => {
    const r = await against({ handleProtocols: () => false }, '/message');
    assert.equal(r.err.code, 'ERR_SUBPROTOCOL');
    assert.equal(r.err.message, `${r.url} is a plain MCP WebSocket server (it did not select the mcp-e2e.v2 subprotocol), or an mcp-e2e server of another protocol version`);
    assert.ok(r.ms < 5000, `failed after ${r.ms} ms, the handshake timeout is 10000 ms`);
    assert.deepEqual(r.errs.map(codeOf), ['ERR_SUBPROTOCOL']);
    assert.equal(r.closed, true);
  });

  test('the upgrade is answered with HTTP 400 (a ws server at another path): ERR_SUBPROTOCOL at once', async () => {
    const r = await against({ path: '/message' }, '/');
    assert.equal(r.err.code, 'ERR_SUBPROTOCOL');
    assert.equal(r.err.message, `${r.url.replace(/\/$/, '')} is not an mcp-e2e endpoint: it refused the WebSocket upgrade with HTTP 400, as a plain MCP WebSocket server does at a path it does not serve`);
    assert.ok(r.ms < 5000, `failed after ${r.ms} ms, the handshake timeout is 10000 ms`);
    assert.equal(r.closed, true);
  });

  test('a credential in the URL stays out of the message', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: () => false });
    await once(wss, 'listening');
    try {
      const t = new EncryptedWebSocketClientTransport(`ws://user:secret@127.0.0.1:${(wss.address() as AddressInfo).port}/`, { identity: id(), allowAnyPeer: true });
      const err = await t.start().then(() => assert.fail('started'), (e: unknown) => e as McpE2eError);
      assert.equal(err.code, 'ERR_SUBPROTOCOL');
      assert.doesNotMatch(err.message, /secret|user/);
    } finally {
      await new Promise((r) => wss.close(r));
    }
  });
});

describe('EncryptedWebSocketClientTransport: trust on first use', () => {
  test('KnownPeersStore records the server at host:port, accepts it again, and refuses a changed key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-e2e-tofu-'));
    try {
      const store = new KnownPeersStore(join(dir, 'known_peers.json'));
      const me = id();
      const first = await startServer();
      const endpoint = `127.0.0.1:${first.port}`;
      const c1 = await connectClient(first.url, { identity: me, trust: store });
      assert.equal(store.get(endpoint), first.identity.nodeId);
      await c1.client.close();
      const c2 = await connectClient(first.url, { identity: me, trust: store });
      await c2.client.close();
      await first.close();

      // Another identity now answers at the same endpoint.
      const impostor = new EncryptedWebSocketServer({ identity: id(), allowAnyPeer: true, onConnection: () => {} });
      await impostor.listen(first.port, '127.0.0.1');
      try {
        const t = new EncryptedWebSocketClientTransport(first.url, { identity: me, trust: store });
        await assert.rejects(t.start(), { code: 'ERR_PEER_KEY_CHANGED' });
        assert.equal(store.get(endpoint), first.identity.nodeId, 'the record is unchanged');
      } finally {
        await impostor.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('EncryptedWebSocketClientTransport: sending', () => {
  test('backpressure: send() waits while the socket is full and fails with ERR_SEND_BUFFER_FULL past the bound', async () => {
    const srv = await startServer();
    try {
      const c = await connectClient(srv.url, {
        identity: id(),
        allowAnyPeer: true,
        sendHighWaterMarkBytes: 64 * 1024,
        maxSendBufferBytes: 256 * 1024,
      });
      const serverSocket = (srv.transports[0] as unknown as { socket: WebSocket }).socket;
      serverSocket.pause(); // the server stops reading
      const note = (bytes: number) => ({ jsonrpc: '2.0' as const, method: 'notifications/test', params: { pad: 'p'.repeat(bytes) } });
      // Larger than any loopback socket buffer, so the socket stays above the high-water mark.
      const big = c.transport.send(note(15 * 1024 * 1024));
      await big; // handed to the socket: nothing was queued before it
      let queuedResolved = false;
      const queued = c.transport.send(note(200 * 1024)).then(() => (queuedResolved = true));
      await assert.rejects(c.transport.send(note(200 * 1024)), { code: 'ERR_SEND_BUFFER_FULL' });
      assert.equal(queuedResolved, false, 'the queued send waits for the socket to drain');
      assert.equal(c.transport.closed, false, 'a full buffer does not end the connection');
      serverSocket.resume();
      await within(queued, 10_000, 'the queued send after the server resumes');
      assert.equal(textOf(await c.client.callTool({ name: 'add', arguments: { a: 5, b: 5 } })), '10');
      await c.client.close();
    } finally {
      await srv.close();
    }
  });

  test('messages above maxMessageBytes are refused locally with ERR_FRAME_TOO_LARGE; the session continues', async () => {
    const srv = await startServer();
    try {
      const c = await connectClient(srv.url, { identity: id(), allowAnyPeer: true, maxMessageBytes: 1000 });
      await assert.rejects(
        c.transport.send({ jsonrpc: '2.0', method: 'notifications/test', params: { pad: 'x'.repeat(2000) } }),
        { code: 'ERR_FRAME_TOO_LARGE' },
      );
      assert.equal(textOf(await c.client.callTool({ name: 'add', arguments: { a: 1, b: 2 } })), '3');
      await c.client.close();
    } finally {
      await srv.close();
    }
  });
});

describe('EncryptedWebSocketClientTransport: hostile server', () => {
  async function againstRawServer(act: (ws: WebSocket, session: Session) => void) {
    const identity = id();
    const server = await startRawServer(identity, act);
    const t = new EncryptedWebSocketClientTransport(server.url, { identity: id(), expectedPeer: identity.nodeId });
    const errors: Error[] = [];
    const closed = deferred();
    const messages: unknown[] = [];
    const controls: unknown[] = [];
    t.onerror = (e) => errors.push(e);
    t.onclose = () => closed.resolve();
    t.onmessage = (m) => messages.push(m);
    t.oncontrol = (m) => controls.push(m);
    await t.start();
    return { t, errors, closed: closed.promise, messages, controls, server };
  }

  const cases: Array<[string, (ws: WebSocket, s: Session) => void, string, number]> = [
    ['invalid UTF-8', (ws, s) => ws.send(s.seal(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]))), 'ERR_INVALID_MESSAGE', 4002],
    ['invalid JSON', (ws, s) => ws.send(s.seal('{"jsonrpc":')), 'ERR_INVALID_MESSAGE', 4002],
    ['JSON that is not JSON-RPC', (ws, s) => ws.send(s.seal('{"hello":"world"}')), 'ERR_INVALID_MESSAGE', 4002],
    ['a plaintext JSON-RPC text frame', (ws) => ws.send('{"jsonrpc":"2.0","method":"notifications/x"}'), 'ERR_FRAME_MALFORMED', 4002],
    ['a replayed frame', (ws, s) => {
      const f = s.seal('{"jsonrpc":"2.0","method":"notifications/x"}');
      ws.send(f);
      ws.send(f);
    }, 'ERR_FRAME_COUNTER', 4002],
    ['a second handshake message', (ws) => ws.send(JSON.stringify({ type: 'key_exchange', version: 1, step: 1 })), 'ERR_FRAME_MALFORMED', 4002],
  ];
  for (const [name, act, code, closeCode] of cases) {
    test(`${name} from the server ends the connection with ${code}`, async () => {
      const r = await againstRawServer(act);
      try {
        await within(r.closed, 5000, 'the client to close');
        assert.ok(r.errors.some((e) => codeOf(e) === code), `client saw ${r.errors.map(codeOf)}`);
        const seen = await r.server.closes[0]!;
        assert.deepEqual(seen, { code: closeCode, reason: code });
        // A valid frame before the bad one still counts; none after it does.
        assert.ok(r.messages.length <= 1);
      } finally {
        await r.server.close();
      }
    });
  }

  test('a server that sends 100 KB before the handshake is cut off by the 4096-byte limit (1009, ERR_FRAME_TOO_LARGE)', async () => {
    const raw = await import('ws');
    const wss = new raw.WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: (p) => [...p][0] ?? false });
    await new Promise((r) => wss.once('listening', r));
    const seen = deferred<number>();
    wss.on('connection', (ws) => {
      ws.on('error', () => {});
      ws.on('close', (code) => seen.resolve(code));
      ws.send('x'.repeat(100 * 1024));
    });
    try {
      const port = (wss.address() as import('node:net').AddressInfo).port;
      const t = new EncryptedWebSocketClientTransport(`ws://127.0.0.1:${port}/`, { identity: id(), allowAnyPeer: true });
      await assert.rejects(t.start(), { code: 'ERR_FRAME_TOO_LARGE' });
      assert.equal(await within(seen.promise, 5000, 'the server to see the close'), 1009);
    } finally {
      for (const c of wss.clients) c.terminate();
      await new Promise((r) => wss.close(r));
    }
  });

  test('a malformed control message is dropped and reported; the connection stays', async () => {
    const r = await againstRawServer((ws, s) => {
      ws.send(s.seal('not json', ContentType.CONTROL));
      ws.send(s.seal('{"ok":true}', ContentType.CONTROL)); // no type: not a control message (§6.9)
      ws.send(s.seal('{"type":"Upper"}', ContentType.CONTROL)); // a type outside [a-z0-9._-]
      ws.send(s.seal('{"type":"x-test","n":1}', ContentType.CONTROL));
      ws.send(s.seal('{"jsonrpc":"2.0","method":"notifications/after"}'));
    });
    try {
      const got = deferred();
      r.t.onmessage = () => got.resolve();
      if (r.messages.length === 0) await within(got.promise, 5000, 'the MCP message after the control messages');
      assert.deepEqual(r.controls, [{ type: 'x-test', n: 1 }]);
      assert.equal(r.errors.filter((e) => codeOf(e) === 'ERR_INVALID_MESSAGE').length, 3);
      assert.equal(r.t.closed, false);
      await r.t.close();
    } finally {
      await r.server.close();
    }
  });
});
