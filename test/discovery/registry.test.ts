/**
 * The peer registry (src/discovery/registry.ts): trust states, record
 * ordering, dial order, expiry as history, caps under a flood of valid
 * records, batched writes, and sharing one file between real processes
 * (concurrent writers lose nothing; kill -9 mid-write leaves a readable file
 * and no strays after the next start).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NodeIdentity } from '../../src/identity/identity.js';
import { createPeerRecord, type PeerRecordFields } from '../../src/discovery/record.js';
import { PeerRegistry, type PeerRegistryOptions } from '../../src/discovery/registry.js';
import { throwsCode } from '../helpers/pair.js';

const DIST = fileURLToPath(new URL('../../src/', import.meta.url));
const dir = () => mkdtempSync(join(tmpdir(), 'mcp-e2e-registry-'));
const T0 = 1_800_000_000_000;

/** A registry on a settable clock. */
function registry(options: PeerRegistryOptions = {}) {
  const clock = { now: T0 };
  const r = new PeerRegistry({ flushIntervalMs: 0, now: () => clock.now, ...options });
  return { r, clock };
}

const fields = (over: Partial<PeerRecordFields> = {}): PeerRecordFields => ({
  seq: T0,
  issuedAtMs: T0,
  expiresAtMs: T0 + 3_600_000,
  addresses: ['ws://127.0.0.1:9001'],
  protocolVersions: [1],
  ...over,
});
const recordOf = (id: NodeIdentity, over: Partial<PeerRecordFields> = {}) => createPeerRecord(id, fields(over));

test('states: a record is discovered, a handshake verified, the allowlist trusted, a person blocked', () => {
  const a = NodeIdentity.generate();
  const allowed = new Set<string>();
  const { r } = registry({ isTrusted: (id) => allowed.has(id) });
  const o = r.addRecordBytes(recordOf(a).bytes, 'mdns');
  assert.deepEqual(o, { accepted: true, change: 'new', nodeId: a.nodeId });
  assert.equal(r.stateOf(a.nodeId), 'discovered');
  assert.deepEqual(r.noteHandshake(a.toPeerIdentity(), { direction: 'outgoing', url: 'ws://127.0.0.1:9001' }), { created: false, verified: true });
  assert.equal(r.stateOf(a.nodeId), 'verified');
  assert.deepEqual(r.noteHandshake(a.toPeerIdentity(), { direction: 'incoming' }), { created: false, verified: false }, 'already verified');
  const fresh = NodeIdentity.generate().toPeerIdentity();
  assert.deepEqual(r.noteHandshake(fresh, { direction: 'incoming' }), { created: true, verified: true }, 'new, and verified at once');
  allowed.add(a.nodeId);
  assert.equal(r.stateOf(a.nodeId), 'trusted');
  r.setBlocked(a.nodeId, true);
  assert.equal(r.stateOf(a.nodeId), 'blocked');
  const again = r.addRecordBytes(recordOf(a, { seq: T0 + 1 }).bytes, 'gossip');
  assert.equal(again.accepted, false);
  assert.equal(!again.accepted && again.code, 'ERR_PEER_BLOCKED');
  assert.equal(r.addHint(a.nodeId, ['ws://127.0.0.9:1'], 'mdns').accepted, false);
  r.setBlocked(a.nodeId, false);
  assert.equal(r.stateOf(a.nodeId), 'trusted');
  const info = r.get(a.nodeId)!;
  assert.deepEqual([...info.sources].sort(), ['incoming', 'mdns', 'outgoing']);
  const stranger = NodeIdentity.generate().nodeId;
  assert.equal(r.stateOf(stranger), undefined);
  allowed.add(stranger);
  assert.equal(r.stateOf(stranger), 'trusted', 'on the allowlist, never seen');
});

