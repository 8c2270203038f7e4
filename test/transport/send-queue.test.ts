/**
 * SendQueue on its own, over a real ws pair on loopback: messages sent in
 * one event-loop turn are packed into few frames (records) and leave in few
 * socket writes, complete and in order; a lone message is not held back; a
 * large one goes alone; backpressure (high-water mark, bounded queue,
 * ERR_SEND_BUFFER_FULL) holds. The packer here writes a frame as the JSON
 * list of its messages' texts, so the receiver sees how they were grouped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { COALESCE_FLUSH_BYTES, SendQueue, type OutgoingMessage, type SendQueueOptions } from '../../src/transport/send-queue.js';
import { ContentType } from '../../src/protocol.js';

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

/** A message whose text starts with its number and is `bytes` long. */
const message = (i: number, bytes = 64): OutgoingMessage => {
  const text = `${i}:`.padEnd(bytes, 'x');
  return { text, contentType: ContentType.MCP, bytes: text.length };
};
const numberOf = (text: string) => Number(text.slice(0, text.indexOf(':')));
/** Frames of the test packer: the JSON list of the texts (a binary frame when `binary`). */
const packer = (binary = false) => (messages: readonly OutgoingMessage[]) => {
  const json = JSON.stringify(messages.map((m) => m.text));
  return binary ? Buffer.from(json) : json;
};
const frames = (got: Buffer[]) => got.map((b) => JSON.parse(b.toString()) as string[]);
const options = (o: Partial<SendQueueOptions> = {}): SendQueueOptions => ({
  highWaterMarkBytes: 1024 * 1024,
  maxBufferBytes: 64 * 1024 * 1024,
  maxMessagesPerFrame: 256,
  frameTargetBytes: 4096,
  perMessageOverheadBytes: 0,
  ...o,
});

test('messages sent in one turn are packed into frames of about frameTargetBytes, in order, in few socket writes', async () => {
  const p = await pair();
  try {
    const queue = new SendQueue(p.client, options(), packer());
    const count = 200;
    const sends: Array<Promise<void>> = [];
    let bytes = 0;
    const before = p.writes();
    const all: string[] = [];
    for (let i = 0; i < count; i++) {
      const m = message(i, 100 + (i % 7));
      bytes += m.bytes;
      all.push(m.text);
      sends.push(queue.push(m));
    }
    const expectedFrames = Math.ceil(bytes / 4096);
    const received = collect(p.server, expectedFrames);
    await Promise.all(sends);
    const got = frames(await received);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(got.flat(), all, 'every message, in order');
    assert.equal(got.length, expectedFrames, `${got.length} frames for ${bytes} bytes`);
    for (const f of got.slice(0, -1)) assert.ok(f.join('').length >= 4096 - 107 && f.join('').length < 4096 + 107, 'frames are filled to about the target');
    const writes = p.writes() - before;
    assert.ok(writes <= Math.ceil(bytes / COALESCE_FLUSH_BYTES) + 2, `${writes} socket writes`);
  } finally {
    await p.close();
  }
});

test('a lone message is not held back, and goes in a frame of its own', async () => {
  const p = await pair();
  try {
    const queue = new SendQueue(p.client, options(), packer(true));
    for (let i = 0; i < 5; i++) {
      const got = collect(p.server, 1);
      await queue.push(message(i, 10));
      assert.deepEqual(frames(await got), [[message(i, 10).text]]);
      p.server.removeAllListeners('message');
    }
  } finally {
    await p.close();
  }
});

test('a message above frameTargetBytes goes alone, after the messages before it; maxMessagesPerFrame caps a frame', async () => {
  const p = await pair();
  try {
    const queue = new SendQueue(p.client, options({ maxMessagesPerFrame: 3 }), packer());
    const got = collect(p.server, 4);
    for (const m of [message(0), message(1), message(2, 10_000), message(3), message(4), message(5), message(6)]) void queue.push(m);
    assert.deepEqual(frames(await got).map((f) => f.map(numberOf)), [[0, 1], [2], [3, 4, 5], [6]]);
  } finally {
    await p.close();
  }
});

