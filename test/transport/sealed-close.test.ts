/**
 * The sealed end of a session (PROTOCOL.md §6.8) and records of several
 * messages (§6.5), end to end over real sockets and a relay playing the
 * network attacker:
 *
 * - an attacker who drops the tail of a session and closes with 1000 no
 *   longer passes for an orderly close: the receiver gets
 *   ERR_SESSION_TRUNCATED after the messages that did arrive;
 * - a forged close frame `4003 ERR_PEER_REJECTED` is reported as what it is
 *   (a truncation, the claim kept as peerCode) and stays retryable;
 * - a real refusal arrives sealed (`fromPeer`) and is final;
 * - messages sent in one turn travel in one record.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import {
  connectWithRetry,
  EncryptedWebSocketClientTransport,
  isRetryableError,
  McpE2eError,
  NodeIdentity,
  type EncryptedWebSocketServerTransport,
  type Framing,
} from '../../src/index.js';
import { codeOf, deferred, describeCode, startServer, within } from './helpers.js';
import { startRelay, type Frame } from './relay.js';

const note = (i: number): JSONRPCMessage => ({ jsonrpc: '2.0', method: 'notifications/n', params: { i } });
const indexOf = (m: JSONRPCMessage) => (m as unknown as { params: { i: number } }).params.i;
const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

/** A client behind a relay, recording what its MCP layer sees. */
async function clientThrough(relayUrl: string, serverId: string, framings: Framing[] = ['binary']) {
  const t = new EncryptedWebSocketClientTransport(relayUrl, { identity: NodeIdentity.generate(), expectedPeer: serverId, framings });
  const seen: number[] = [];
  const errors: Error[] = [];
  const closed = deferred();
  t.onmessage = (m) => seen.push(indexOf(m));
  t.onerror = (e) => errors.push(e);
  t.onclose = () => closed.resolve();
  await t.start();
  return { t, seen, errors, closed: closed.promise };
}

