// Inbox (src/transport/inbox.ts): frames queue while nobody holds the inbox and are replayed in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { WebSocket } from 'ws';
import { Inbox } from '../../src/transport/inbox.js';

function fakeSocket(): { ws: WebSocket; paused: () => boolean } {
  let paused = false;
  const ws = { pause: () => (paused = true), resume: () => (paused = false) } as unknown as WebSocket;
  return { ws, paused: () => paused };
}

test('frames received before a handler are replayed to it in order, later ones go straight through', () => {
  const { ws } = fakeSocket();
  const inbox = new Inbox(ws, 8);
  inbox.receive(Buffer.from('a'), false);
  inbox.receive(Buffer.from('b'), true);
  assert.equal(inbox.queued, 2);
  const got: string[] = [];
  inbox.setHandler((data, isBinary) => got.push(`${data.toString()}:${isBinary}`));
  inbox.receive(Buffer.from('c'), false);
  assert.deepEqual(got, ['a:false', 'b:true', 'c:false']);
  assert.equal(inbox.queued, 0);
});

test('a handler that clears the inbox during the replay stops it: no frame after the clear is delivered', () => {
  const { ws } = fakeSocket();
  const inbox = new Inbox(ws, 8);
  for (const f of ['a', 'b', 'c']) inbox.receive(Buffer.from(f), false);
  const got: string[] = [];
  inbox.setHandler((data) => {
    got.push(data.toString());
    inbox.clear();
  });
  assert.deepEqual(got, ['a']);
  assert.equal(inbox.queued, 0);
});

test('the socket is paused at the queue cap and resumed when a handler takes the inbox', () => {
  const { ws, paused } = fakeSocket();
  const inbox = new Inbox(ws, 2);
  inbox.receive(Buffer.from('a'), false);
  assert.equal(paused(), false);
  inbox.receive(Buffer.from('b'), false);
  assert.equal(paused(), true);
  inbox.setHandler(() => {});
  assert.equal(paused(), false);
});
