/**
 * The browse cache and query schedule of the mDNS source
 * (src/discovery/sources/mdns-cache.ts) on a virtual clock: a service is
 * found once and updated only on change; a goodbye expires it in 1 s, a
 * silent one at its TTL; refreshes at 80-95 % of TTL; cache-flush; the
 * back-off 1 s, 2 s, 4 s ... 1 h; and the caps (services, rate of new ones,
 * addresses per host, TTL) under floods, with everything dropped counted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NodeIdentity } from '../../src/identity/identity.js';
import { BrowseCache, DEFAULT_MAX_TTL_MS, QuerySchedule, type BrowseEvent } from '../../src/discovery/sources/mdns-cache.js';
import { encodeTxt, SERVICE_NAME, type BrowseRecord } from '../../src/discovery/sources/mdns-wire.js';

const T0 = 1_800_000_000_000;
const noJitter = () => 0;

function service(n: number, opts: { ttl?: number; ptrTtl?: number; port?: number; address?: string; id?: NodeIdentity } = {}): BrowseRecord[] {
  const id = opts.id ?? NodeIdentity.fromPrivateKey(Buffer.alloc(32, n + 1));
  const instance = `node-${n}.${SERVICE_NAME}`;
  const host = `host-${n}.local`;
  const ttl = opts.ttl ?? 120;
  return [
    { kind: 'ptr', instance, label: `node-${n}`, ttl: opts.ptrTtl ?? 4500 },
    { kind: 'srv', instance, host, port: opts.port ?? 8000 + n, ttl, flush: true },
    { kind: 'txt', instance, strings: encodeTxt({ nodeId: id.nodeId, protocolVersions: [1] }).map(([k, v]) => Buffer.from(`${k}=${v}`)), ttl: opts.ptrTtl ?? 4500, flush: true },
    { kind: 'addr', host, address: opts.address ?? `10.0.${n >> 8}.${n & 255}`, family: 4, ttl, flush: true },
  ];
}
const goodbye = (records: BrowseRecord[]): BrowseRecord[] => records.map((r) => ({ ...r, ttl: 0 }));
const types = (events: BrowseEvent[]) => events.map((e) => e.type);

test('found once with its URL and id; the same announcement again changes nothing; a new port is an update', () => {
  const cache = new BrowseCache({ random: noJitter });
  const events = cache.handle(service(1), { iface: 'eth0' }, T0);
  assert.deepEqual(types(events), ['found']);
  const s = (events[0] as Extract<BrowseEvent, { type: 'found' | 'updated' }>).service;
  assert.deepEqual(s.urls, ['ws://10.0.0.1:8001']);
  assert.equal(s.nodeId, NodeIdentity.fromPrivateKey(Buffer.alloc(32, 2)).nodeId);
  assert.deepEqual(cache.handle(service(1), { iface: 'eth0' }, T0 + 1000), [], 'no duplicate event (js-libp2p #1630)');
  assert.deepEqual(types(cache.handle(service(1, { port: 9999 }), { iface: 'eth0' }, T0 + 2000)), ['updated']);
  assert.equal(cache.services().length, 1);
});

test('a PTR alone resolves nothing; SRV, TXT and address arriving in later packets complete it', () => {
  const cache = new BrowseCache({ random: noJitter });
  const [ptr, srv, txt, addr] = service(1);
  assert.deepEqual(cache.handle([ptr!], {}, T0), []);
  assert.deepEqual(cache.handle([srv!, txt!], {}, T0 + 10), []);
  assert.deepEqual(types(cache.handle([addr!], {}, T0 + 20)), ['found']);
  // Addresses of a host no cached SRV names are not kept; SRV/TXT of an instance no PTR announced neither.
  const lone = new BrowseCache();
  assert.deepEqual(lone.handle([srv!, txt!, addr!], {}, T0), []);
  assert.equal(lone.addressCount, 0);
});

test('an incomplete instance is asked for its SRV and TXT a few times, then no more', () => {
  const cache = new BrowseCache({ random: noJitter });
  cache.handle([service(1)[0]!], {}, T0);
  const asked: number[] = [];
  for (let t = T0; t < T0 + 10_000; t += 50) if (cache.dueRefreshes(t).some((q) => q.type === 'SRV')) asked.push(t - T0);
  assert.deepEqual(asked, [250, 1250, 4250]);
});

test('a goodbye (TTL 0) expires the service 1 s later, reported as a goodbye', () => {
  const cache = new BrowseCache({ random: noJitter });
  cache.handle(service(1), {}, T0);
  assert.deepEqual(cache.handle(goodbye(service(1)), {}, T0 + 5000), []);
  assert.deepEqual(cache.expire(T0 + 5999), []);
  const lost = cache.expire(T0 + 6000);
  assert.deepEqual(lost.map((e) => [e.type, (e as { reason: string }).reason]), [['lost', 'goodbye']]);
  assert.equal(cache.size, 0);
  assert.deepEqual(cache.handle(goodbye(service(2)), {}, T0 + 7000), [], 'a goodbye for something unknown creates nothing');
  assert.equal(cache.size, 0);
});

test('a node that goes silent (kill -9) is lost when its shortest TTL runs out, after refresh queries at 80, 85, 90, 95 %', () => {
  const cache = new BrowseCache({ random: noJitter });
  cache.handle(service(1, { ttl: 120 }), {}, T0);
  const refreshes: number[] = [];
  for (let t = T0; t < T0 + 120_000; t += 100) {
    const q = cache.dueRefreshes(t);
    if (q.some((x) => x.type === 'SRV')) refreshes.push(Math.round((t - T0) / 1200));
    assert.deepEqual(cache.expire(t), []);
  }
  assert.deepEqual(refreshes, [80, 85, 90, 95], 'percent of the TTL');
  const lost = cache.expire(T0 + 120_000);
  assert.deepEqual(lost.map((e) => [e.type, (e as { reason: string }).reason]), [['lost', 'expired']]);
  assert.equal(cache.nextDeadlineMs() !== undefined, true, 'the PTR (4500 s) is still cached, waiting for the node to come back');
});

test('refreshes are coalesced: records past 70 % of their TTL go along with one that is due', () => {
  const cache = new BrowseCache({ random: noJitter });
  cache.handle(service(1), {}, T0);
  cache.handle(service(2), {}, T0 + 20_000);
  // At 96 s service 1 is at 80 %, service 2 at 63 %: only 1 is asked for.
  assert.deepEqual(cache.dueRefreshes(T0 + 96_000).map((q) => q.name).filter((n) => n.startsWith('node')), [`node-1.${SERVICE_NAME}`]);
  const c2 = new BrowseCache({ random: noJitter });
  c2.handle(service(1), {}, T0);
  c2.handle(service(2), {}, T0 + 10_000);
  // Service 2 at 72 % when service 1 is due: both in one query, and service 2 is not asked again at its own 80 %.
  const q = c2.dueRefreshes(T0 + 96_000).map((x) => `${x.type} ${x.name}`);
  assert.ok(q.includes(`SRV node-1.${SERVICE_NAME}`) && q.includes(`SRV node-2.${SERVICE_NAME}`) && q.includes('A host-2.local'), q.join(', '));
  // Nothing answered (a virtual network): service 1 is asked again at its 85 %, service 2 not before its own 85 %.
  assert.deepEqual(c2.dueRefreshes(T0 + 106_000).filter((x) => x.type === 'SRV').map((x) => x.name), [`node-1.${SERVICE_NAME}`]);
});

test('our own service is cached and reported but never refreshed', () => {
  const me = NodeIdentity.fromPrivateKey(Buffer.alloc(32, 2));
  const cache = new BrowseCache({ random: noJitter, ownNodeId: () => me.nodeId });
  assert.deepEqual(types(cache.handle(service(1), {}, T0)), ['found'], 'service 1 is ours (seed 2)');
  for (let t = T0; t < T0 + 120_000; t += 500) assert.deepEqual(cache.dueRefreshes(t), []);
});

test('a TTL beyond two hours is read as two hours, or as maxTtlMs', () => {
  const cache = new BrowseCache({ random: noJitter });
  cache.handle(service(1, { ttl: 0x7fffffff, ptrTtl: 0x7fffffff }), {}, T0);
  assert.equal(cache.services()[0]!.expiresAtMs, T0 + DEFAULT_MAX_TTL_MS);
  const short = new BrowseCache({ random: noJitter, maxTtlMs: 5000 });
  short.handle(service(1), {}, T0);
  assert.equal(short.services()[0]!.expiresAtMs, T0 + 5000);
  assert.ok(short.dueRefreshes(T0 + 4000).length > 0, 'refreshed at 80 % of the capped TTL');
});

test('cache-flush: a new address for a host expires its older ones 1 s later (RFC 6762 §10.2)', () => {
  const cache = new BrowseCache({ random: noJitter });
  cache.handle(service(1, { address: '10.0.0.1' }), {}, T0);
  const events = cache.handle(service(1, { address: '10.0.0.2' }).slice(3), {}, T0 + 5000);
  assert.deepEqual(types(events), ['updated']);
  assert.deepEqual(cache.services()[0]!.urls, ['ws://10.0.0.2:8001', 'ws://10.0.0.1:8001']);
  cache.expire(T0 + 6000);
  assert.deepEqual(cache.services()[0]!.urls, ['ws://10.0.0.2:8001']);
});

test('the address filter decides what may be dialled; refused addresses are counted', () => {
  const cache = new BrowseCache({ acceptAddress: (a) => a.iface === 'eth0' && a.address.startsWith('10.') });
  assert.deepEqual(cache.handle(service(1, { address: '172.17.0.1' }), { iface: 'eth0' }, T0), []);
  assert.equal(cache.stats.addressesRefused, 1);
  assert.deepEqual(types(cache.handle(service(1), { iface: 'eth0' }, T0 + 1)), ['found']);
});

test('a flood of fake services: at most maxServices cached, new ones rate-limited, real ones kept, all counted', () => {
  const cache = new BrowseCache({ maxServices: 64, newServicesBurst: 16, newServicesPerSecond: 4, random: noJitter });
  for (let n = 0; n < 4; n++) cache.handle(service(n), {}, T0);
  let t = T0;
  for (let n = 4; n < 5000; n++) {
    t += 10; // 100 new services per second
    cache.handle(service(n, { id: NodeIdentity.fromPrivateKey(Buffer.alloc(32, 1)) }), {}, t);
    assert.ok(cache.size <= 64);
  }
  assert.equal(cache.size, 64);
  // 100 new names a second against a burst of 16 and 4 a second: the cap (60 fakes) is reached after ~11 s,
  // until then the rate limit drops the rest; after it, the cap does.
  const { rateLimited, capDropped } = cache.stats;
  assert.ok(rateLimited > 1000 && rateLimited < 1200, `rate-limited ${rateLimited}`);
  assert.equal(rateLimited + capDropped + 60, 4996, 'every fake counted: admitted, rate-limited or over the cap');
  for (let n = 0; n < 4; n++) assert.ok(cache.services().some((s) => s.port === 8000 + n), `service ${n} survived the flood`);
});

test('incomplete instances are evicted first to make room', () => {
  const cache = new BrowseCache({ maxServices: 2, random: noJitter });
  cache.handle([service(1)[0]!], {}, T0);
  cache.handle(service(2), {}, T0);
  assert.deepEqual(types(cache.handle(service(3), {}, T0)), ['found']);
  assert.equal(cache.stats.evicted, 1);
  assert.deepEqual(cache.handle(service(4), {}, T0), [], 'two complete services: the newcomer is dropped');
  assert.equal(cache.stats.capDropped, 1);
});

test('at most maxAddressesPerHost addresses per host, the most recent kept', () => {
  const cache = new BrowseCache({ maxAddressesPerHost: 3, random: noJitter });
  cache.handle(service(1), {}, T0);
  for (let i = 0; i < 50; i++) cache.handle([{ kind: 'addr', host: 'host-1.local', address: `10.1.0.${i}`, family: 4, ttl: 120, flush: false }], {}, T0 + i);
  assert.equal(cache.addressCount, 3);
  assert.deepEqual(cache.services()[0]!.urls, ['ws://10.1.0.49:8001', 'ws://10.1.0.48:8001', 'ws://10.1.0.47:8001']);
});

test('known answers: PTRs with more than half their TTL left', () => {
  const cache = new BrowseCache({ random: noJitter });
  cache.handle(service(1, { ptrTtl: 100 }), {}, T0);
  assert.deepEqual(cache.knownAnswers(T0 + 10_000), [{ instance: `node-1.${SERVICE_NAME}`, ttl: 90 }]);
  assert.deepEqual(cache.knownAnswers(T0 + 60_000), []);
});

test('continuous queries: 20-120 ms after start, then 1 s, 2 s, 4 s ... capped at an hour; restart begins again', () => {
  const s = new QuerySchedule(T0, () => 0.5);
  assert.equal(s.dueMs, T0 + 70);
  let t = s.dueMs;
  const gaps: number[] = [];
  for (let i = 0; i < 16; i++) {
    s.sent(t);
    gaps.push((s.dueMs - t) / 1000);
    t = s.dueMs;
  }
  assert.deepEqual(gaps, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3600, 3600, 3600, 3600]);
  s.sent(t);
  s.restart(t + 5000);
  assert.equal(s.dueMs, t + 5070);
  s.sent(t + 5070);
  assert.equal(s.dueMs, t + 6070);
  // Restarts in a loop (an application looking a node up again and again): still at most one query a second.
  for (let i = 0; i < 100; i++) s.restart(t + 5071 + i);
  assert.equal(s.dueMs, t + 6070);
});