describe('sealed close and truncation', () => {
  for (const framing of ['binary', 'json'] as Framing[]) {
    test(`${framing}: an orderly close reports nothing; a tail dropped and closed with 1000 is ERR_SESSION_TRUNCATED after what arrived`, async () => {
      const got = deferred<EncryptedWebSocketServerTransport>();
      const srv = await startServer({ onConnection: (t) => got.resolve(t) });
      // Server to client: the handshake message (0), then one record per message; from `cut` on the relay drops everything.
      let cut = Number.POSITIVE_INFINITY;
      const relay = await startRelay({ upstream: srv.url, toClient: (f, i) => (i >= cut ? [] : [f]) });
      try {
        for (const attack of [false, true]) {
          const c = await clientThrough(relay.url, srv.identity.nodeId, [framing]);
          const st = await within(got.promise, 5000, 'the server connection');
          await st.start();
          cut = attack ? 1 + 4 : Number.POSITIVE_INFINITY;
          for (let i = 0; i < 10; i++) {
            await st.send(note(i));
            await nextTurn(); // one record each
          }
          await st.close(); // CLOSE record, then the close frame (1000), which the relay passes on
          await within(c.closed, 5000, 'the client to close');
          if (!attack) {
            assert.deepEqual(c.seen, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
            assert.deepEqual(c.errors, [], 'an orderly, sealed close is not an error');
          } else {
            assert.deepEqual(c.seen, [0, 1, 2, 3], '4 of 10 delivered');
            assert.deepEqual(c.errors.map(describeCode), ['ERR_SESSION_TRUNCATED'], 'and the loss is reported');
            assert.ok(isRetryableError(c.errors[0]));
          }
          got.promise = new Promise((resolve) => (got.resolve = resolve));
        }
      } finally {
        await relay.close();
        await srv.close();
      }
    });
  }

  test('a forged close frame 4003 ERR_PEER_REJECTED is a truncation with an unauthenticated claim: retryable, and connectWithRetry reconnects', async () => {
    const srv = await startServer();
    let forge = true;
    const relay = await startRelay({
      upstream: srv.url,
      toClient: (f: Frame, i, _req, control) => {
        // The server's first record (the answer to our ping): drop it, and end the connection as if refused.
        if (forge && i === 1) {
          forge = false;
          control.closeClient(4003, 'ERR_PEER_REJECTED');
          return [];
        }
        return [f];
      },
    });
    try {
      const c = await clientThrough(relay.url, srv.identity.nodeId);
      await c.t.send({ jsonrpc: '2.0', id: 1, method: 'ping' });
      await within(c.closed, 5000, 'the client to close');
      assert.deepEqual(c.errors.map(describeCode), ['ERR_SESSION_TRUNCATED (peer: ERR_PEER_REJECTED)']);
      const err = c.errors[0] as McpE2eError;
      assert.equal(err.fromPeer, false);
      assert.ok(isRetryableError(err), 'a forged refusal must not make a client give up');
      // What --reconnect does: a new attempt, which the relay now leaves alone.
      const identity = NodeIdentity.generate();
      const again = await connectWithRetry(() => new EncryptedWebSocketClientTransport(relay.url, { identity, expectedPeer: srv.identity.nodeId }), { initialDelayMs: 10, maxAttempts: 3 });
      assert.equal(again.peer?.nodeId, srv.identity.nodeId);
      await again.close();
    } finally {
      await relay.close();
      await srv.close();
    }
  });

  test('a refused identity arrives sealed: ERR_PEER_REJECTED from the peer, not retryable; revalidatePeers() refuses the same way', async () => {
    const allowed = NodeIdentity.generate();
    const srv = await startServer({ allowedPeers: [allowed.nodeId] });
    try {
      const stranger = new EncryptedWebSocketClientTransport(srv.url, { identity: NodeIdentity.generate(), expectedPeer: srv.identity.nodeId });
      const errors: Error[] = [];
      const closed = deferred();
      stranger.onerror = (e) => errors.push(e);
      stranger.onclose = () => closed.resolve();
      await stranger.start(); // the server can only refuse after step 3
      await within(closed.promise, 5000, 'the refusal');
      assert.deepEqual(errors.map(describeCode), ['ERR_PEER_REJECTED (sealed by peer)']);
      assert.ok(!isRetryableError(errors[0]));
      assert.equal(codeOf(await srv.nextError()), 'ERR_PEER_REJECTED');

      const member = new EncryptedWebSocketClientTransport(srv.url, { identity: allowed, expectedPeer: srv.identity.nodeId });
      const memberErrors: Error[] = [];
      const memberClosed = deferred();
      member.onerror = (e) => memberErrors.push(e);
      member.onclose = () => memberClosed.resolve();
      await member.start();
      await member.send({ jsonrpc: '2.0', id: 1, method: 'ping' });
      await within(new Promise<void>((resolve) => {
        const poll = () => (srv.server.connections.length > 0 ? resolve() : setTimeout(poll, 5));
        poll();
      }), 5000, 'the member to be admitted');
      srv.server.allowList!.set([]);
      assert.equal(srv.server.revalidatePeers(), 1);
      await within(memberClosed.promise, 5000, 'the member to be dropped');
      assert.deepEqual(memberErrors.map(describeCode), ['ERR_PEER_REJECTED (sealed by peer)']);
    } finally {
      await srv.close();
    }
  });
});

describe('records of several messages', () => {
  for (const [framing, signatures] of [['binary', true], ['json', true], ['binary', false]] as Array<[Framing, boolean]>) {
    test(`${framing}${signatures ? ', signed' : ''}: 100 messages sent in one turn travel in a few records, all delivered, in order`, async () => {
      const got = deferred<EncryptedWebSocketServerTransport>();
      const srv = await startServer({ onConnection: (t) => got.resolve(t) });
      const upFrames: Frame[] = [];
      const relay = await startRelay({ upstream: srv.url, toServer: (f, i) => (i >= 2 && upFrames.push(f), [f]) });
      try {
        const t = new EncryptedWebSocketClientTransport(relay.url, { identity: NodeIdentity.generate(), expectedPeer: srv.identity.nodeId, framings: [framing], signatures });
        await t.start();
        const st = await within(got.promise, 5000, 'the server connection');
        const seen: number[] = [];
        const all = deferred();
        st.onmessage = (m) => {
          seen.push(indexOf(m));
          if (seen.length === 100) all.resolve();
        };
        await st.start();
        await Promise.all(Array.from({ length: 100 }, (_, i) => t.send(note(i))));
        await within(all.promise, 5000, 'all 100 messages');
        assert.deepEqual(seen, Array.from({ length: 100 }, (_, i) => i));
        // About 45 bytes each, 4 KiB per record: two records (each signed once), not 100.
        assert.ok(upFrames.length <= 3, `${upFrames.length} records for 100 messages`);
        if (framing === 'json') for (const f of upFrames) assert.equal((f.data.toString().match(/"signature"/g) ?? []).length, signatures ? 1 : 0);
        await t.close();
      } finally {
        await relay.close();
        await srv.close();
      }
    });
  }
});
