/**
 * The seed's API (SEED.md, "Usage Examples"): `EncryptedWebSocketTransport`
 * and `EncryptedMessageServer`. First one test (or two) per entry of the
 * seed's test list, each through this API: initialization, plaintext mode,
 * encryption and decryption, signing, server initialization, key exchange,
 * end-to-end flow, backward compatibility. Then the receive queue: its bound
 * (backpressure), its lifecycle, and the handler loop of the server.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { WebSocketClientTransport } from '@modelcontextprotocol/sdk/client/websocket.js';
import {
  EncryptedMessageServer,
  EncryptedWebSocketServer,
  EncryptedWebSocketTransport,
  NodeIdentity,
  type JSONRPCMessage,
  type MessageHandler,
  type PeerIdentity,
} from '../../src/index.js';
import { codeOf, deferred, within } from '../transport/helpers.js';
import { editJson, flipHex, startRelay, type Frame } from '../transport/relay.js';
import { echoHandler, paramsOf, request, resultOf, stalled, startMessageServer } from './helpers.js';

// The SDK's WebSocket client uses the global WebSocket, which Node 20 lacks.
(globalThis as { WebSocket?: unknown }).WebSocket ??= (await import('ws')).WebSocket;

const id = () => NodeIdentity.generate();

/** The JSON document of a text frame, or undefined. */
function jsonOf(frame: Frame): Record<string, unknown> | undefined {
  if (frame.isBinary) return undefined;
  try {
    return JSON.parse(frame.data.toString('utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

describe("the seed's test list, through the seed's API", () => {
  test('transport initialization: URL, identity and options; mistakes are refused at construction, an unknown option by name', () => {
    const me = id();
    const server = id();
    const t = new EncryptedWebSocketTransport('ws://127.0.0.1:1/', me, { enableEncryption: true, expectedPeer: server.nodeId });
    assert.equal(t.mode, 'encrypted');
    assert.equal(t.url.href, 'ws://127.0.0.1:1/');
    assert.equal(t.closed, false);
    assert.equal(t.queued, 0);
    assert.equal(t.peer, undefined);
    assert.equal(new EncryptedWebSocketTransport('ws://127.0.0.1:1/', me, { allowAnyPeer: true }).mode, 'encrypted', 'encryption is the default');
    assert.equal(new EncryptedWebSocketTransport('ws://127.0.0.1:1/', undefined, { enableEncryption: false }).mode, 'plaintext');

    const url = 'ws://127.0.0.1:1/';
    assert.throws(() => new EncryptedWebSocketTransport(url, me, { enableEncrypton: false, allowAnyPeer: true } as never), {
      name: 'TypeError',
      message: /unknown option "enableEncrypton"/,
    });
    assert.throws(() => new EncryptedWebSocketTransport(url, me, { allowAnyPeer: true, session: { rekeyAfterFrame: 1 } } as never), {
      name: 'TypeError',
      message: /unknown option "rekeyAfterFrame"/,
    });
    assert.throws(() => new EncryptedWebSocketTransport(url, me, { identity: me, allowAnyPeer: true } as never), { name: 'TypeError', message: /second argument/ });
    assert.throws(() => new EncryptedWebSocketTransport(url, me, {}), { name: 'TypeError', message: /authenticate the server/ });
    assert.throws(() => new EncryptedWebSocketTransport(url, undefined, { allowAnyPeer: true }), { name: 'TypeError', message: /identity/ });
    assert.throws(() => new EncryptedWebSocketTransport('http://127.0.0.1:1/', me, { allowAnyPeer: true }), TypeError);
    assert.throws(() => new EncryptedWebSocketTransport(url, me, { allowAnyPeer: true, maxQueuedMessages: 0 }), RangeError);
    assert.throws(() => new EncryptedWebSocketTransport(url, me, { expectedPeer: 'abc' }), { code: 'ERR_INVALID_NODE_ID' });
  });

  test('plaintext mode: enableEncryption: false speaks plain MCP (subprotocol mcp, the JSON text in one text frame) with a peer that does not speak mcp-e2e', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: (offered) => (offered.has('mcp') ? 'mcp' : false) });
    await once(wss, 'listening');
    const seen = deferred<{ protocol: string; text: string; isBinary: boolean }>();
    wss.on('connection', (ws) => {
      ws.on('message', (data: Buffer, isBinary) => {
        seen.resolve({ protocol: ws.protocol, text: data.toString('utf8'), isBinary });
        ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { pong: true } }));
      });
    });
    try {
      const t = new EncryptedWebSocketTransport(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`, id(), { enableEncryption: false });
      await t.connect();
      assert.equal(t.encrypted, false);
      assert.equal(t.peer, undefined);
      assert.equal(t.e2eSessionId, undefined);
      await t.send('{"jsonrpc": "2.0", "id": 1, "method": "test"}');
      const wire = await within(seen.promise, 5000, 'the plain peer to receive the message');
      assert.equal(wire.protocol, 'mcp');
      assert.equal(wire.isBinary, false);
      assert.deepEqual(JSON.parse(wire.text), { jsonrpc: '2.0', id: 1, method: 'test' });
      assert.deepEqual(await within(t.receive(), 5000, 'the reply'), { jsonrpc: '2.0', id: 1, result: { pong: true } });
      await t.close();
      // A plaintext connection authenticates nobody: pinning makes no sense there.
      assert.throws(() => new EncryptedWebSocketTransport('ws://127.0.0.1:1/', id(), { enableEncryption: false, expectedPeer: id().nodeId }), TypeError);
    } finally {
      for (const ws of wss.clients) ws.terminate();
      await new Promise((resolve) => wss.close(resolve));
    }
  });

  for (const framing of ['binary', 'json'] as const) {
    test(`message encryption and decryption (${framing} framing): the handler gets the exact message, the reply comes back, neither crosses the wire in clear`, async () => {
      const me = id();
      const srv = await startMessageServer(echoHandler);
      const frames: Frame[] = [];
      const record = (f: Frame) => {
        frames.push(f);
        return [f];
      };
      const relay = await startRelay({ upstream: srv.url, toServer: record, toClient: record });
      try {
        const marker = `secret-${randomUUID()}`;
        const t = new EncryptedWebSocketTransport(relay.url, me, { expectedPeer: srv.identity!.nodeId, framings: [framing] });
        await t.connect();
        assert.equal(t.encrypted, true);
        assert.equal(t.negotiated?.framing, framing);
        await t.send({ jsonrpc: '2.0', id: 7, method: 'echo', params: { marker } });
        assert.deepEqual(await within(t.receive(), 5000, 'the reply'), {
          jsonrpc: '2.0',
          id: 7,
          result: { method: 'echo', params: { marker }, peer: me.nodeId },
        });
        await t.close();
        const wire = Buffer.concat(frames.map((f) => f.data));
        assert.equal(wire.includes(marker), false, 'the plaintext crossed the wire');
        assert.equal(wire.includes(Buffer.from(marker).toString('hex')), false, 'the plaintext crossed the wire as hex');
        // The check above looked at the session frames of both directions.
        if (framing === 'binary') {
          assert.ok(frames.filter((f) => f.isBinary).length >= 2, 'session frames both ways');
        } else {
          const envelopes = frames.map(jsonOf).filter((d) => d?.type === 'encrypted');
          const senders = new Set(envelopes.map((d) => d!.sender));
          assert.deepEqual(senders, new Set([me.nodeId, srv.identity!.nodeId]), 'envelopes both ways, each naming its sender');
          // The seed's envelope: type, nonce, ciphertext, signature, sender (hex fields).
          for (const d of envelopes) {
            assert.match(String(d!.nonce), /^[0-9a-f]{24}$/);
            assert.match(String(d!.ciphertext), /^[0-9a-f]+$/);
            assert.match(String(d!.signature), /^[0-9a-f]{128}$/);
          }
        }
      } finally {
        await relay.close();
        await srv.stop();
      }
    });
  }

  test('message signing: frames are signed by default; a frame whose signature was altered in transit is refused (ERR_FRAME_SIGNATURE) and never reaches the handler', async () => {
    const handled: JSONRPCMessage[] = [];
    const srv = await startMessageServer((message, peer) => {
      handled.push(message);
      return echoHandler(message, peer);
    });
    let altered = 0;
    const relay = await startRelay({
      upstream: srv.url,
      toServer: (f) => {
        if (jsonOf(f)?.type !== 'encrypted') return [f];
        altered++;
        return [editJson(f, (d) => (d.signature = flipHex(String(d.signature), 10)))];
      },
    });
    try {
      const t = new EncryptedWebSocketTransport(relay.url, id(), { expectedPeer: srv.identity!.nodeId, framings: ['json'] });
      await t.connect();
      assert.deepEqual(t.negotiated, { framing: 'json', signatures: true });
      await t.send(request(1, 'test'));
      await assert.rejects(within(t.receive(), 5000, 'the refusal'), { code: 'ERR_FRAME_SIGNATURE' });
      assert.equal(codeOf((await srv.errorWithCode('ERR_FRAME_SIGNATURE')).error), 'ERR_FRAME_SIGNATURE');
      assert.equal(altered, 1);
      assert.deepEqual(handled, [], 'the handler saw a message with a bad signature');
    } finally {
      await relay.close();
      await srv.stop();
    }
  });

  test('server initialization: identity, messageHandler and options; mistakes refused at construction, an unknown option by name; start(host, port) and stop()', async () => {
    const identity = id();
    const h: MessageHandler = () => undefined;
    const build = (who: NodeIdentity | undefined, options: Record<string, unknown>) => new EncryptedMessageServer(who, { messageHandler: h, ...options } as never);
    const make = (options: Record<string, unknown>) => build(identity, options);
    assert.throws(() => make({ allowAnyPeer: true, enableEncrypton: false }), { name: 'TypeError', message: /unknown option "enableEncrypton"/ });
    assert.throws(() => make({ allowAnyPeer: true, limits: { maxConection: 1 } }), { name: 'TypeError', message: /unknown option "maxConection"/ });
    assert.throws(() => make({ allowAnyPeer: true, messageHandler: undefined }), { name: 'TypeError', message: /messageHandler/ });
    assert.throws(() => make({ allowAnyPeer: true, identity }), { name: 'TypeError', message: /"identity" is not an option/ });
    assert.throws(() => make({ allowAnyPeer: true, onConnection: () => {} }), { name: 'TypeError', message: /"onConnection" is not an option/ });
    assert.throws(() => make({}), { name: 'TypeError', message: /unauthorised clients/ });
    assert.throws(() => build(undefined, { allowAnyPeer: true }), { name: 'TypeError', message: /identity/ });
    assert.throws(() => make({ enableEncryption: false, allowedPeers: [id().nodeId] }), { name: 'TypeError', message: /need encryption/ });
    assert.throws(() => make({ enableEncryption: false, allowPlaintext: true }), { name: 'TypeError', message: /plaintext only/ });
    assert.throws(() => make({ allowAnyPeer: true, maxQueuedMessages: 0 }), RangeError);
    build(undefined, { enableEncryption: false }); // a plaintext server needs no identity

    const server = make({ allowAnyPeer: true, messageHandler: echoHandler });
    assert.equal(server.address(), undefined);
    const address = await server.start('127.0.0.1', 0);
    assert.ok(address.port > 0);
    assert.deepEqual(server.address(), address);
    await assert.rejects(server.start('127.0.0.1', 0), /already listening/);
    const url = `ws://127.0.0.1:${address.port}/`;
    const t = new EncryptedWebSocketTransport(url, id(), { expectedPeer: identity.nodeId });
    await t.connect();
    // The server admits the client once it has read the last handshake message: a round trip later.
    await t.send(request(1, 'x'));
    assert.equal(resultOf(await within(t.receive(), 5000, 'the reply')).method, 'x');
    assert.equal(server.connections, 1);
    await server.stop();
    await server.stop();
    await assert.rejects(within(t.receive(), 5000, 'the close'), { code: 'ERR_CONNECTION_CLOSED' });
    await assert.rejects(new EncryptedWebSocketTransport(url, id(), { expectedPeer: identity.nodeId }).connect(), { code: 'ERR_CONNECT_FAILED' });
  });

  test('key exchange: every connection has its own session; each side learns the verified identity of the other', async () => {
    const srv = await startMessageServer(echoHandler);
    try {
      const [a, b] = [id(), id()];
      const ta = new EncryptedWebSocketTransport(srv.url, a, { expectedPeer: srv.identity!.nodeId });
      const tb = new EncryptedWebSocketTransport(srv.url, b, { expectedPeer: srv.identity!.nodeId });
      await Promise.all([ta.connect(), tb.connect()]);
      for (const t of [ta, tb]) {
        assert.equal(t.peer?.nodeId, srv.identity!.nodeId);
        assert.equal(t.peer?.fingerprint, srv.identity!.fingerprint);
        assert.match(t.e2eSessionId ?? '', /^[0-9a-f]{32}$/);
      }
      assert.notEqual(ta.e2eSessionId, tb.e2eSessionId);
      await Promise.all([ta.send(request(1, 'whoami')), tb.send(request(1, 'whoami'))]);
      const [ra, rb] = await within(Promise.all([ta.receive(), tb.receive()]), 5000, 'both replies');
      assert.equal(resultOf(ra).peer, a.nodeId);
      assert.equal(resultOf(rb).peer, b.nodeId);
      await Promise.all([ta.close(), tb.close()]);
    } finally {
      await srv.stop();
    }
  });

  test('key exchange: a server with another key is refused at connect() (ERR_PEER_KEY_CHANGED); a client the server does not allow learns it from receive() (ERR_PEER_REJECTED)', async () => {
    const allowed = id();
    const srv = await startMessageServer(echoHandler, { allowedPeers: [allowed.nodeId] });
    try {
      const impostorPin = new EncryptedWebSocketTransport(srv.url, allowed, { expectedPeer: id().nodeId });
      await assert.rejects(impostorPin.connect(), { code: 'ERR_PEER_KEY_CHANGED' });
      assert.equal(impostorPin.closed, true);

      const stranger = new EncryptedWebSocketTransport(srv.url, id(), { expectedPeer: srv.identity!.nodeId });
      await stranger.connect(); // our identity travels in the last handshake message: the refusal comes after
      await assert.rejects(within(stranger.receive(), 5000, 'the refusal'), { code: 'ERR_PEER_REJECTED' });
      assert.equal(codeOf((await srv.errorWithCode('ERR_PEER_REJECTED')).error), 'ERR_PEER_REJECTED');

      const friend = new EncryptedWebSocketTransport(srv.url, allowed, { expectedPeer: srv.identity!.nodeId });
      await friend.connect();
      await friend.send(request(2, 'hello'));
      assert.equal((await within(friend.receive(), 5000, 'the reply') as { id: number }).id, 2);
      await friend.close();
    } finally {
      await srv.stop();
    }
  });

  test('end-to-end flow: requests (JSON text or objects) answered in order, notifications without reply, a failing handler answered with -32603 and reported locally', async () => {
    const notes: JSONRPCMessage[] = [];
    const peers = new Set<string | undefined>();
    const srv = await startMessageServer((message, peer) => {
      peers.add(peer?.nodeId);
      if (!('id' in message)) {
        notes.push(message);
        return undefined;
      }
      if ('method' in message && message.method === 'fail') throw new Error('handler failure with local detail');
      if ('method' in message && message.method === 'text') return `{"jsonrpc": "2.0", "id": ${JSON.stringify(message.id)}, "result": {"as": "text"}}`;
      return echoHandler(message, peer);
    });
    try {
      const me = id();
      const t = new EncryptedWebSocketTransport(srv.url, me, { expectedPeer: srv.identity!.nodeId });
      await t.connect();
      for (let i = 1; i <= 40; i++) {
        if (i % 2 === 0) await t.send(request(i, 'echo', { i }));
        else await t.send(`{"jsonrpc": "2.0", "id": ${i}, "method": "echo", "params": {"i": ${i}}}`);
      }
      await t.send('{"jsonrpc": "2.0", "method": "notifications/test", "params": {"n": 1}}');
      await t.send(request('f', 'fail'));
      await t.send(request('t', 'text'));
      for (let i = 1; i <= 40; i++) {
        assert.deepEqual(await within(t.receive(), 5000, `reply ${i}`), { jsonrpc: '2.0', id: i, result: { method: 'echo', params: { i }, peer: me.nodeId } });
      }
      assert.deepEqual(await within(t.receive(), 5000, 'the error reply'), { jsonrpc: '2.0', id: 'f', error: { code: -32603, message: 'Internal error' } });
      assert.deepEqual(await within(t.receive(), 5000, 'the text reply'), { jsonrpc: '2.0', id: 't', result: { as: 'text' } });
      assert.deepEqual(notes, [{ jsonrpc: '2.0', method: 'notifications/test', params: { n: 1 } }]);
      assert.deepEqual(peers, new Set([me.nodeId]));
      const failure = srv.errors.find((e) => e.error.message === 'handler failure with local detail');
      assert.ok(failure, 'the handler failure was reported');
      assert.equal(failure.info.peer?.nodeId, me.nodeId);

      // for await: every message until the server closes, then the loop ends.
      const last = deferred();
      const collected = (async () => {
        const out: JSONRPCMessage[] = [];
        for await (const message of t) {
          out.push(message);
          if ('id' in message && message.id === 'last') last.resolve();
        }
        return out;
      })();
      await t.send(request('last', 'echo'));
      await within(last.promise, 5000, 'the last reply');
      await srv.stop();
      assert.deepEqual((await within(collected, 5000, 'the loop to end')).map((m) => ('id' in m ? m.id : null)), ['last']);
    } finally {
      await srv.stop();
    }
  });

  test("backward compatibility: a plaintext server (enableEncryption: false) serves the MCP SDK's own WebSocket client; the handler sees no identity", async () => {
    const methods: string[] = [];
    const peers: Array<PeerIdentity | undefined> = [];
    const srv = await startMessageServer(
      (message, peer) => {
        peers.push(peer);
        if (!('method' in message)) return undefined;
        methods.push(message.method);
        if (!('id' in message)) return undefined;
        if (message.method === 'initialize') {
          const version = (message.params as { protocolVersion: string }).protocolVersion;
          return { jsonrpc: '2.0', id: message.id, result: { protocolVersion: version, capabilities: {}, serverInfo: { name: 'seed-plaintext', version: '1.0.0' } } };
        }
        return { jsonrpc: '2.0', id: message.id, result: {} };
      },
      { enableEncryption: false },
      undefined,
    );
    try {
      const client = new Client({ name: 'sdk-ws-client', version: '1.0.0' });
      await client.connect(new WebSocketClientTransport(new URL(srv.url)));
      assert.equal(client.getServerVersion()?.name, 'seed-plaintext');
      await client.ping();
      await client.close();
      assert.deepEqual(methods, ['initialize', 'notifications/initialized', 'ping']);
      assert.ok(peers.length === 3 && peers.every((p) => p === undefined));
    } finally {
      await srv.stop();
    }
  });

  test('backward compatibility without fallback: a plaintext server refuses an encrypting client (ERR_SUBPROTOCOL), an encrypting server a plaintext client (ERR_PLAINTEXT_REFUSED); allowPlaintext serves both', async () => {
    const plain = await startMessageServer(echoHandler, { enableEncryption: false }, undefined);
    const strict = await startMessageServer(echoHandler);
    const both = await startMessageServer(echoHandler, { allowPlaintext: true });
    try {
      const enc = new EncryptedWebSocketTransport(plain.url, id(), { allowAnyPeer: true });
      // The refusal arrives in an unauthenticated close frame: a claim, not the local code.
      await assert.rejects(enc.connect(), { code: 'ERR_CONNECTION_CLOSED', peerCode: 'ERR_SUBPROTOCOL' });
      assert.equal(codeOf((await plain.errorWithCode('ERR_SUBPROTOCOL')).error), 'ERR_SUBPROTOCOL');

      const clear = new EncryptedWebSocketTransport(strict.url, id(), { enableEncryption: false });
      await clear.connect();
      await assert.rejects(within(clear.receive(), 5000, 'the refusal'), { code: 'ERR_CONNECTION_CLOSED', peerCode: 'ERR_PLAINTEXT_REFUSED' });

      const me = id();
      const a = new EncryptedWebSocketTransport(both.url, me, { expectedPeer: both.identity!.nodeId });
      const b = new EncryptedWebSocketTransport(both.url, undefined, { enableEncryption: false });
      await Promise.all([a.connect(), b.connect()]);
      await Promise.all([a.send(request(1, 'x')), b.send(request(1, 'x'))]);
      const [ra, rb] = await within(Promise.all([a.receive(), b.receive()]), 5000, 'both replies');
      assert.equal(resultOf(ra).peer, me.nodeId);
      assert.equal(resultOf(rb).peer, null);
      assert.deepEqual([a.encrypted, b.encrypted], [true, false]);
      await Promise.all([a.close(), b.close()]);
    } finally {
      await Promise.all([plain.stop(), strict.stop(), both.stop()]);
    }
  });
});