test('records from outside: every refusal is an outcome with its code, never an exception', () => {
  const a = NodeIdentity.generate();
  const { r } = registry();
  const first = recordOf(a);
  assert.equal(r.addRecordBytes(first.bytes, 'gossip').accepted, true);
  const code = (bytes: Uint8Array) => {
    const o = r.addRecordBytes(bytes, 'gossip');
    return o.accepted ? 'accepted' : o.code;
  };
  assert.equal(code(first.bytes), 'ERR_RECORD_REPLAYED');
  assert.equal(code(recordOf(a, { addresses: ['ws://127.0.0.2:1'] }).bytes), 'ERR_RECORD_EQUIVOCATION');
  assert.equal(code(recordOf(a, { seq: T0 + 5 }).bytes), 'accepted');
  assert.equal(code(first.bytes), 'ERR_RECORD_STALE', 'an older record replayed after a newer one');
  const forged = Buffer.from(recordOf(a, { seq: T0 + 9 }).bytes);
  forged[forged.length - 1]! ^= 1;
  assert.equal(code(forged), 'ERR_RECORD_BAD_SIGNATURE');
  assert.equal(code(recordOf(a, { seq: T0 + 10, issuedAtMs: T0 + 400_000, expiresAtMs: T0 + 500_000 }).bytes), 'ERR_RECORD_FROM_FUTURE');
  assert.equal(code(recordOf(a, { seq: T0 + 11, issuedAtMs: T0 - 2000, expiresAtMs: T0 }).bytes), 'ERR_RECORD_EXPIRED');
  assert.equal(code(Buffer.alloc(3000)), 'ERR_RECORD_TOO_LARGE');
  assert.equal(code(Buffer.alloc(200)), 'ERR_RECORD_MALFORMED');
  assert.equal(r.get(a.nodeId)!.record!.seq, T0 + 5, 'the newest valid record stays');
});

test('dial order: worked before, then the record in its order, then unexpired hints; failures last', () => {
  const a = NodeIdentity.generate();
  const { r, clock } = registry();
  r.addRecordBytes(recordOf(a, { addresses: ['ws://127.0.0.1:1', 'ws://127.0.0.1:2', 'ws://127.0.0.1:3'] }).bytes, 'manual');
  r.addHint(a.nodeId, ['ws://127.0.0.1:7'], 'mdns', 10_000);
  assert.deepEqual(r.dialAddresses(a.nodeId), ['ws://127.0.0.1:1', 'ws://127.0.0.1:2', 'ws://127.0.0.1:3', 'ws://127.0.0.1:7']);
  clock.now += 1;
  r.noteHandshake(a.toPeerIdentity(), { direction: 'outgoing', url: 'ws://127.0.0.1:3' });
  clock.now += 1;
  r.noteFailure(a.nodeId, 'ws://127.0.0.1:1', 'ERR_CONNECT_FAILED');
  assert.deepEqual(r.dialAddresses(a.nodeId), ['ws://127.0.0.1:3', 'ws://127.0.0.1:2', 'ws://127.0.0.1:7', 'ws://127.0.0.1:1']);
  assert.deepEqual(r.get(a.nodeId)!.lastFailure, { atMs: clock.now, url: 'ws://127.0.0.1:1', code: 'ERR_CONNECT_FAILED' });
  clock.now += 10_000; // the hint's TTL is over
  assert.ok(!r.dialAddresses(a.nodeId).includes('ws://127.0.0.1:7'));
});

test('expired records are kept as history, not offered and not dialled; expiry is reported once per window', () => {
  const a = NodeIdentity.generate();
  const b = NodeIdentity.generate();
  const { r, clock } = registry();
  r.addRecordBytes(recordOf(a, { expiresAtMs: T0 + 1000 }).bytes, 'gossip');
  r.addRecordBytes(recordOf(b).bytes, 'gossip');
  assert.equal(r.offerableRecords().length, 2);
  clock.now = T0 + 1000;
  assert.deepEqual(r.offerableRecords().map((x) => x.nodeId), [b.nodeId]);
  const info = r.get(a.nodeId)!;
  assert.equal(info.recordExpired, true);
  assert.equal(info.record!.seq, T0);
  assert.deepEqual(info.addresses, []);
  assert.deepEqual(r.expiredBetween(T0, T0 + 1000).map((p) => p.nodeId), [a.nodeId]);
  assert.deepEqual(r.expiredBetween(T0 + 1000, T0 + 2000), []);
  // The history still orders what comes later: the old record again is stale... or replayed, never new.
  const o = r.addRecordBytes(recordOf(a, { seq: T0 - 1, issuedAtMs: T0 - 1, expiresAtMs: T0 + 5000 }).bytes, 'gossip');
  assert.equal(!o.accepted && o.code, 'ERR_RECORD_STALE');
});

