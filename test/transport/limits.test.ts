/**
 * Bounded resources under hostile load: connections per source address, the
 * HTTP request head, slowloris peers that stall or dribble at every stage
 * before authentication, and a peer that stops reading what we send. Honest
 * clients keep working throughout. Short configured timeouts keep it fast;
 * the defaults are checked separately.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
  EncryptedWebSocketClientTransport,
  EncryptedWebSocketServer,
  Handshake,
  MAX_UPGRADE_HEADER_BYTES,
  NodeIdentity,
  Session,
  SUBPROTOCOL_ENCRYPTED,
  type EncryptedWebSocketServerTransport,
} from '../../src/index.js';
import { addressKey } from '../../src/transport/server.js';
import { MAX_FRAGMENTS_PER_MESSAGE, PRE_AUTH_MAX_FRAGMENTS } from '../../src/transport/limits.js';
import { getMaxFragments } from '../../src/transport/ws-internals.js';
import { codeOf, connectClient, deferred, startServer, textOf, within } from './helpers.js';
import { clientFrame, closeOf, openRaw, rawClientHandshake, rawTcp, serverFramesOf, upgradeRequest } from './raw-peers.js';

const id = () => NodeIdentity.generate();
const tick = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Poll a server counter that has no event of its own (bounded: fails after 5 s). */
async function until(pred: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 5000;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await tick(5);
  }
}