describe('EncryptedWebSocketTransport: the receive queue', () => {
  test('bounded: a client that does not receive() stops reading, the server is held back, and every message arrives in order once it reads', async () => {
    const TOTAL = 1024;
    const pad = 'p'.repeat(32 * 1024); // 32 MiB in all: more than loopback socket buffers hold
    let sent = 0;
    const done = deferred();
    const identity = id();
    const server = new EncryptedWebSocketServer({
      identity,
      allowAnyPeer: true,
      limits: { sendHighWaterMarkBytes: 64 * 1024 },
      onConnection: async (transport) => {
        await transport.start();
        for (let i = 0; i < TOTAL; i++) {
          await transport.send({ jsonrpc: '2.0', method: 'notifications/flood', params: { i, pad } });
          sent++;
        }
        done.resolve();
      },
    });
    const { port } = await server.listen(0, '127.0.0.1');
    try {
      const t = new EncryptedWebSocketTransport(`ws://127.0.0.1:${port}/`, id(), { expectedPeer: identity.nodeId, maxQueuedMessages: 4 });
      await t.connect();
      const atStall = await stalled(() => sent);
      assert.ok(atStall < TOTAL, `the server sent all ${TOTAL} messages to a client that read none`);
      // The queue's bound, plus what was decoded from the socket read that filled it.
      assert.ok(t.queued <= 4 + 4, `${t.queued} messages queued, bound 4`);
      for (let i = 0; i < TOTAL; i++) {
        assert.equal(paramsOf(await within(t.receive(), 10_000, `message ${i}`)).i, i);
      }
      await within(done.promise, 10_000, 'the server to finish sending');
      await t.close();
    } finally {
      await server.close();
    }
  });

  test('receive() before connect() and after close() rejects with ERR_CONNECTION_CLOSED; close() rejects a pending receive(); connect() twice throws', async () => {
    const srv = await startMessageServer(echoHandler);
    try {
      const t = new EncryptedWebSocketTransport(srv.url, id(), { expectedPeer: srv.identity!.nodeId });
      await assert.rejects(t.receive(), { code: 'ERR_CONNECTION_CLOSED' });
      await t.connect();
      await assert.rejects(t.connect(), /already called/);
      const pending = assert.rejects(t.receive(), { code: 'ERR_CONNECTION_CLOSED' });
      await t.close();
      await pending;
      await assert.rejects(t.receive(), { code: 'ERR_CONNECTION_CLOSED' });
      await assert.rejects(t.send(request(1, 'x')), { code: 'ERR_CONNECTION_CLOSED' });
      assert.equal(t.closed, true);
    } finally {
      await srv.stop();
    }
  });

  test('messages that arrived before the server closed are still received, then ERR_CONNECTION_CLOSED', async () => {
    const identity = id();
    const server = new EncryptedWebSocketServer({
      identity,
      allowAnyPeer: true,
      onConnection: async (transport) => {
        await transport.start();
        for (let i = 0; i < 3; i++) await transport.send({ jsonrpc: '2.0', method: 'notifications/bye', params: { i } });
        await transport.close();
      },
    });
    const { port } = await server.listen(0, '127.0.0.1');
    try {
      const t = new EncryptedWebSocketTransport(`ws://127.0.0.1:${port}/`, id(), { expectedPeer: identity.nodeId });
      await t.connect();
      await within(new Promise<void>((resolve) => { const poll = () => (t.closed ? resolve() : setTimeout(poll, 10)); poll(); }), 5000, 'the close');
      for (let i = 0; i < 3; i++) assert.deepEqual(await t.receive(), { jsonrpc: '2.0', method: 'notifications/bye', params: { i } });
      await assert.rejects(t.receive(), { code: 'ERR_CONNECTION_CLOSED' });
    } finally {
      await server.close();
    }
  });

  test('a connection ended by an error: for await throws it', async () => {
    const srv = await startMessageServer(echoHandler);
    const relay = await startRelay({
      upstream: srv.url,
      // Corrupt the server's first session frame.
      toClient: (f, index) => (index === 1 ? [{ data: Buffer.from(f.data.map((b, i) => (i === f.data.length - 1 ? b ^ 1 : b))), isBinary: f.isBinary }] : [f]),
    });
    try {
      const t = new EncryptedWebSocketTransport(relay.url, id(), { expectedPeer: srv.identity!.nodeId });
      await t.connect();
      await t.send(request(1, 'x'));
      await assert.rejects(
        within(
          (async () => {
            for await (const _ of t) assert.fail('a corrupted frame was delivered');
          })(),
          5000,
          'the loop to fail',
        ),
        { code: 'ERR_FRAME_DECRYPT' },
      );
    } finally {
      await relay.close();
      await srv.stop();
    }
  });

  test('send() refuses what is not a JSON-RPC 2.0 message with a TypeError; the connection stays usable', async () => {
    const srv = await startMessageServer(echoHandler);
    try {
      const t = new EncryptedWebSocketTransport(srv.url, id(), { expectedPeer: srv.identity!.nodeId });
      await t.connect();
      await assert.rejects(t.send('{"jsonrpc": "2.0", "id": 1, "method": '), TypeError);
      await assert.rejects(t.send('{"id": 1, "method": "test"}'), TypeError);
      await assert.rejects(t.send({ hello: 'world' } as never), TypeError);
      await t.send(request(1, 'test'));
      assert.equal((await within(t.receive(), 5000, 'the reply') as { id: number }).id, 1);
      await t.close();
    } finally {
      await srv.stop();
    }
  });
});