test('the cap holds under a flood of valid records from fresh identities; trusted, blocked and self stay', () => {
  const d = dir();
  const path = join(d, 'peers.json');
  const self = NodeIdentity.generate();
  const trusted = Array.from({ length: 5 }, () => NodeIdentity.generate());
  const trustedIds = new Set(trusted.map((t) => t.nodeId));
  const { r, clock } = registry({ path, maxPeers: 40, selfNodeId: self.nodeId, isTrusted: (id) => trustedIds.has(id) });
  r.addRecord(recordOf(self), 'manual');
  for (const t of trusted) r.addRecordBytes(recordOf(t).bytes, 'manual');
  const blocked = NodeIdentity.generate().nodeId;
  r.setBlocked(blocked, true);
  let accepted = 0;
  for (let i = 0; i < 300; i++) {
    clock.now += 1;
    const o = r.addRecordBytes(recordOf(NodeIdentity.generate(), { seq: clock.now, issuedAtMs: clock.now, expiresAtMs: clock.now + 3_600_000 }).bytes, 'gossip');
    if (o.accepted) accepted++;
    assert.ok(r.size <= 40, `size ${r.size} after ${i + 1} records`);
    if (i % 50 === 0) r.flush();
  }
  assert.equal(accepted, 300, 'new peers displace the least recently seen discovered ones');
  r.flush();
  for (const id of [self.nodeId, blocked, ...trustedIds]) assert.ok(r.has(id), `${id.slice(0, 8)} kept`);
  assert.ok(r.evicted >= 300 - 40 + 7);
  const onDisk = new PeerRegistry({ path });
  assert.ok(onDisk.size <= 40);
  for (const id of trustedIds) assert.ok(onDisk.has(id));
  // Only protected entries left and no room: refused with a code, nothing evicted.
  const full = registry({ maxPeers: 5, isTrusted: (id) => trustedIds.has(id) }).r;
  for (const t of trusted) full.addRecordBytes(recordOf(t).bytes, 'manual');
  const o = full.addRecordBytes(recordOf(NodeIdentity.generate()).bytes, 'gossip');
  assert.equal(!o.accepted && o.code, 'ERR_LIMIT_REACHED');
  assert.equal(full.size, 5);
});

test('the byte cap holds: the file never grows past maxFileBytes', () => {
  const path = join(dir(), 'peers.json');
  const { r, clock } = registry({ path, maxFileBytes: 20_000 });
  for (let i = 0; i < 120; i++) {
    clock.now += 1;
    r.addRecordBytes(recordOf(NodeIdentity.generate(), { seq: clock.now, addresses: ['ws://127.0.0.1:1', 'wss://a-rather-long-host-name.example/with/a/path'] }).bytes, 'gossip');
    if (i % 20 === 19) {
      r.flush();
      assert.ok(statSync(path).size <= 20_000, `${statSync(path).size} bytes`);
    }
  }
  assert.ok(r.evicted > 0);
  assert.equal(new PeerRegistry({ path }).size, r.size);
});

