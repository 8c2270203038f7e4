/**
 * Admission control of unauthenticated connections (src/transport/admission.ts
 * and its use in server.ts): per-address buckets (IPv6 by /64), the token
 * bucket on handshake starts, pending handshakes per address, eviction when
 * the table is full, the step-1 deadline, and connections per node id.
 * Attackers come from several 127.0.0.x addresses (all loopback on Linux).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { EncryptedWebSocketClientTransport, Handshake, NodeIdentity, SUBPROTOCOL_ENCRYPTED } from '../../src/index.js';
import { addressKey, PendingTable, RateLimiter } from '../../src/transport/admission.js';
import { codeOf, connectClient, startServer, textOf, within } from './helpers.js';
import { closeOf, openRaw } from './raw-peers.js';
import type { WebSocket } from 'ws';

const id = () => NodeIdentity.generate();

describe('admission: bookkeeping', () => {
  test('addresses: IPv4 as is, IPv4-mapped IPv6 as IPv4, IPv6 by its /64', () => {
    assert.equal(addressKey('127.0.0.1'), '127.0.0.1');
    assert.equal(addressKey('::ffff:10.1.2.3'), '10.1.2.3');
    assert.equal(addressKey('::ffff:a01:203'), '10.1.2.3');
    assert.equal(addressKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
    assert.equal(addressKey('2001:db8:1:2::ffff'), '2001:db8:1:2::/64');
    assert.equal(addressKey('2001:DB8:1:2:0:0:0:1'), '2001:db8:1:2::/64');
    assert.notEqual(addressKey('2001:db8:1:3::1'), addressKey('2001:db8:1:2::1'));
    assert.equal(addressKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
    assert.equal(addressKey('::1'), '0:0:0:0::/64');
    assert.equal(addressKey(undefined), '');
  });

  test('rate: a burst, then the refill rate; the map of buckets stays bounded', () => {
    const r = new RateLimiter(2, 3, 4);
    for (let i = 0; i < 3; i++) assert.ok(r.take('a', 1000));
    assert.ok(!r.take('a', 1000));
    assert.ok(!r.available('a', 1000) && r.available('b', 1000) && r.available('a', 1500), 'available() looks without taking');
    assert.ok(r.take('b', 1000), 'another address has its own bucket');
    assert.ok(!r.take('a', 1400), '0.8 of a token after 400 ms at 2/s');
    assert.ok(r.take('a', 1500));
    assert.ok(!r.take('a', 1500));
    for (let i = 0; i < 100; i++) r.take(`x${i}`, 2000);
    assert.ok(r.size <= 4, `${r.size} buckets`);
  });

  test('pending table: the victim is the oldest of the bucket holding the most', () => {
    const t = new PendingTable<string>();
    t.add('a1', 'A');
    t.add('b1', 'B');
    t.add('a2', 'A');
    t.add('c1', 'C');
    assert.equal(t.victim(), 'a1');
    t.delete('a1');
    assert.equal(t.countOf('A'), 1);
    assert.equal(t.victim(), 'b1', 'all equal: the oldest overall');
    t.delete('b1');
    t.delete('a2');
    t.delete('c1');
    assert.equal(t.size, 0);
    assert.equal(t.victim(), undefined);
  });
});

/** Open `n` upgraded sockets from `address` that never send step 1; returns those that opened and how many were refused (HTTP 429). */
async function idleSockets(url: string, address: string, n: number): Promise<{ open: WebSocket[]; refused: number }> {
  const results = await Promise.allSettled(Array.from({ length: n }, () => openRaw(url, [SUBPROTOCOL_ENCRYPTED], { localAddress: address })));
  const open = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const refused = results.filter((r) => r.status === 'rejected' && /429/.test(String((r.reason as Error).message))).length;
  return { open, refused };
}