describe('EncryptedMessageServer: the handler loop', () => {
  test('a slow handler holds the client back: messages wait (bounded), the client sends wait, and all are handled in order once it continues', async () => {
    const TOTAL = 1024;
    const pad = 'p'.repeat(32 * 1024);
    const gate = deferred();
    const handled: number[] = [];
    const allHandled = deferred();
    const srv = await startMessageServer(
      async (message) => {
        if (handled.length === 0) await gate.promise;
        handled.push(paramsOf(message).i as number);
        if (handled.length === TOTAL) allHandled.resolve();
        return undefined;
      },
      { maxQueuedMessages: 4 },
    );
    try {
      const t = new EncryptedWebSocketTransport(srv.url, id(), { expectedPeer: srv.identity!.nodeId, sendHighWaterMarkBytes: 64 * 1024 });
      await t.connect();
      let sent = 0;
      const sending = (async () => {
        for (let i = 0; i < TOTAL; i++) {
          await t.send({ jsonrpc: '2.0', method: 'notifications/work', params: { i, pad } });
          sent++;
        }
      })();
      const atStall = await stalled(() => sent);
      assert.ok(atStall < TOTAL, `the client sent all ${TOTAL} messages to a server whose handler was stuck`);
      assert.equal(handled.length, 0);
      gate.resolve();
      await within(sending, 20_000, 'the client to finish sending');
      await within(allHandled.promise, 20_000, 'the handler to see every message');
      assert.deepEqual(handled, Array.from({ length: TOTAL }, (_, i) => i));
      await t.close();
    } finally {
      await srv.stop();
    }
  });

  test('a reply too large to send is reported and the request answered with -32603; the connection stays open', async () => {
    const srv = await startMessageServer(
      (message) => {
        if (!('id' in message && 'method' in message)) return undefined;
        return { jsonrpc: '2.0', id: message.id, result: { pad: message.method === 'big' ? 'x'.repeat(4096) : '' } };
      },
      { limits: { maxMessageBytes: 2048 } },
    );
    try {
      const t = new EncryptedWebSocketTransport(srv.url, id(), { expectedPeer: srv.identity!.nodeId });
      await t.connect();
      await t.send(request(1, 'big'));
      assert.deepEqual(await within(t.receive(), 5000, 'the error reply'), { jsonrpc: '2.0', id: 1, error: { code: -32603, message: 'Internal error' } });
      assert.equal(codeOf((await srv.errorWithCode('ERR_FRAME_TOO_LARGE')).error), 'ERR_FRAME_TOO_LARGE');
      await t.send(request(2, 'small'));
      assert.deepEqual(await within(t.receive(), 5000, 'the reply'), { jsonrpc: '2.0', id: 2, result: { pad: '' } });
      await t.close();
    } finally {
      await srv.stop();
    }
  });
});