test('writes are batched: many changes in one turn, one write after flushIntervalMs', async () => {
  const path = join(dir(), 'peers.json');
  const r = new PeerRegistry({ path, flushIntervalMs: 100 });
  const ids = Array.from({ length: 200 }, () => NodeIdentity.generate().nodeId);
  for (const id of ids) r.addHint(id, ['ws://127.0.0.1:5'], 'mdns');
  assert.throws(() => statSync(path), /ENOENT/, 'nothing written synchronously');
  assert.equal(r.pendingWrites, 200);
  await new Promise((res) => setTimeout(res, 400));
  assert.equal(r.pendingWrites, 0);
  const inode = statSync(path).ino;
  assert.equal(new PeerRegistry({ path }).size, 200);
  await new Promise((res) => setTimeout(res, 200));
  assert.equal(statSync(path).ino, inode, 'no write without a change');
  r.close();
});

test('persistence: everything survives a reload; forget removes from the file; blocks are kept', () => {
  const path = join(dir(), 'peers.json');
  const a = NodeIdentity.generate();
  const b = NodeIdentity.generate();
  const { r, clock } = registry({ path });
  r.addRecordBytes(recordOf(a, { name: 'Büro' }).bytes, 'mdns');
  r.addHint(a.nodeId, ['ws://127.0.0.5:1'], 'mdns');
  clock.now += 5;
  r.noteHandshake(a.toPeerIdentity(), { direction: 'outgoing', url: 'ws://127.0.0.1:9001' });
  r.noteFailure(a.nodeId, 'ws://127.0.0.5:1', 'ERR_CONNECT_FAILED');
  r.addHint(b.nodeId, ['ws://127.0.0.6:1'], 'bootstrap');
  r.setBlocked(b.nodeId, true);
  r.flush();
  const again = new PeerRegistry({ path, now: () => clock.now });
  assert.deepEqual(again.get(a.nodeId), r.get(a.nodeId));
  assert.equal(again.get(a.nodeId)!.name, 'Büro');
  assert.equal(again.stateOf(b.nodeId), 'blocked');
  again.forget(a.nodeId);
  again.flush();
  assert.equal(new PeerRegistry({ path }).has(a.nodeId), false);
  assert.equal(new PeerRegistry({ path }).has(b.nodeId), true);
});

test('a corrupt registry is refused with ERR_KEY_FILE_CORRUPT; JSON of the same shape in another layout is read', () => {
  const path = join(dir(), 'peers.json');
  writeFileSync(path, '{"version":1,"peers":{\n"zz":{}\n}}\n', { mode: 0o600 });
  throwsCode(() => new PeerRegistry({ path }), 'ERR_KEY_FILE_CORRUPT');
  writeFileSync(path, '{"version":2,"peers":{}}', { mode: 0o600 });
  throwsCode(() => new PeerRegistry({ path }), 'ERR_KEY_FILE_CORRUPT');
  const id = NodeIdentity.generate().nodeId;
  const line = `{"version":1,"peers":{\n${JSON.stringify(id)}:{"sources":["mdns"],"first_seen":1,"last_seen":"x"}\n}}\n`;
  writeFileSync(path, line, { mode: 0o600 });
  const lazy = new PeerRegistry({ path });
  throwsCode(() => lazy.get(id), 'ERR_KEY_FILE_CORRUPT');
  writeFileSync(path, JSON.stringify({ peers: { [id]: { sources: ['mdns'], first_seen: 1, last_seen: 2 } }, version: 1 }, null, 2), { mode: 0o600 });
  assert.equal(new PeerRegistry({ path }).get(id)!.lastSeenMs, 2);
});

test('refresh: a second process’s writes are seen, our unsaved changes stay on top', () => {
  const path = join(dir(), 'peers.json');
  const one = new PeerRegistry({ path, flushIntervalMs: 0 });
  const two = new PeerRegistry({ path, flushIntervalMs: 0 });
  const a = NodeIdentity.generate().nodeId;
  const b = NodeIdentity.generate().nodeId;
  two.addHint(a, ['ws://127.0.0.1:1'], 'mdns');
  two.flush();
  one.addHint(b, ['ws://127.0.0.1:2'], 'mdns');
  one.refresh();
  assert.ok(one.has(a) && one.has(b));
  one.flush();
  two.refresh();
  assert.ok(two.has(a) && two.has(b));
});