describe('limits: connections per source address', () => {
  test('the default is 64 and is validated', () => {
    const s = new EncryptedWebSocketServer({ identity: id(), allowAnyPeer: true, onConnection: () => {} });
    assert.equal(s.limits.maxConnectionsPerAddress, DEFAULT_MAX_CONNECTIONS_PER_ADDRESS);
    assert.equal(DEFAULT_MAX_CONNECTIONS_PER_ADDRESS, 64);
    assert.throws(() => new EncryptedWebSocketServer({ identity: id(), allowAnyPeer: true, limits: { maxConnectionsPerAddress: 0 }, onConnection: () => {} }), RangeError);
    assert.equal(addressKey('::ffff:10.1.2.3'), '10.1.2.3');
    assert.equal(addressKey('::1'), '0:0:0:0::/64'); // IPv6 counts by /64 (admission.test.ts)
  });

  test('stalled sockets count from TCP accept; one more gets HTTP 429 (client: ERR_LIMIT_REACHED); other addresses and freed slots work', async () => {
    const srv = await startServer({ limits: { maxConnectionsPerAddress: 2 } });
    try {
      // Two sockets that never send a byte hold the address's two slots.
      const a = await rawTcp(srv.port);
      const b = await rawTcp(srv.port);
      await until(() => srv.server.connectionsPerAddress.get('127.0.0.1') === 2, 'both sockets to be counted');
      const t = new EncryptedWebSocketClientTransport(srv.url, { identity: id(), allowAnyPeer: true });
      const mark = srv.errors.length;
      await assert.rejects(t.start(), { code: 'ERR_LIMIT_REACHED' });
      assert.equal(codeOf(await srv.errorWithCode('ERR_LIMIT_REACHED', mark)), 'ERR_LIMIT_REACHED');
      // A raw peer sees the 429 status line, and nothing of its request is needed for it.
      const c = await rawTcp(srv.port);
      assert.match(await within(c.status, 5000, 'the 429'), /^HTTP\/1\.1 429 /);
      await within(c.closed, 5000, 'the refused socket to close');

      // Another source address is not affected (127.0.0.2 is loopback on Linux).
      const other = await connectClientFrom('127.0.0.2', srv.url, srv.identity.nodeId);
      assert.equal(srv.server.connectionsPerAddress.get('127.0.0.2'), 1);
      other.terminate();

      // Freeing a slot lets the address in again.
      a.socket.destroy();
      await until(() => srv.server.connectionsPerAddress.get('127.0.0.1') === 1, 'the slot to be released');
      const ok = await connectClient(srv.url, { identity: id(), allowAnyPeer: true });
      assert.equal(textOf(await ok.client.callTool({ name: 'add', arguments: { a: 2, b: 3 } })), '5');
      await ok.client.close();
      b.socket.destroy();
    } finally {
      await srv.close();
    }
    // Released on each socket's 'close', which may come a tick after close() resolves.
    await until(() => srv.server.connectionsPerAddress.size === 0, 'nothing left counted after close');
  });

  test('attach(): the address is counted from the upgrade; over the limit the upgrade gets 429', async () => {
    const http = createServer((_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const port = (http.address() as AddressInfo).port;
    const server = new EncryptedWebSocketServer({ identity: id(), allowAnyPeer: true, limits: { maxConnectionsPerAddress: 1 }, onConnection: () => {} });
    server.attach(http);
    try {
      const first = await openRaw(`ws://127.0.0.1:${port}/`, [SUBPROTOCOL_ENCRYPTED]);
      const t = new EncryptedWebSocketClientTransport(`ws://127.0.0.1:${port}/`, { identity: id(), allowAnyPeer: true });
      await assert.rejects(t.start(), { code: 'ERR_LIMIT_REACHED' });
      first.terminate();
    } finally {
      await server.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    }
  });
});

/** A raw, hand-driven encrypted client bound to another loopback source address. */
async function connectClientFrom(localAddress: string, url: string, serverNodeId: string) {
  const { ws, session } = await rawClientHandshake(url, id(), { ws: { localAddress } });
  assert.equal(session.peer.nodeId, serverNodeId);
  return ws;
}

describe('limits: the HTTP request head', () => {
  test(`an upgrade request head above ${MAX_UPGRADE_HEADER_BYTES} bytes is refused with 431 by the parser; a normal one with a few KB of headers passes`, async () => {
    const srv = await startServer();
    try {
      const peer = await rawTcp(srv.port);
      // 1 MB of header; the parser stops at the limit, so most of it is never even read.
      peer.socket.write(upgradeRequest('/mcp', SUBPROTOCOL_ENCRYPTED, `X-Pad: ${'a'.repeat(1024 * 1024)}\r\n`));
      assert.match(await within(peer.status, 5000, 'the answer'), /^HTTP\/1\.1 431 /);
      await within(peer.closed, 5000, 'the socket to close');
      assert.equal(srv.server.pendingHandshakes, 0);

      const c = await connectClient(srv.url, { identity: id(), allowAnyPeer: true, headers: { 'X-Pad': 'b'.repeat(4 * 1024) } });
      assert.equal(textOf(await c.client.callTool({ name: 'add', arguments: { a: 1, b: 1 } })), '2');
      await c.client.close();
    } finally {
      await srv.close();
    }
  });
});

describe('limits: slowloris, every stage before authentication', () => {
  const UPGRADE_MS = 150;
  const HANDSHAKE_MS = 250;
  // Deadline from TCP accept, plus slack for a loaded 2-core CI machine.
  const BOUND_MS = UPGRADE_MS + HANDSHAKE_MS + 1500;

  /** Send `bytes` one at a time every `everyMs` until the socket closes; returns ms from connect to close. */
  async function dribble(port: number, bytes: Buffer, everyMs = 10, prefix?: string) {
    const peer = await rawTcp(port);
    const started = Date.now();
    let stop = false;
    void peer.closed.then(() => (stop = true));
    if (prefix) peer.socket.write(prefix);
    void (async () => {
      for (let i = 0; i < bytes.length && !stop; i++) {
        peer.socket.write(bytes.subarray(i, i + 1));
        await tick(everyMs);
      }
    })();
    const { close } = await within(peer.closed, BOUND_MS + 3000, 'the server to cut the dribbling peer');
    return { ms: Date.now() - started, close };
  }

  test('defaults: an unauthenticated connection lives at most 15 s from TCP accept (5 s upgrade + 10 s handshake)', () => {
    const s = new EncryptedWebSocketServer({ identity: id(), allowAnyPeer: true, onConnection: () => {} });
    assert.equal(s.limits.upgradeTimeoutMs, 5_000);
    assert.equal(s.limits.handshakeTimeoutMs, 10_000);
  });

  test('stalls and dribbles at each stage are all cut by the deadline, while honest clients keep working', async () => {
    const srv = await startServer({ limits: { upgradeTimeoutMs: UPGRADE_MS, handshakeTimeoutMs: HANDSHAKE_MS } });
    try {
      const honest = await connectClient(srv.url, { identity: id(), allowAnyPeer: true });
      const step1 = new Handshake('initiator', id()).start();
      const cases: Array<[string, () => Promise<{ ms: number; close?: { code: number; reason: string } | undefined }>]> = [
        ['opens TCP and never speaks', async () => {
          const p = await rawTcp(srv.port);
          const t0 = Date.now();
          await within(p.closed, BOUND_MS + 3000, 'the cut');
          return { ms: Date.now() - t0 };
        }],
        ['dribbles the HTTP request head, one byte per 10 ms, forever', () => dribble(srv.port, Buffer.from(upgradeRequest().replace(/\r\n\r\n$/, '\r\n') + 'X-Slow: ' + 'z'.repeat(5000)))],
        ['dribbles the first WebSocket frame (step 1) after a fast upgrade', () => dribble(srv.port, clientFrame(0x1, step1), 10, upgradeRequest())],
        ['sends half a frame header after the upgrade, then stalls', () => dribble(srv.port, clientFrame(0x1, step1).subarray(0, 1), 10, upgradeRequest())],
        ['keeps the socket busy with pings during the handshake', () => dribble(srv.port, Buffer.concat(Array.from({ length: 300 }, () => clientFrame(0x9, 'p'))), 5, upgradeRequest())],
        ['sends step 1, then never step 3', async () => {
          const ws = await openRaw(srv.url, [SUBPROTOCOL_ENCRYPTED]);
          const t0 = Date.now();
          const closed = closeOf(ws, BOUND_MS + 3000);
          ws.send(new Handshake('initiator', id()).start());
          const close = await closed;
          return { ms: Date.now() - t0, close };
        }],
      ];
      const results = await Promise.all(cases.map(async ([name, run]) => ({ name, ...(await run()) })));
      for (const r of results) {
        assert.ok(r.ms < BOUND_MS, `${r.name}: cut after ${r.ms} ms`);
        // Those that reached the WebSocket stage and can read were told why.
        if (r.close) assert.deepEqual(r.close, { code: 4008, reason: 'ERR_HANDSHAKE_TIMEOUT' }, r.name);
      }
      assert.equal(textOf(await honest.client.callTool({ name: 'echo', arguments: { message: 'still here' } })), 'Echo: still here');
      assert.equal(srv.server.pendingHandshakes, 0);
      assert.equal(srv.server.connections.length, 1);
      await honest.client.close();
    } finally {
      await srv.close();
    }
  });

  test('slowloris sockets at the per-address limit do not lock out other addresses, and expire', async () => {
    const srv = await startServer({ limits: { upgradeTimeoutMs: UPGRADE_MS, handshakeTimeoutMs: HANDSHAKE_MS, maxConnectionsPerAddress: 8 } });
    try {
      const hogs = await Promise.all(Array.from({ length: 12 }, () => rawTcp(srv.port)));
      const other = await connectClientFrom('127.0.0.3', srv.url, srv.identity.nodeId);
      await Promise.all(hogs.map((h) => within(h.closed, BOUND_MS + 3000, 'the hog to be cut')));
      other.terminate();
      // Once they expired, the address is welcome again.
      const c = await connectClient(srv.url, { identity: id(), allowAnyPeer: true });
      await c.client.close();
    } finally {
      await srv.close();
    }
  });
});

describe('limits: a peer that stops reading', () => {
  test('server-side sends are bounded by the send buffer (ERR_SEND_BUFFER_FULL), and keepalive then drops the peer', async () => {
    const got = deferred<EncryptedWebSocketServerTransport>();
    const srv = await startServer({
      limits: { sendHighWaterMarkBytes: 64 * 1024, maxSendBufferBytes: 256 * 1024, keepaliveIntervalMs: 300 },
      onConnection: (t) => {
        got.resolve(t);
      },
    });
    try {
      const { ws } = await rawClientHandshake(srv.url, id());
      const st = await within(got.promise, 5000, 'the connection');
      await st.start();
      const errors: Error[] = [];
      const closed = deferred();
      st.onerror = (e) => errors.push(e);
      st.onclose = () => closed.resolve();
      // The client stops reading its TCP socket: nothing it is sent is consumed.
      (ws as unknown as { _socket: import('node:net').Socket })._socket.pause();
      const note = { jsonrpc: '2.0' as const, method: 'notifications/flood', params: { pad: 'f'.repeat(16 * 1024) } };
      const pending: Array<Promise<void>> = [];
      let refusedAt = -1;
      const memBefore = process.memoryUsage().rss;
      for (let i = 0; i < 100_000; i++) {
        const p = st.send(note);
        pending.push(p.catch(() => {}));
        const full = await Promise.race([p.then(() => false, (e) => codeOf(e) === 'ERR_SEND_BUFFER_FULL'), tick(0).then(() => false)]);
        if (full) {
          refusedAt = i;
          break;
        }
      }
      assert.ok(refusedAt > 0, 'the send buffer filled up and refused');
      // Kernel socket buffers take some MB on loopback; our own queue holds at most 256 KB of frames.
      assert.ok(refusedAt * 16 * 1024 < 64 * 1024 * 1024, `accepted ${refusedAt} frames before refusing`);
      assert.ok(process.memoryUsage().rss - memBefore < 200 * 1024 * 1024);
      // A peer that does not read does not answer pings either.
      await within(closed.promise, 5000, 'keepalive to drop the peer');
      assert.ok(errors.some((e) => codeOf(e) === 'ERR_IDLE_TIMEOUT'), `server saw ${errors.map(codeOf)}`);
      await Promise.all(pending);
      ws.terminate();
    } finally {
      await srv.close();
    }
  });
});

describe('limits: fragments and the switch to the session', () => {
  /** A raw TCP client that upgrades and completes the initiator handshake; returns the socket, the session and the pending step 3. */
  async function rawTcpHandshake(port: number) {
    const me = id();
    const peer = await rawTcp(port);
    peer.socket.write(upgradeRequest());
    const hs = new Handshake('initiator', me, { framings: ['binary'] });
    peer.socket.write(clientFrame(0x1, hs.start()));
    const step2 = await within(
      (async () => {
        for (;;) {
          const text = serverFramesOf(peer.received()).find((f) => f.opcode === 0x1);
          if (text) return text.payload.toString('utf8');
          await once(peer.socket, 'data');
        }
      })(),
      5000,
      'step 2',
    );
    const step = hs.receive(step2);
    return { peer, me, step3: clientFrame(0x1, step.send!), session: new Session(step.result!, me) };
  }

  test(`before authentication a message may come in at most ${PRE_AUTH_MAX_FRAGMENTS} fragments (1008, ERR_FRAME_TOO_LARGE)`, async () => {
    const srv = await startServer();
    try {
      const peer = await rawTcp(srv.port);
      peer.socket.write(upgradeRequest());
      const fragments = [clientFrame(0x1, '{', { fin: false }), ...Array.from({ length: 4000 }, () => clientFrame(0x0, ' ', { fin: false }))];
      peer.socket.write(Buffer.concat(fragments));
      const { close } = await within(peer.closed, 5000, 'the server to refuse the fragment flood');
      assert.equal(close?.code, 1008);
      assert.equal(codeOf(await srv.nextError()), 'ERR_FRAME_TOO_LARGE');
    } finally {
      await srv.close();
    }
  });

  test(`after authentication the limit is ${MAX_FRAGMENTS_PER_MESSAGE} fragments; a flood beyond it ends only that connection`, async () => {
    const got = deferred<EncryptedWebSocketServerTransport>();
    const srv = await startServer({ onConnection: async (t) => got.resolve(t) });
    try {
      const { ws } = await rawClientHandshake(srv.url, id());
      const st = await within(got.promise, 5000, 'the connection');
      assert.equal(getMaxFragments(st.socket), MAX_FRAGMENTS_PER_MESSAGE);
      const errors: Error[] = [];
      st.onerror = (e) => errors.push(e);
      await st.start();
      const raw = (ws as unknown as { _socket: import('node:net').Socket })._socket;
      const closed = closeOf(ws);
      raw.write(Buffer.concat([clientFrame(0x2, Buffer.alloc(1), { fin: false }), ...Array.from({ length: MAX_FRAGMENTS_PER_MESSAGE + 10 }, () => clientFrame(0x0, Buffer.alloc(1), { fin: false }))]));
      assert.equal((await closed).code, 1008);
      assert.ok(errors.some((e) => codeOf(e) === 'ERR_FRAME_TOO_LARGE'), `server saw ${errors.map(codeOf)}`);
    } finally {
      await srv.close();
    }
  });

  test('a ws-level failure right behind step 3 (same TCP chunk) is the outcome of the handshake: reported to onError, onConnection never called', async () => {
    let connections = 0;
    const srv = await startServer({ onConnection: () => void connections++ });
    try {
      const { peer, step3 } = await rawTcpHandshake(srv.port);
      // Step 3, then the header of a frame far above the session limit, in one write.
      peer.socket.write(Buffer.concat([step3, clientFrame(0x2, Buffer.alloc(0), { declaredLength: 2n ** 40n })]));
      const { close } = await within(peer.closed, 5000, 'the server to close');
      assert.equal(close?.code, 1009);
      assert.equal(codeOf(await srv.nextError()), 'ERR_FRAME_TOO_LARGE');
      assert.equal(connections, 0);
      assert.equal(srv.server.connections.length, 0);
    } finally {
      await srv.close();
    }
  });
});
