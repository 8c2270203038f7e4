/**
 * EncryptedWebSocketServer: many isolated clients, authorisation, limits,
 * timeouts, and the rule that nothing large is read before authentication.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  ContentType,
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  EncryptedWebSocketClientTransport,
  EncryptedWebSocketServer,
  MAX_HANDSHAKE_MESSAGE_BYTES,
  NodeIdentity,
  PeerAllowList,
  SUBPROTOCOL_ENCRYPTED,
  SUBPROTOCOL_PLAINTEXT,
} from '../../src/index.js';
import { getMaxPayload } from '../../src/transport/ws-internals.js';
import { codeOf, describeCode, connectClient, deferred, makeMcpServer, startServer, textOf, within } from './helpers.js';
import { closeOf, openRaw, rawClientHandshake } from './raw-peers.js';

describe('EncryptedWebSocketServer', () => {
  test('the limits default to 10 s for the handshake and 15 s from TCP accept', () => {
    const s = new EncryptedWebSocketServer({ identity: NodeIdentity.generate(), allowAnyPeer: true, onConnection: () => {} });
    assert.equal(s.limits.handshakeTimeoutMs, DEFAULT_HANDSHAKE_TIMEOUT_MS);
    assert.equal(s.limits.handshakeTimeoutMs, 10_000);
    assert.equal(s.limits.upgradeTimeoutMs + s.limits.handshakeTimeoutMs, 15_000);
    assert.ok(s.limits.maxConnections > 0 && s.limits.maxPendingHandshakes > 0 && s.limits.keepaliveIntervalMs > 0);
  });

  test('refuses to start without an allowlist or policy unless allowAnyPeer', () => {
    const identity = NodeIdentity.generate();
    assert.throws(() => new EncryptedWebSocketServer({ identity, onConnection: () => {} }), TypeError);
    assert.throws(() => new EncryptedWebSocketServer({ identity, allowAnyPeer: true, allowedPeers: [], onConnection: () => {} }), TypeError);
    assert.throws(() => new EncryptedWebSocketServer({ identity, allowedPeers: ['nope'], onConnection: () => {} }), { code: 'ERR_INVALID_NODE_ID' });
    assert.throws(() => new EncryptedWebSocketServer({ identity, allowAnyPeer: true, limits: { maxConnections: 0 }, onConnection: () => {} }), RangeError);
  });

  test('refuses an option it does not know, naming it (at the top level, in limits and in limits.session)', () => {
    const identity = NodeIdentity.generate();
    const make = (extra: Record<string, unknown>) => new EncryptedWebSocketServer({ identity, allowAnyPeer: true, onConnection: () => {}, ...extra } as never);
    assert.throws(() => make({ enableEncrypton: false }), { name: 'TypeError', message: /EncryptedWebSocketServer: unknown option "enableEncrypton"/ });
    assert.throws(() => make({ messageHandler: () => {} }), { name: 'TypeError', message: /unknown option "messageHandler"/ });
    assert.throws(() => make({ limits: { maxConection: 1 } }), { name: 'TypeError', message: /unknown option "maxConection"/ });
    assert.throws(() => make({ limits: { session: { rekeyAfterFrame: 1 } } }), { name: 'TypeError', message: /unknown option "rekeyAfterFrame"/ });
    // The seed's (identity, options) shape is pointed at the class that has it.
    assert.throws(() => new EncryptedWebSocketServer(identity as never), { name: 'TypeError', message: /EncryptedMessageServer/ });
    // Every known option is accepted.
    make({ enableEncryption: true, allowPlaintext: true, signatures: true, framings: ['json'], path: '/mcp', limits: { maxConnections: 2, session: { rekeyAfterMs: 1000 } }, onError: () => {} });
  });

  test('enableEncryption: false serves plaintext only: no identity needed; trust options and allowPlaintext refused', () => {
    const onConnection = () => {};
    new EncryptedWebSocketServer({ enableEncryption: false, onConnection });
    new EncryptedWebSocketServer({ enableEncryption: false, identity: NodeIdentity.generate(), allowAnyPeer: true, onConnection });
    assert.throws(() => new EncryptedWebSocketServer({ enableEncryption: false, allowedPeers: [NodeIdentity.generate().nodeId], onConnection }), /need encryption/);
    assert.throws(() => new EncryptedWebSocketServer({ enableEncryption: false, trust: new PeerAllowList([]), onConnection }), /need encryption/);
    assert.throws(() => new EncryptedWebSocketServer({ enableEncryption: false, allowPlaintext: true, onConnection }), /plaintext only/);
    assert.throws(() => new EncryptedWebSocketServer({ enableEncryption: false, identity: 'me' as never, onConnection }), TypeError);
    assert.throws(() => new EncryptedWebSocketServer({ allowAnyPeer: true, onConnection }), /required for encryption/);
  });

  test('50 clients at once, each with its own session, identity and transport', async () => {
    const ids = Array.from({ length: 50 }, () => NodeIdentity.generate());
    const srv = await startServer({ allowedPeers: ids.map((i) => i.nodeId) });
    try {
      const clients = await Promise.all(ids.map((identity) => connectClient(srv.url, { identity, expectedPeer: srv.identity.nodeId })));
      assert.equal(srv.server.connections.length, 50);
      assert.equal(new Set(srv.transports.map((t) => t.e2eSessionId)).size, 50);
      const whos = await Promise.all(clients.map((c, i) => c.client.callTool({ name: 'echo', arguments: { message: `client ${i}` } })));
      whos.forEach((r, i) => assert.equal(textOf(r), `Echo: client ${i}`));
      const seen = await Promise.all(clients.map(async (c) => JSON.parse(textOf(await c.client.callTool({ name: 'whoami', arguments: {} }))).clientId));
      assert.deepEqual(seen, ids.map((i) => i.nodeId));

      // A 51st client forges a frame: only its own connection is closed.
      const intruder = NodeIdentity.generate();
      srv.server.allowList!.set([...ids.map((i) => i.nodeId), intruder.nodeId]);
      const { ws } = await rawClientHandshake(srv.url, intruder);
      const forged = Buffer.alloc(14 + 40, 0x5a);
      forged.writeUInt8(1, 0); // binary frame type
      forged.writeUInt8(0, 1); // unsigned
      forged.writeUInt32BE(0, 2); // epoch 0
      forged.writeUInt32BE(0, 6); // counter 0
      forged.writeUInt32BE(0, 10);
      const closed = closeOf(ws);
      ws.send(forged);
      assert.deepEqual(await closed, { code: 4002, reason: 'ERR_FRAME_DECRYPT' });
      const again = await Promise.all(clients.slice(1).map((c) => c.client.callTool({ name: 'add', arguments: { a: 1, b: 2 } })));
      again.forEach((r) => assert.equal(textOf(r), '3'));
      await Promise.all(clients.map((c) => c.client.close()));
    } finally {
      await srv.close();
    }
  });

  test('a client whose key is not on the allowlist is refused, and learns why', async () => {
    const allowed = NodeIdentity.generate();
    const intruder = NodeIdentity.generate();
    const srv = await startServer({ allowedPeers: [allowed.nodeId] });
    try {
      const transport = new EncryptedWebSocketClientTransport(srv.url, { identity: intruder, expectedPeer: srv.identity.nodeId });
      const errors: Error[] = [];
      const closed = deferred();
      transport.onerror = (e) => errors.push(e);
      transport.onclose = () => closed.resolve();
      const client = new Client({ name: 'intruder', version: '1' });
      const serverErr = srv.nextError();
      await assert.rejects(client.connect(transport));
      await within(closed.promise, 5000, 'the client transport to close');
      assert.ok(errors.some((e) => codeOf(e) === 'ERR_PEER_REJECTED'), `client saw ${errors.map(codeOf)}`);
      assert.equal(codeOf(await serverErr), 'ERR_PEER_REJECTED');
      assert.equal(srv.server.connections.length, 0);
    } finally {
      await srv.close();
    }
  });

  test('a raw client not on the allowlist sees close 4003 ERR_PEER_REJECTED', async () => {
    const srv = await startServer({ allowedPeers: [NodeIdentity.generate().nodeId] });
    try {
      const { ws } = await rawClientHandshake(srv.url, NodeIdentity.generate());
      assert.deepEqual(await closeOf(ws), { code: 4003, reason: 'ERR_PEER_REJECTED' });
    } finally {
      await srv.close();
    }
  });

  test('a server with an unexpected key is refused by the client (ERR_PEER_KEY_CHANGED) before it reveals itself; the server sees the claim, unauthenticated', async () => {
    const identity = NodeIdentity.generate();
    const srv = await startServer({ allowedPeers: [identity.nodeId] });
    try {
      const transport = new EncryptedWebSocketClientTransport(srv.url, { identity, expectedPeer: NodeIdentity.generate().nodeId });
      const serverErr = srv.nextError();
      await assert.rejects(transport.start(), { code: 'ERR_PEER_KEY_CHANGED' });
      assert.equal(describeCode(await serverErr), 'ERR_CONNECTION_CLOSED (peer: ERR_PEER_KEY_CHANGED)');
      assert.equal(transport.peer, undefined);
    } finally {
      await srv.close();
    }
  });

  test('the allowlist changes at run time; every change drops the open sessions of peers no longer on it', async () => {
    const a = NodeIdentity.generate();
    const b = NodeIdentity.generate();
    const list = new PeerAllowList([a.nodeId]);
    const srv = await startServer({ allowedPeers: list });
    try {
      assert.equal(srv.server.allowList, list);
      const refused = new EncryptedWebSocketClientTransport(srv.url, { identity: b, expectedPeer: srv.identity.nodeId });
      const refusedErr = deferred<Error>();
      refused.onerror = (e) => refusedErr.resolve(e);
      await refused.start();
      assert.equal(codeOf(await within(refusedErr.promise, 5000, 'the refusal')), 'ERR_PEER_REJECTED');

      list.set([a.nodeId, b.nodeId]);
      const cb = await connectClient(srv.url, { identity: b, expectedPeer: srv.identity.nodeId });
      assert.equal(textOf(await cb.client.callTool({ name: 'add', arguments: { a: 2, b: 2 } })), '4');
      const ca = await connectClient(srv.url, { identity: a, expectedPeer: srv.identity.nodeId });

      // No call needed: the server hears of the change and revalidates at once.
      list.set([a.nodeId]);
      await within(cb.closed, 5000, 'b to be disconnected');
      assert.equal(srv.server.revalidatePeers(), 0, 'nothing left to drop, and b is not dropped twice');
      assert.equal(srv.errors.filter((e) => codeOf(e) === 'ERR_PEER_REJECTED').length, 2, 'the first refusal and the revocation, each reported once');
      assert.ok(cb.errors.some((e) => codeOf(e) === 'ERR_PEER_REJECTED'));
      assert.equal(textOf(await ca.client.callTool({ name: 'add', arguments: { a: 1, b: 1 } })), '2');
      await ca.client.close();
    } finally {
      await srv.close();
    }
  });

  test('before the handshake, a 100 KB frame is refused with close 1009 and nothing above 4096 bytes is read', async () => {
    const srv = await startServer();
    try {
      const ws = await openRaw(srv.url, [SUBPROTOCOL_ENCRYPTED]);
      const closed = closeOf(ws);
      ws.send(Buffer.alloc(100 * 1024, 0x61).toString());
      assert.equal((await closed).code, 1009);
      assert.equal(codeOf(await srv.nextError()), 'ERR_FRAME_TOO_LARGE');

      // Just above the handshake limit is refused too.
      const ws2 = await openRaw(srv.url, [SUBPROTOCOL_ENCRYPTED]);
      const closed2 = closeOf(ws2);
      ws2.send(Buffer.alloc(MAX_HANDSHAKE_MESSAGE_BYTES + 1, 0x61));
      assert.equal((await closed2).code, 1009);
    } finally {
      await srv.close();
    }
  });

  test('after the handshake the limit is raised to the session frame limit, and a large message passes', async () => {
    const srv = await startServer({ limits: { maxMessageBytes: 1024 * 1024 } });
    try {
      const c = await connectClient(srv.url, { identity: NodeIdentity.generate(), allowAnyPeer: true, maxMessageBytes: 1024 * 1024 });
      const st = srv.transports[0]!;
      const limit = getMaxPayload((st as unknown as { socket: import('ws').WebSocket }).socket);
      assert.ok(limit > 1024 * 1024 && limit < 1024 * 1024 + 1024, `limit ${limit}`);
      // 100 KB now passes in both directions.
      assert.equal(textOf(await c.client.callTool({ name: 'echo', arguments: { message: 'y'.repeat(100 * 1024) } })).length, 100 * 1024 + 6);
      // Above the server's message limit the server closes with 1009.
      await assert.rejects(c.client.callTool({ name: 'echo', arguments: { message: 'z'.repeat(1024 * 1024 + 10) } }), { code: 'ERR_FRAME_TOO_LARGE' });
      assert.equal(c.transport.closed, false, 'a refused send leaves the connection open');
      await c.client.close();
    } finally {
      await srv.close();
    }
  });

  test('a connection that never sends the handshake is closed with 4008 ERR_HANDSHAKE_TIMEOUT', async () => {
    const srv = await startServer({ limits: { handshakeTimeoutMs: 150 } });
    try {
      const ws = await openRaw(srv.url, [SUBPROTOCOL_ENCRYPTED]);
      assert.deepEqual(await closeOf(ws), { code: 4008, reason: 'ERR_HANDSHAKE_TIMEOUT' });
      assert.equal(codeOf(await srv.nextError()), 'ERR_HANDSHAKE_TIMEOUT');
    } finally {
      await srv.close();
    }
  });

  test('a stalled HTTP upgrade is dropped after upgradeTimeoutMs', async () => {
    const srv = await startServer({ limits: { upgradeTimeoutMs: 150, handshakeTimeoutMs: 150 } });
    try {
      const sock = connect(srv.port, '127.0.0.1');
      await once(sock, 'connect');
      const started = Date.now();
      sock.write('GET /mcp HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n'); // never finished
      sock.resume();
      await within(once(sock, 'close'), 5000, 'the server to drop the stalled socket');
      assert.ok(Date.now() - started < 2000);
    } finally {
      await srv.close();
    }
  });

  test('an upgraded connection whose peer ignores the close frame is dropped by the absolute deadline', async () => {
    const srv = await startServer({ limits: { upgradeTimeoutMs: 100, handshakeTimeoutMs: 100 } });
    try {
      // A raw TCP peer that completes the upgrade, then never speaks or answers.
      const started = Date.now();
      const sock = connect(srv.port, '127.0.0.1');
      await once(sock, 'connect');
      sock.write(
        'GET /mcp HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          `Sec-WebSocket-Key: ${Buffer.alloc(16, 1).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ${SUBPROTOCOL_ENCRYPTED}\r\n\r\n`,
      );
      sock.resume();
      await within(once(sock, 'close'), 5000, 'the server to drop the silent peer');
      // The absolute deadline (accept + 100 + 100 ms) fires well before the
      // close-frame grace (handshake timeout + CLOSE_GRACE_MS = 1.1 s) would.
      assert.ok(Date.now() - started < 1000, `dropped after ${Date.now() - started} ms`);
    } finally {
      await srv.close();
    }
  });

  test('maxPendingHandshakes: a newcomer to a full table evicts the oldest pending handshake of the fullest address (1013 ERR_LIMIT_REACHED)', async () => {
    const srv = await startServer({ limits: { maxPendingHandshakes: 2 } });
    try {
      const first = await openRaw(srv.url, [SUBPROTOCOL_ENCRYPTED]);
      const firstClosed = closeOf(first);
      const second = await openRaw(srv.url, [SUBPROTOCOL_ENCRYPTED]);
      const third = await openRaw(srv.url, [SUBPROTOCOL_ENCRYPTED], { localAddress: '127.0.0.2' });
      assert.deepEqual(await firstClosed, { code: 1013, reason: 'ERR_LIMIT_REACHED' });
      assert.match((await srv.errorWithCode('ERR_LIMIT_REACHED')).message, /evicted/);
      assert.equal(srv.server.pendingHandshakes, 2);
      assert.equal(second.readyState, second.OPEN);
      second.terminate();
      third.terminate();
    } finally {
      await srv.close();
    }
  });

  test('maxConnections: a client over the limit is closed with 1013 before the handshake and reports ERR_LIMIT_REACHED (retryable); the others are untouched', async () => {
    const srv = await startServer({ limits: { maxConnections: 1 } });
    try {
      const a = await connectClient(srv.url, { identity: NodeIdentity.generate(), allowAnyPeer: true });
      const b = new EncryptedWebSocketClientTransport(srv.url, { identity: NodeIdentity.generate(), allowAnyPeer: true });
      await assert.rejects(b.start(), { code: 'ERR_LIMIT_REACHED', peerCode: 'ERR_LIMIT_REACHED', fromPeer: false });
      assert.equal(textOf(await a.client.callTool({ name: 'add', arguments: { a: 3, b: 4 } })), '7');
      await a.client.close();
    } finally {
      await srv.close();
    }
  });

  test('Origin: upgrades from web pages are refused with 403 (ERR_ORIGIN_REFUSED) unless their origin is allowed; clients without Origin are not affected', async () => {
    assert.throws(() => new EncryptedWebSocketServer({ identity: NodeIdentity.generate(), allowAnyPeer: true, allowedOrigins: ['not an origin'], onConnection: () => {} }), TypeError);
    // Plaintext allowed: the case where a web page could otherwise call tools with no key at all.
    const srv = await startServer({ allowPlaintext: true, allowedOrigins: ['https://good.example'] });
    try {
      await assert.rejects(openRaw(srv.url, [SUBPROTOCOL_PLAINTEXT], { origin: 'https://evil.example' }), /403/);
      assert.match((await srv.errorWithCode('ERR_ORIGIN_REFUSED')).message, /evil\.example/);
      await assert.rejects(openRaw(srv.url, [SUBPROTOCOL_ENCRYPTED], { origin: 'null' }), /403/);
      const listed = await openRaw(srv.url, [SUBPROTOCOL_PLAINTEXT], { origin: 'https://GOOD.example:443' });
      listed.terminate();
      const c = await connectClient(srv.url, { identity: NodeIdentity.generate(), allowAnyPeer: true });
      assert.equal(textOf(await c.client.callTool({ name: 'add', arguments: { a: 1, b: 2 } })), '3');
      await c.client.close();
    } finally {
      await srv.close();
    }
  });

  test('subprotocol: plaintext is refused by default (1008 ERR_PLAINTEXT_REFUSED), none at all is ERR_SUBPROTOCOL', async () => {
    const srv = await startServer();
    try {
      const plain = await openRaw(srv.url, [SUBPROTOCOL_PLAINTEXT]);
      assert.deepEqual(await closeOf(plain), { code: 1008, reason: 'ERR_PLAINTEXT_REFUSED' });
      assert.equal(codeOf(await srv.nextError()), 'ERR_PLAINTEXT_REFUSED');
      const none = await openRaw(srv.url, undefined);
      assert.deepEqual(await closeOf(none), { code: 1008, reason: 'ERR_SUBPROTOCOL' });
    } finally {
      await srv.close();
    }
  });

  test('keepalive: a peer that stops answering pings is closed with 4008 ERR_IDLE_TIMEOUT', async () => {
    const srv = await startServer({ limits: { keepaliveIntervalMs: 50 } });
    try {
      const { ws } = await rawClientHandshake(srv.url, NodeIdentity.generate(), { ws: { autoPong: false } });
      assert.deepEqual(await closeOf(ws), { code: 4008, reason: 'ERR_IDLE_TIMEOUT' });
    } finally {
      await srv.close();
    }
  });

  /** Resolves once the server's socket of its first connection has had `n` pongs (keepalive round trips). */
  async function pongs(srv: Awaited<ReturnType<typeof startServer>>, n: number, what: string): Promise<void> {
    const ws = (srv.transports[0] as unknown as { socket: import('ws').WebSocket }).socket;
    let seen = 0;
    const all = deferred();
    ws.on('pong', () => {
      if (++seen === n) all.resolve();
    });
    await within(all.promise, 5000, what);
  }

  test('keepalive: a peer that answers pings stays connected across several intervals', async () => {
    const srv = await startServer({ limits: { keepaliveIntervalMs: 30 } });
    try {
      const c = await connectClient(srv.url, { identity: NodeIdentity.generate(), allowAnyPeer: true });
      await pongs(srv, 5, 'five keepalive round trips');
      assert.equal(c.transport.closed, false);
      await c.client.close();
    } finally {
      await srv.close();
    }
  });

  test('keepalive: connections share one timer; a peer dropped for not answering leaves the others pinged', async () => {
    const srv = await startServer({ limits: { keepaliveIntervalMs: 40 } });
    try {
      const c = await connectClient(srv.url, { identity: NodeIdentity.generate(), allowAnyPeer: true });
      const { ws: silent } = await rawClientHandshake(srv.url, NodeIdentity.generate(), { ws: { autoPong: false } });
      assert.deepEqual(await closeOf(silent), { code: 4008, reason: 'ERR_IDLE_TIMEOUT' });
      await pongs(srv, 3, 'three keepalive round trips after the other peer was dropped');
      assert.equal(c.transport.closed, false);
      await c.client.close();
    } finally {
      await srv.close();
    }
  });

  test('idle timeout: no MCP message for idleTimeoutMs closes with ERR_IDLE_TIMEOUT', async () => {
    const srv = await startServer({ limits: { idleTimeoutMs: 100 } });
    try {
      const c = await connectClient(srv.url, { identity: NodeIdentity.generate(), allowAnyPeer: true });
      await within(c.closed, 5000, 'the idle connection to close');
      assert.ok(c.errors.some((e) => codeOf(e) === 'ERR_IDLE_TIMEOUT'), `client saw ${c.errors.map(codeOf)}`);
    } finally {
      await srv.close();
    }
  });

  test('onConnection failing closes only that connection and is reported', async () => {
    const srv = await startServer({
      onConnection: () => {
        throw new Error('application refused');
      },
    });
    try {
      const t = new EncryptedWebSocketClientTransport(srv.url, { identity: NodeIdentity.generate(), allowAnyPeer: true });
      const closed = deferred();
      t.onclose = () => closed.resolve();
      await t.start();
      assert.equal((await srv.nextError()).message, 'application refused');
      await within(closed.promise, 5000, 'the connection to close');
    } finally {
      await srv.close();
    }
  });

  test('close() disconnects every client; each client sees onclose exactly once', async () => {
    const srv = await startServer();
    const clients = await Promise.all([0, 1, 2].map(() => connectClient(srv.url, { identity: NodeIdentity.generate(), allowAnyPeer: true })));
    const counts = clients.map(() => 0);
    clients.forEach((c, i) => {
      const prev = c.transport.onclose;
      c.transport.onclose = () => {
        counts[i]!++;
        prev?.();
      };
    });
    await srv.close();
    await Promise.all(clients.map((c) => within(c.closed, 5000, 'the client to close')));
    await Promise.all(clients.map((c) => c.client.close()));
    assert.deepEqual(counts, [1, 1, 1]);
  });

  test('attach() to an existing HTTP server serves upgrades on its path and leaves other requests alone', async () => {
    const http = createServer((_req, res) => res.end('plain http'));
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const port = (http.address() as AddressInfo).port;
    const identity = NodeIdentity.generate();
    const server = new EncryptedWebSocketServer({
      identity,
      allowAnyPeer: true,
      path: '/mcp',
      onConnection: async (t) => {
        await makeMcpServer().connect(t);
      },
    });
    server.attach(http);
    try {
      const body = await new Promise<string>((resolve, reject) => {
        request({ port, host: '127.0.0.1', path: '/' }, (res) => {
          let text = '';
          res.on('data', (d) => (text += d));
          res.on('end', () => resolve(text));
        })
          .on('error', reject)
          .end();
      });
      assert.equal(body, 'plain http');
      const c = await connectClient(`ws://127.0.0.1:${port}/mcp?x=1`, { identity: NodeIdentity.generate(), expectedPeer: identity.nodeId });
      assert.equal(textOf(await c.client.callTool({ name: 'add', arguments: { a: 20, b: 22 } })), '42');
      await c.client.close();
    } finally {
      await server.close();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    }
  });

  test('plain HTTP requests to a listen() server get 426 Upgrade Required', async () => {
    const srv = await startServer();
    try {
      const status = await new Promise<number>((resolve, reject) => {
        request({ port: srv.port, host: '127.0.0.1', path: '/' }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        })
          .on('error', reject)
          .end();
      });
      assert.equal(status, 426);
    } finally {
      await srv.close();
    }
  });

  test('server transport: start() twice throws, onclose fires once, send() ignores unknown options', async () => {
    const srv = await startServer();
    try {
      const c = await connectClient(srv.url, { identity: NodeIdentity.generate(), allowAnyPeer: true });
      const st = srv.transports[0]!;
      await assert.rejects(st.start(), /already started/);
      let closes = 0;
      const prev = st.onclose;
      st.onclose = () => {
        closes++;
        prev?.();
      };
      await st.send({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'x' } }, {
        relatedRequestId: 1,
        requestSignal: new AbortController().signal,
      } as never);
      await c.client.close();
      await within(new Promise<void>((resolve) => (st.closed ? resolve() : st.socket.once('close', () => resolve()))), 5000, 'the server side to close');
      await st.close();
      assert.equal(closes, 1);
    } finally {
      await srv.close();
    }
  });

  test('before start() the socket is paused after one frame; start() then delivers everything in order', async () => {
    const got = deferred<import('../../src/index.js').EncryptedWebSocketServerTransport>();
    const srv = await startServer({ onConnection: (t) => got.resolve(t) });
    try {
      const { ws, session } = await rawClientHandshake(srv.url, NodeIdentity.generate());
      const st = await within(got.promise, 5000, 'the connection');
      const firstArrived = new Promise((resolve) => st.socket.once('message', resolve));
      for (let i = 0; i < 100; i++) ws.send(session.seal(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/n', params: { i } })));
      await within(firstArrived, 5000, 'the first frame');
      assert.equal(st.socket.isPaused, true, 'nobody consumes yet: the socket is paused');
      const seen: number[] = [];
      const all = deferred();
      st.onmessage = (m) => {
        seen.push((m as unknown as { params: { i: number } }).params.i);
        if (seen.length === 100) all.resolve();
      };
      await st.start();
      await within(all.promise, 5000, 'all 100 messages');
      assert.deepEqual(seen, Array.from({ length: 100 }, (_, i) => i));
      ws.terminate();
    } finally {
      await srv.close();
    }
  });

  test('plaintext mode: a binary frame or bad JSON ends the connection with 4002 ERR_INVALID_MESSAGE', async () => {
    const srv = await startServer({ allowPlaintext: true });
    try {
      const a = await openRaw(srv.url, [SUBPROTOCOL_PLAINTEXT]);
      const closedA = closeOf(a);
      a.send(Buffer.from('{"jsonrpc":"2.0","method":"notifications/x"}'), { binary: true });
      assert.deepEqual(await closedA, { code: 4002, reason: 'ERR_INVALID_MESSAGE' });
      const b = await openRaw(srv.url, [SUBPROTOCOL_PLAINTEXT]);
      const closedB = closeOf(b);
      b.send('{"jsonrpc":');
      assert.deepEqual(await closedB, { code: 4002, reason: 'ERR_INVALID_MESSAGE' });
    } finally {
      await srv.close();
    }
  });

  test('control frames reach oncontrol on both sides and never the MCP layer', async () => {
    const srv = await startServer();
    try {
      const c = await connectClient(srv.url, { identity: NodeIdentity.generate(), allowAnyPeer: true });
      const st = srv.transports[0]!;
      const atServer = deferred<unknown>();
      const atClient = deferred<unknown>();
      st.oncontrol = (m) => atServer.resolve(m);
      c.transport.oncontrol = (m) => atClient.resolve(m);
      const mcpSeen: unknown[] = [];
      const sdkOnMessage = c.transport.onmessage!;
      c.transport.onmessage = (m, e) => {
        mcpSeen.push(m);
        sdkOnMessage(m, e);
      };
      await c.transport.sendControl({ type: 'peer_record', n: 1 });
      assert.deepEqual(await within(atServer.promise, 5000, 'the control message at the server'), { type: 'peer_record', n: 1 });
      await st.sendControl({ type: 'gossip', peers: [] });
      assert.deepEqual(await within(atClient.promise, 5000, 'the control message at the client'), { type: 'gossip', peers: [] });
      await c.client.callTool({ name: 'add', arguments: { a: 1, b: 1 } });
      assert.equal(mcpSeen.length, 1, 'only the tool result reached the MCP layer');
      assert.equal(ContentType.CONTROL, 2);
      await c.client.close();
    } finally {
      await srv.close();
    }
  });
});
