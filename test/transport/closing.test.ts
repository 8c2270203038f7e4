/**
 * Nothing is lost silently: a message accepted by `send()` is delivered, or
 * the transport reports an error. A clean `close()` right after a burst of
 * sends delivers the whole burst, in order, before `onclose`, whichever side
 * closes and in every framing.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { EncryptedWebSocketClientTransport, NodeIdentity, type EncryptedWebSocketServerTransport, type Framing } from '../../src/index.js';
import { deferred, startServer, within } from './helpers.js';

const COUNT = 1000;
// 16 MB in all: more than loopback socket buffers hold, so most of it waits in our send queue.
const note = (i: number): JSONRPCMessage => ({ jsonrpc: '2.0', method: 'notifications/n', params: { i, pad: 'x'.repeat(i % 2 === 0 ? 32_000 : 40) } });

/** Collects the `i` of every message, and whether any arrived after onclose. */
function recorder(t: { onmessage?: unknown; onclose?: unknown; onerror?: unknown }) {
  const seen: number[] = [];
  const errors: Error[] = [];
  let closed = false;
  let afterClose = 0;
  const done = deferred();
  t.onmessage = (m: JSONRPCMessage) => {
    if (closed) afterClose++;
    seen.push((m as unknown as { params: { i: number } }).params.i);
  };
  t.onerror = (e: Error) => errors.push(e);
  t.onclose = () => {
    closed = true;
    done.resolve();
  };
  return { seen, errors, closed: done.promise, afterClose: () => afterClose };
}

/**
 * A TCP proxy in front of `port` that can stop reading what the server sends
 * (so the server's bytes back up in its own buffers, as with a client that
 * does not read).
 */
async function startStallingProxy(port: number) {
  const sockets = new Set<Socket>();
  const upstreams: Socket[] = [];
  let paused = false;
  const server = createServer((down) => {
    const up = connect(port, '127.0.0.1');
    upstreams.push(up);
    if (paused) up.pause();
    for (const s of [down, up]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    }
    down.pipe(up);
    up.pipe(down);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`,
    pause: () => {
      paused = true;
      for (const u of upstreams) u.pause();
    },
    resume: () => {
      paused = false;
      // unpipe/pipe keep flowing state consistent: resume through the pipe.
      for (const u of upstreams) u.resume();
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

const inOrder = Array.from({ length: COUNT }, (_, i) => i);

for (const mode of ['binary', 'json', 'plaintext'] as Array<Framing | 'plaintext'>) {
  describe(`clean close delivers everything already sent (${mode})`, () => {
    const clientOptions = (identity: NodeIdentity) =>
      mode === 'plaintext'
        ? { enableEncryption: false as const }
        : { identity, allowAnyPeer: true, framings: [mode], signatures: mode === 'json', sendHighWaterMarkBytes: 16 * 1024 };

    test(`client sends ${COUNT} messages and closes at once: the server receives all, in order, then onclose`, async () => {
      const got = deferred<EncryptedWebSocketServerTransport>();
      const srv = await startServer({ allowPlaintext: mode === 'plaintext', onConnection: (t) => got.resolve(t) });
      try {
        const client = new EncryptedWebSocketClientTransport(srv.url, clientOptions(NodeIdentity.generate()));
        await client.start();
        const st = await within(got.promise, 5000, 'the server connection');
        const rx = recorder(st);
        await st.start();
        // The server reads nothing until the client has asked to close.
        st.socket.pause();
        const sends = Array.from({ length: COUNT }, (_, i) => client.send(note(i)));
        const closing = client.close();
        st.socket.resume();
        await closing;
        // Every send was accepted: none may have failed.
        await Promise.all(sends);
        await within(rx.closed, 10_000, 'the server side to close');
        assert.deepEqual(rx.seen, inOrder);
        assert.equal(rx.afterClose(), 0, 'no message after onclose');
        assert.deepEqual(rx.errors, []);
      } finally {
        await srv.close();
      }
    });

    test(`server sends ${COUNT} messages and closes at once: the client receives all, in order, then onclose`, async () => {
      const got = deferred<EncryptedWebSocketServerTransport>();
      const srv = await startServer({ allowPlaintext: mode === 'plaintext', onConnection: (t) => got.resolve(t), limits: { sendHighWaterMarkBytes: 16 * 1024 } });
      const proxy = await startStallingProxy(srv.port);
      try {
        const client = new EncryptedWebSocketClientTransport(proxy.url, clientOptions(NodeIdentity.generate()));
        const rx = recorder(client);
        await client.start();
        const st = await within(got.promise, 5000, 'the server connection');
        await st.start();
        // The client reads nothing until the server has asked to close.
        proxy.pause();
        const sends = Array.from({ length: COUNT }, (_, i) => st.send(note(i)));
        const closing = st.close();
        proxy.resume();
        await closing;
        await Promise.all(sends);
        await within(rx.closed, 10_000, 'the client to close');
        assert.deepEqual(rx.seen, inOrder);
        assert.equal(rx.afterClose(), 0, 'no message after onclose');
        assert.deepEqual(rx.errors, []);
      } finally {
        await proxy.close();
        await srv.close();
      }
    });
  });
}

describe('close() against a peer that stops reading', () => {
  test('is bounded (no progress for CLOSE_GRACE_MS), and what was not delivered is reported, never silently dropped', async () => {
    const got = deferred<EncryptedWebSocketServerTransport>();
    const srv = await startServer({ onConnection: (t) => got.resolve(t), limits: { sendHighWaterMarkBytes: 16 * 1024 } });
    const proxy = await startStallingProxy(srv.port);
    try {
      const client = new EncryptedWebSocketClientTransport(proxy.url, { identity: NodeIdentity.generate(), allowAnyPeer: true });
      await client.start();
      const st = await within(got.promise, 5000, 'the server connection');
      await st.start();
      const errors: Error[] = [];
      st.onerror = (e) => errors.push(e);
      proxy.pause(); // and never resumed
      const outcomes = Array.from({ length: COUNT }, (_, i) => st.send(note(i)).then(() => 'sent', (e: Error) => (e as { code?: string }).code));
      const started = Date.now();
      await within(st.close(), 10_000, 'close() to give up on the stalled peer');
      assert.ok(Date.now() - started < 6000, `close() took ${Date.now() - started} ms`);
      const results = await Promise.all(outcomes);
      const failed = results.filter((r) => r !== 'sent');
      assert.ok(failed.length > 0 && failed.every((r) => r === 'ERR_CONNECTION_CLOSED'), `outcomes: ${[...new Set(results)]}`);
      // Frames already handed to the socket but never taken by the peer are reported too.
      assert.ok(errors.some((e) => /not delivered/.test(e.message)), `errors: ${errors.map((e) => e.message)}`);
      await client.close();
    } finally {
      await proxy.close();
      await srv.close();
    }
  });
});