test('backpressure: sends wait above the high-water mark, the queue is bounded, and everything accepted arrives in order', async () => {
  const p = await pair();
  try {
    const queue = new SendQueue(p.client, options({ highWaterMarkBytes: 64 * 1024, maxBufferBytes: 1024 * 1024 }), packer(true));
    // The server stops reading; then more than any loopback socket buffer is sent, in one turn.
    (p.server as unknown as { _socket: Socket })._socket.pause();
    const big = 16 * 1024 * 1024;
    const resolved: number[] = [];
    let refused = 0;
    const settle: Array<Promise<void>> = [];
    // One big message (always accepted: nothing queued before it), then 256 KiB messages
    // until the bounded queue refuses: 1 MiB of room, so four wait and the fifth is refused.
    settle.push(queue.push(message(0, big)).then(() => void resolved.push(0)));
    for (let i = 1; i <= 8; i++) {
      settle.push(
        queue.push(message(i, 256 * 1024)).then(
          () => void resolved.push(i),
          (err: { code?: string }) => {
            assert.equal(err.code, 'ERR_SEND_BUFFER_FULL');
            refused++;
          },
        ),
      );
    }
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(resolved, [0], 'only the message that went straight to a frame is handed over');
    assert.equal(queue.queuedBytes, 4 * 256 * 1024);
    assert.equal(refused, 4);
    const expected = [0, 1, 2, 3, 4];
    const received = collect(p.server, expected.length);
    (p.server as unknown as { _socket: Socket })._socket.resume();
    await Promise.all(settle);
    assert.deepEqual(resolved, expected, 'queued sends resolve in order once the socket drains');
    const got = frames(await received);
    assert.deepEqual(got.map((f) => f.map(numberOf)), expected.map((i) => [i]));
    assert.equal(got[0]![0]!.length, big);
    assert.equal(queue.queuedBytes, 0);
  } finally {
    await p.close();
  }
});

test('a closed socket fails queued and later sends with ERR_CONNECTION_CLOSED', async () => {
  const p = await pair();
  try {
    const queue = new SendQueue(p.client, options({ highWaterMarkBytes: 1024 }), packer(true));
    (p.server as unknown as { _socket: Socket })._socket.pause();
    await queue.push(message(0, 8 * 1024 * 1024));
    const waiting = queue.push(message(1));
    p.client.terminate();
    await assert.rejects(waiting, { code: 'ERR_CONNECTION_CLOSED' });
    await assert.rejects(queue.push(message(2)), { code: 'ERR_CONNECTION_CLOSED' });
  } finally {
    await p.close();
  }
});

test('the per-message overhead counts toward the target: a frame of several messages never exceeds it', async () => {
  const p = await pair();
  try {
    const sizes: number[] = [];
    const queue = new SendQueue(p.client, options({ frameTargetBytes: 65_536, perMessageOverheadBytes: 5 }), (messages) => {
      if (messages.length > 1) sizes.push(messages.reduce((n, m) => n + m.bytes + 5, 0));
      return JSON.stringify(messages.map((m) => m.text));
    });
    const got = collect(p.server, 3);
    // 128 messages of 1,024 bytes: 64 of them are exactly 65,536 bytes, 65,856 with their headers; 63 fit.
    for (let i = 0; i < 128; i++) void queue.push(message(i, 1024));
    const f = frames(await got);
    assert.deepEqual(f.flat().map(numberOf), Array.from({ length: 128 }, (_, i) => i));
    assert.deepEqual(f.map((x) => x.length), [63, 63, 2]);
    assert.ok(sizes.every((n) => n <= 65_536), `frame sizes ${sizes.join(', ')}`);
  } finally {
    await p.close();
  }
});