/** A child process that adds `count` peers (hints) and one shared peer, flushing after every `batch`. */
function writer(path: string, tag: number, count: number, batch: number, shared: string): Promise<number> {
  const script = `
    const { PeerRegistry } = await import(${JSON.stringify(join(DIST, 'discovery/registry.js'))});
    const { createHash } = await import('node:crypto');
    const r = new PeerRegistry({ path: ${JSON.stringify(path)}, flushIntervalMs: 0 });
    for (let i = 0; i < ${count}; i++) {
      const id = createHash('sha256').update('${tag}-' + i).digest('hex');
      r.addHint(id, ['ws://127.0.${tag}.1:' + (i + 1)], 'mdns');
      r.addHint(${JSON.stringify(shared)}, ['ws://127.0.${tag}.2:' + (i % 3 + 1)], 'gossip');
      if (i % ${batch} === ${batch} - 1) r.flush();
    }
    r.close();`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'inherit'] });
  return new Promise((resolve) => child.on('exit', (code) => resolve(code ?? -1)));
}

test('two processes writing one registry at once lose nothing (2 x 300 peers, one peer both update)', async () => {
  const d = dir();
  const path = join(d, 'peers.json');
  const shared = NodeIdentity.generate().nodeId;
  const codes = await Promise.all([writer(path, 1, 300, 3, shared), writer(path, 2, 300, 3, shared)]);
  assert.deepEqual(codes, [0, 0]);
  const r = new PeerRegistry({ path });
  assert.equal(r.size, 601);
  const hints = r.get(shared)!.hints.map((h) => h.url).sort();
  assert.deepEqual(hints, [1, 2].flatMap((t) => [1, 2, 3].map((p) => `ws://127.0.${t}.2:${p}`)), 'both processes’ hints for the shared peer');
  assert.deepEqual(readdirSync(d), ['peers.json'], 'no lock or temporary file left');
});

/** The inode of `path` (every atomic write makes a new one), or -1. */
const inode = (path: string) => {
  try {
    return statSync(path).ino;
  } catch {
    return -1;
  }
};

test('kill -9 during writes: the registry stays readable, and the next start removes the strays', async () => {
  const d = dir();
  const path = join(d, 'peers.json');
  const script = `
    const { PeerRegistry } = await import(${JSON.stringify(join(DIST, 'discovery/registry.js'))});
    const { createHash } = await import('node:crypto');
    const r = new PeerRegistry({ path: ${JSON.stringify(path)}, flushIntervalMs: 0 });
    for (let i = 0; ; i++) {
      for (let j = 0; j < 50; j++) r.addHint(createHash('sha256').update(i + '-' + j).digest('hex'), ['ws://127.0.0.1:' + (j + 1)], 'mdns');
      r.flush();
    }`;
  let sizes = 0;
  for (let round = 0; round < 4; round++) {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' });
    // Kill it mid-stream, once it has written at least once (a loaded machine starts processes slowly).
    const before = inode(path);
    for (let waited = 0; inode(path) === before && waited < 30_000; waited += 20) await new Promise((res) => setTimeout(res, 20));
    await new Promise((res) => setTimeout(res, 30 + round * 53));
    child.kill('SIGKILL');
    await new Promise((res) => child.once('exit', res));
    const size = new PeerRegistry({ path }).size;
    assert.ok(size >= sizes, 'whole files only: never fewer peers than before');
    sizes = size;
    for (const p of new PeerRegistry({ path }).list()) assert.equal(p.hints.length, 1);
  }
  assert.ok(sizes > 0);
  // Make any leftover look like a crash: a lock of a dead process and a temporary file.
  writeFileSync(`${path}.lock`, '999999999\n');
  writeFileSync(join(d, '.peers.json.0123456789ab.tmp'), 'partial');
  const r = new PeerRegistry({ path });
  assert.equal(r.size, sizes);
  assert.deepEqual(readdirSync(d), ['peers.json']);
  assert.ok(readFileSync(path, 'utf8').endsWith('}}\n'));
});
