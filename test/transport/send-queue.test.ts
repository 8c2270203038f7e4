/**
 * SendQueue on its own, over a real ws pair on loopback: frames sent in one
 * event-loop turn leave in one socket write (coalescing), arrive complete and
 * in order, and backpressure (high-water mark, bounded queue,
 * ERR_SEND_BUFFER_FULL) still holds while the socket is corked and flushed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { COALESCE_FLUSH_BYTES, SendQueue } from '../../src/transport/send-queue.js';

interface Pair {
  client: WebSocket;
  server: WebSocket;
  /** Socket write requests (write or writev) made by the client since the pair opened. */
  writes(): number;
  close(): Promise<void>;
}

async function pair(): Promise<Pair> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
  await once(wss, 'listening');
  const serverSide = new Promise<WebSocket>((resolve) => wss.once('connection', resolve));
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`, { perMessageDeflate: false });
  client.on('error', () => {});
  await once(client, 'open');
  const server = await serverSide;
  server.on('error', () => {});
  // Each _writeGeneric call is one libuv write or writev of one or more chunks.
  const socket = (client as unknown as { _socket: Socket & { _writeGeneric: (...args: unknown[]) => unknown } })._socket;
  let writes = 0;
  const original = socket._writeGeneric;
  socket._writeGeneric = function (this: Socket, ...args: unknown[]) {
    writes++;
    return original.apply(this, args);
  };
  return {
    client,
    server,
    writes: () => writes,
    close: async () => {
      client.terminate();
      server.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

function collect(ws: WebSocket, count: number): Promise<Buffer[]> {
  const got: Buffer[] = [];
  return new Promise((resolve) => {
    ws.on('message', (data: Buffer) => {
      got.push(data);
      if (got.length === count) resolve(got);
    });
  });
}

const frame = (i: number, bytes = 64) => {
  const b = Buffer.alloc(bytes, i & 0xff);
  b.writeUInt32BE(i, 0);
  return b;
};

test('frames sent in one turn leave in a few socket writes (one per COALESCE_FLUSH_BYTES), complete and in order', async () => {
  const p = await pair();
  try {
    const queue = new SendQueue(p.client, { highWaterMarkBytes: 1024 * 1024, maxBufferBytes: 64 * 1024 * 1024 });
    const count = 200;
    const received = collect(p.server, count + 3);
    const before = p.writes();
    const sends: Array<Promise<void>> = [];
    let bytes = 0;
    for (let i = 0; i < count; i++) {
      const f = frame(i, 100 + (i % 7));
      bytes += f.length;
      sends.push(queue.push(100, () => f));
    }
    await Promise.all(sends);
    await new Promise((r) => setImmediate(r));
    const oneTurn = p.writes() - before;
    // ws adds a 2-byte header per frame; one write per full COALESCE_FLUSH_BYTES, one for the rest.
    const most = Math.ceil(bytes / COALESCE_FLUSH_BYTES) + 1;
    assert.ok(oneTurn <= most, `200 frames in one turn took ${oneTurn} socket writes, expected at most ${most}`);
    // Text frames (strings, and Buffers marked as text) keep their kind and their place.
    await queue.push(5, () => 'hello');
    await queue.push(5, () => Buffer.from('world'), true);
    await queue.push(100, () => frame(count));
    const got = await received;
    for (let i = 0; i < count; i++) {
      assert.equal(got[i]!.readUInt32BE(0), i, `frame ${i} in place`);
      assert.equal(got[i]!.length, 100 + (i % 7));
    }
    assert.equal(got[count]!.toString(), 'hello');
    assert.equal(got[count + 1]!.toString(), 'world');
    assert.equal(got[count + 2]!.readUInt32BE(0), count);
  } finally {
    await p.close();
  }
});

test('frames sent in separate turns are not held back', async () => {
  const p = await pair();
  try {
    const queue = new SendQueue(p.client, { highWaterMarkBytes: 1024 * 1024, maxBufferBytes: 64 * 1024 * 1024 });
    for (let i = 0; i < 5; i++) {
      const got = collect(p.server, 1);
      await queue.push(10, () => frame(i));
      assert.equal((await got)[0]!.readUInt32BE(0), i);
      p.server.removeAllListeners('message');
    }
  } finally {
    await p.close();
  }
});

test('backpressure: sends wait above the high-water mark, the queue is bounded, and everything accepted arrives in order', async () => {
  const p = await pair();
  try {
    const queue = new SendQueue(p.client, { highWaterMarkBytes: 64 * 1024, maxBufferBytes: 1024 * 1024 });
    // The server stops reading; then more than any loopback socket buffer is sent, in one turn.
    (p.server as unknown as { _socket: Socket })._socket.pause();
    const big = 16 * 1024 * 1024;
    const resolved: number[] = [];
    let refused = 0;
    const settle: Array<Promise<void>> = [];
    // One big frame (always accepted: nothing queued before it), then 256 KiB frames
    // until the bounded queue refuses: 1 MiB of room, so four wait and the fifth is refused.
    settle.push(queue.push(big, () => frame(0, big)).then(() => void resolved.push(0)));
    for (let i = 1; i <= 8; i++) {
      const p1 = queue.push(256 * 1024, () => frame(i, 256 * 1024));
      settle.push(
        p1.then(
          () => void resolved.push(i),
          (err: { code?: string }) => {
            assert.equal(err.code, 'ERR_SEND_BUFFER_FULL');
            refused++;
          },
        ),
      );
    }
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(resolved, [0], 'only the frame that went straight to the socket is handed over');
    assert.equal(queue.queuedBytes, 4 * 256 * 1024);
    assert.equal(refused, 4);
    const expected = [0, 1, 2, 3, 4];
    const received = collect(p.server, expected.length);
    (p.server as unknown as { _socket: Socket })._socket.resume();
    await Promise.all(settle);
    assert.deepEqual(resolved, expected, 'queued sends resolve in order once the socket drains');
    const got = await received;
    assert.deepEqual(got.map((b) => b.readUInt32BE(0)), expected);
    assert.equal(got[0]!.length, big);
    assert.equal(queue.queuedBytes, 0);
  } finally {
    await p.close();
  }
});

test('a closed socket fails queued and later sends with ERR_CONNECTION_CLOSED', async () => {
  const p = await pair();
  try {
    const queue = new SendQueue(p.client, { highWaterMarkBytes: 1024, maxBufferBytes: 64 * 1024 * 1024 });
    (p.server as unknown as { _socket: Socket })._socket.pause();
    await queue.push(8 * 1024 * 1024, () => frame(0, 8 * 1024 * 1024));
    const waiting = queue.push(10, () => frame(1));
    p.client.terminate();
    await assert.rejects(waiting, { code: 'ERR_CONNECTION_CLOSED' });
    await assert.rejects(queue.push(10, () => frame(2)), { code: 'ERR_CONNECTION_CLOSED' });
  } finally {
    await p.close();
  }
});