describe('admission: under attack', () => {
  test('8 addresses holding every pending slot they may (and more) do not lock out an honest client', async () => {
    // A table of 32 pending handshakes, 8 per address: 8 attacking addresses
    // try 12 idle sockets each, 96 in all. Each address gets 8 (the rest get
    // 429), and the table overflows, so newcomers evict the oldest of the
    // fullest address. The step-1 deadline is long, so nothing expires here.
    const srv = await startServer({ limits: { maxPendingHandshakes: 32, handshakeStep1TimeoutMs: 60_000 } });
    const attackers: WebSocket[] = [];
    try {
      let refused = 0;
      for (let a = 0; a < 8; a++) {
        const r = await idleSockets(srv.url, `127.0.0.${20 + a}`, 12);
        attackers.push(...r.open);
        refused += r.refused;
      }
      // Honest clients, each from the usual address, all get in.
      for (let i = 0; i < 3; i++) {
        const c = await connectClient(srv.url, { identity: id(), allowAnyPeer: true });
        assert.equal(textOf(await c.client.callTool({ name: 'add', arguments: { a: i, b: 1 } })), String(i + 1));
        await c.client.close();
      }
      assert.ok(refused > 0, 'idle sockets beyond the per-address cap were refused');
      assert.ok(srv.server.pendingHandshakes <= 32, `${srv.server.pendingHandshakes} pending`);
      const evicted = srv.errors.filter((e) => /evicted/.test(e.message)).length;
      assert.ok(evicted > 0, 'the full table made room by evicting');
      // The evicted were told why.
      const closedEarly = attackers.filter((ws) => ws.readyState !== ws.OPEN).length;
      assert.ok(closedEarly > 0);
    } finally {
      for (const ws of attackers) ws.terminate();
      await srv.close();
    }
  });

  test('a socket that never sends step 1 loses its slot after handshakeStep1TimeoutMs (4008 ERR_HANDSHAKE_TIMEOUT), long before the handshake timeout', async () => {
    const srv = await startServer({ limits: { handshakeStep1TimeoutMs: 200 } });
    try {
      assert.equal(srv.server.limits.handshakeTimeoutMs, 10_000);
      const ws = await openRaw(srv.url, [SUBPROTOCOL_ENCRYPTED]);
      const started = Date.now();
      assert.deepEqual(await closeOf(ws, 8000), { code: 4008, reason: 'ERR_HANDSHAKE_TIMEOUT' });
      assert.ok(Date.now() - started < 5000, `closed after ${Date.now() - started} ms`);
      // A client that sends step 1 at once is not affected.
      const c = await connectClient(srv.url, { identity: id(), allowAnyPeer: true });
      await c.client.close();
    } finally {
      await srv.close();
    }
  });

  test('handshake starts per address: a burst, then HTTP 429 (ERR_LIMIT_REACHED); other addresses are not affected', async () => {
    const srv = await startServer({ limits: { handshakeBurstPerAddress: 4, handshakeRatePerAddress: 1 } });
    const step1 = () => new Handshake('initiator', id()).start();
    try {
      const got: WebSocket[] = [];
      for (let i = 0; i < 4; i++) {
        const ws = await openRaw(srv.url, [SUBPROTOCOL_ENCRYPTED], { localAddress: '127.0.0.40' });
        ws.send(step1());
        got.push(ws);
      }
      await assert.rejects(openRaw(srv.url, [SUBPROTOCOL_ENCRYPTED], { localAddress: '127.0.0.40' }), /429/);
      const t = new EncryptedWebSocketClientTransport(srv.url, { identity: id(), allowAnyPeer: true });
      await t.start(); // 127.0.0.1 has its own bucket
      await t.close();
      assert.ok(srv.errors.some((e) => codeOf(e) === 'ERR_LIMIT_REACHED' && /per second/.test(e.message)));
      for (const ws of got) ws.terminate();
    } finally {
      await srv.close();
    }
  });

  test('connections per node id: one allowed key cannot take more than maxConnectionsPerPeer (1013 ERR_LIMIT_REACHED after the handshake)', async () => {
    const srv = await startServer({ limits: { maxConnectionsPerPeer: 2 } });
    const key = id();
    try {
      const a = await connectClient(srv.url, { identity: key, allowAnyPeer: true });
      const b = await connectClient(srv.url, { identity: key, allowAnyPeer: true });
      const third = new EncryptedWebSocketClientTransport(srv.url, { identity: key, allowAnyPeer: true });
      const refused = new Promise<Error>((resolve) => (third.onerror = resolve));
      await third.start().catch(() => {});
      assert.equal(codeOf(await within(refused, 5000, 'the refusal')), 'ERR_LIMIT_REACHED');
      assert.match((await srv.errorWithCode('ERR_LIMIT_REACHED')).message, /maxConnectionsPerPeer/);
      // Another key is not affected, and a freed slot is reusable.
      const other = await connectClient(srv.url, { identity: id(), allowAnyPeer: true });
      await other.client.close();
      await a.client.close();
      await within(a.closed, 5000, 'a to close');
      for (let i = 0; i < 50 && srv.server.connections.length > 1; i++) await new Promise((r) => setTimeout(r, 20));
      const c = await connectClient(srv.url, { identity: key, allowAnyPeer: true });
      assert.equal(textOf(await c.client.callTool({ name: 'add', arguments: { a: 1, b: 1 } })), '2');
      await c.client.close();
      await b.client.close();
    } finally {
      await srv.close();
    }
  });
});
