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
 * - a real refusal arrives sealed (`fromPeer`): a trust refusal is final,
 *   also when the server revokes an open session; a refusal by the
 *   connection cap per node id stays retryable;
 * - a close frame 1013 before the initiator's session is what it says (a
 *   server limit, retryable), inside a session only a claim;
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

  test('close code 1013: before its session the initiator reports ERR_LIMIT_REACHED (what happened to its attempt, retryable), a responder does not take it for a limit of its own; in a session it is a truncation', async () => {
    const srv = await startServer();
    let stage: 'handshake' | 'session' = 'handshake';
    const relay = await startRelay({
      upstream: srv.url,
      // Step 1 never reaches the server: both ends see a 1013 in the handshake.
      toServer: (f, i, _req, control) => {
        if (stage !== 'handshake' || i !== 0) return [f];
        control.closeClient(1013, 'ERR_LIMIT_REACHED');
        control.closeServer(1013, 'ERR_LIMIT_REACHED');
        return [];
      },
      // The server's first record (the answer to our ping) is dropped, and a 1013 forged in its place.
      toClient: (f, i, _req, control) => {
        if (stage !== 'session' || i !== 1) return [f];
        control.closeClient(1013, 'ERR_LIMIT_REACHED');
        return [];
      },
    });
    try {
      const refused = new EncryptedWebSocketClientTransport(relay.url, { identity: NodeIdentity.generate(), expectedPeer: srv.identity.nodeId });
      const err = await refused.start().then(() => assert.fail('start() resolved'), (e: McpE2eError) => e);
      assert.equal(describeCode(err), 'ERR_LIMIT_REACHED (peer: ERR_LIMIT_REACHED)');
      assert.equal(err.fromPeer, false);
      assert.ok(isRetryableError(err));
      assert.equal(describeCode(await srv.nextError()), 'ERR_CONNECTION_CLOSED (peer: ERR_LIMIT_REACHED)');

      stage = 'session';
      const c = await clientThrough(relay.url, srv.identity.nodeId);
      await c.t.send({ jsonrpc: '2.0', id: 1, method: 'ping' });
      await within(c.closed, 5000, 'the client to close');
      assert.deepEqual(c.errors.map(describeCode), ['ERR_SESSION_TRUNCATED (peer: ERR_LIMIT_REACHED)']);
    } finally {
      await relay.close();
      await srv.close();
    }
  });

  test('every refusal after authentication arrives sealed: the trust decision at the handshake (final), an allowlist change (revalidated at once), revalidatePeers() after another policy changed, the connection cap per node id (retryable)', async () => {
    const member = NodeIdentity.generate();
    const other = NodeIdentity.generate();
    const banned = new Set<string>();
    // A policy besides the allowlist: the server cannot hear of its changes, revalidatePeers() applies them.
    const trust = {
      verify: (p: { nodeId: string }) => {
        if (banned.has(p.nodeId)) throw new McpE2eError('ERR_PEER_REJECTED', 'banned');
      },
    };
    const srv = await startServer({ allowedPeers: [member.nodeId, other.nodeId], trust, limits: { maxConnectionsPerPeer: 1 } });
    /** A started client and what it reports; `start()` resolves (the server decides only after step 3). */
    const open = async (identity: NodeIdentity) => {
      const t = new EncryptedWebSocketClientTransport(srv.url, { identity, expectedPeer: srv.identity.nodeId });
      const errors: Error[] = [];
      const closed = deferred();
      t.onerror = (e) => errors.push(e);
      t.onclose = () => closed.resolve();
      await t.start();
      return { t, errors, closed: closed.promise };
    };
    const admitted = (n: number) =>
      within(new Promise<void>((resolve) => {
        const poll = () => (srv.server.connections.length === n ? resolve() : setTimeout(poll, 5));
        poll();
      }), 5000, `${n} admitted connections`);
    try {
      const stranger = await open(NodeIdentity.generate());
      await within(stranger.closed, 5000, 'the refusal');
      assert.deepEqual(stranger.errors.map(describeCode), ['ERR_PEER_REJECTED (sealed by peer)']);
      assert.ok(!isRetryableError(stranger.errors[0]));
      assert.equal(codeOf(await srv.nextError()), 'ERR_PEER_REJECTED');

      const a = await open(member);
      await admitted(1);
      // A second connection of the same key: refused right after the handshake, sealed, and worth retrying later.
      const again = await open(member);
      await within(again.closed, 5000, 'the per-peer refusal');
      assert.deepEqual(again.errors.map(describeCode), ['ERR_LIMIT_REACHED (sealed by peer)']);
      assert.ok(isRetryableError(again.errors[0]));
      assert.match((await srv.errorWithCode('ERR_LIMIT_REACHED')).message, /maxConnectionsPerPeer/);

      const b = await open(other);
      await admitted(2);
      // The allowlist changes: the server revalidates by itself, once.
      srv.server.allowList!.set([other.nodeId]);
      await within(a.closed, 5000, 'the member to be dropped');
      assert.deepEqual(a.errors.map(describeCode), ['ERR_PEER_REJECTED (sealed by peer)']);
      assert.equal(srv.server.revalidatePeers(), 0, 'already dropped: not counted twice');
      // Another policy changes: only revalidatePeers() can apply it.
      banned.add(other.nodeId);
      assert.equal(srv.server.revalidatePeers(), 1);
      await within(b.closed, 5000, 'the other to be dropped');
      assert.deepEqual(b.errors.map(describeCode), ['ERR_PEER_REJECTED (sealed by peer)']);
      assert.equal(srv.errors.filter((e) => codeOf(e) === 'ERR_PEER_REJECTED').length, 3, 'the stranger, the revocation and the ban, each reported once');
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
