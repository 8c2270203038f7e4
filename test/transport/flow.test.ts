/**
 * Receive-side backpressure (`pauseReceiving` / `resumeReceiving`, built on
 * the Inbox): a consumer that falls behind stops the socket being read, the
 * peer's sends then wait, and on resume every message arrives, in order.
 * The keepalive does not mistake our own pause for a dead peer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { EncryptedWebSocketClientTransport, NodeIdentity, type EncryptedWebSocketServerTransport } from '../../src/index.js';
import { deferred, startServer, within } from './helpers.js';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a paused receiver stops reading: the sender blocks, nothing is lost, order is kept, keepalive stays quiet', async () => {
  const got = deferred<EncryptedWebSocketServerTransport>();
  const received: number[] = [];
  const firstArrived = deferred();
  const srv = await startServer({
    limits: { keepaliveIntervalMs: 100 },
    onConnection: async (t) => {
      t.onmessage = (m) => {
        received.push((m as unknown as { params: { i: number } }).params.i);
        if (received.length === 1) {
          t.pauseReceiving();
          firstArrived.resolve();
        }
      };
      await t.start();
      got.resolve(t);
    },
  });
  const client = new EncryptedWebSocketClientTransport(srv.url, { identity: NodeIdentity.generate(), allowAnyPeer: true, sendHighWaterMarkBytes: 64 * 1024 });
  try {
    await client.start();
    const server = await within(got.promise, 5000, 'the connection');
    const pad = 'p'.repeat(64 * 1024);
    const COUNT = 400; // 25 MiB: far more than the socket buffers on both sides hold
    const sends: Array<Promise<void>> = [];
    for (let i = 0; i < COUNT; i++) sends.push(client.send({ jsonrpc: '2.0', method: 'notifications/n', params: { i, pad } } as JSONRPCMessage));
    await within(firstArrived.promise, 5000, 'the first message');
    // Well over two keepalive intervals: a paused receiver does not fail its peer for missing pongs.
    await tick(800);
    assert.ok(received.length < 40, `${received.length} messages delivered while paused`);
    assert.ok(client.sendBlocked, 'backpressure reached the sender');
    const settled = await Promise.race([Promise.all(sends).then(() => true), tick(50).then(() => false)]);
    assert.equal(settled, false, 'the sender is still waiting');
    assert.ok(!server.closed && !client.closed);
    server.resumeReceiving();
    await within(Promise.all(sends), 20_000, 'every send to go out');
    for (let i = 0; i < 200 && received.length < COUNT; i++) await tick(20);
    assert.deepEqual(received, Array.from({ length: COUNT }, (_, i) => i));
  } finally {
    await client.close();
    await srv.close();
  }
});
