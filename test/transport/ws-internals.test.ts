/**
 * The one ws internal we rely on: `ws._receiver._maxPayload`. These tests pin
 * its behaviour on the installed ws, so an upgrade that moves it fails here
 * rather than silently lifting the pre-authentication size limit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { getMaxPayload, setMaxPayload } from '../../src/transport/ws-internals.js';
import { closeOf } from './raw-peers.js';

test('setMaxPayload refuses sockets without the internal field and nonsensical limits', () => {
  assert.throws(() => setMaxPayload({} as WebSocket, 10), /unsupported ws version/);
  assert.throws(() => setMaxPayload({ _receiver: {} } as unknown as WebSocket, 10), /unsupported ws version/);
  assert.throws(() => setMaxPayload({ _receiver: { _maxPayload: 5 } } as unknown as WebSocket, 0), RangeError);
});

test('a limit raised inside a message handler applies to the very next frame, and a lowered one is enforced', async () => {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', maxPayload: 16, perMessageDeflate: false });
  await once(wss, 'listening');
  try {
    const serverSide = new Promise<WebSocket>((resolve) => wss.once('connection', resolve));
    const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`, { perMessageDeflate: false });
    client.on('error', () => {});
    await once(client, 'open');
    const ws = await serverSide;
    ws.on('error', () => {});
    assert.equal(getMaxPayload(ws), 16);
    const got: number[] = [];
    const second = new Promise<void>((resolve) =>
      ws.on('message', (data: Buffer) => {
        got.push(data.length);
        if (got.length === 1) setMaxPayload(ws, 1000); // raise synchronously, as the handshake driver does
        if (got.length === 2) resolve();
      }),
    );
    // Both frames leave in one write, so ws parses them from the same chunk.
    client.send(Buffer.alloc(10));
    client.send(Buffer.alloc(500));
    await second;
    assert.deepEqual(got, [10, 500]);
    setMaxPayload(ws, 100);
    const closed = closeOf(client);
    client.send(Buffer.alloc(101));
    assert.equal((await closed).code, 1009);
  } finally {
    for (const c of wss.clients) c.terminate();
    await new Promise((resolve) => wss.close(resolve));
  }
});
