import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeIdentity } from '../../src/identity/identity.js';
import { allowAnyPeer, pinnedPeer, PeerAllowList, KnownPeersStore, normalizeEndpoint, parseAllowList } from '../../src/identity/trust.js';
import { throwsCode, handshakePair } from '../helpers/pair.js';

const a = NodeIdentity.generate();
const b = NodeIdentity.generate();
const dir = () => mkdtempSync(join(tmpdir(), 'mcp-e2e-trust-'));
const TRUST = fileURLToPath(new URL('../../src/identity/trust.js', import.meta.url));
const IDENTITY = fileURLToPath(new URL('../../src/identity/identity.js', import.meta.url));

test('pinned peer: the pinned identity passes, a different key is refused as a changed key', () => {
  const p = handshakePair({}, {}, { bob: b });
  pinnedPeer(b.nodeId).verify(p.initiator.peer);
  const err = throwsCode(() => pinnedPeer(a.nodeId).verify(p.initiator.peer), 'ERR_PEER_KEY_CHANGED');
  assert.match(err.message, new RegExp(b.fingerprint));
  pinnedPeer(b.nodeId.toUpperCase()).verify(b); // case-insensitive input
  throwsCode(() => pinnedPeer('not-a-node-id'), 'ERR_INVALID_NODE_ID');
});

test('allowAnyPeer accepts anyone', () => {
  allowAnyPeer().verify(a);
});

test('allowlist: members pass, others are refused; replaceable at run time', () => {
  const list = new PeerAllowList([a.nodeId]);
  list.verify(a);
  throwsCode(() => list.verify(b), 'ERR_PEER_REJECTED');
  list.set([b.nodeId]);
  list.verify(b);
  throwsCode(() => list.verify(a), 'ERR_PEER_REJECTED');
  throwsCode(() => list.set(['abc']), 'ERR_INVALID_NODE_ID');
  list.verify(b); // a bad update leaves the old list in force
});

test('allowlist file: comments, labels, reload without restart, bad lines named', () => {
  const path = join(dir(), 'allowed_peers');
  writeFileSync(path, `# team\n${a.nodeId} alice laptop\n\n`);
  const list = PeerAllowList.fromFile(path);
  assert.deepEqual(list.entries(), [{ nodeId: a.nodeId, label: 'alice laptop' }]);
  throwsCode(() => list.verify(b), 'ERR_PEER_REJECTED');
  writeFileSync(path, `${a.nodeId}\n${b.nodeId} # bob\n`);
  list.reload();
  list.verify(b);
  assert.equal(PeerAllowList.fromFile(join(dir(), 'missing')).size, 0);
  assert.equal(parseAllowList('').size, 0);
});

test('allowlist reload fails closed: with a bad line, removals apply and additions wait; the error names the file and line', () => {
  const c = NodeIdentity.generate();
  const path = join(dir(), 'allowed_peers');
  writeFileSync(path, `${a.nodeId}\n${b.nodeId}\n`, { mode: 0o600 });
  const list = PeerAllowList.fromFile(path);
  let changes = 0;
  const stop = list.onChange(() => changes++);
  // b removed, c added, and a typo on line 3: b must go at once, c must wait.
  writeFileSync(path, `${a.nodeId}\n${c.nodeId}\n${a.nodeId.slice(1)}\n`);
  const err = throwsCode(() => list.reload(), 'ERR_INVALID_NODE_ID');
  assert.match(err.message, new RegExp(`${path} line 3`));
  assert.match(err.message, /1 removed/);
  list.verify(a);
  throwsCode(() => list.verify(b), 'ERR_PEER_REJECTED');
  throwsCode(() => list.verify(c), 'ERR_PEER_REJECTED');
  assert.equal(changes, 1, 'listeners heard of the removal');
  // A control character in a label is a bad line too (a newline would be a second id).
  writeFileSync(path, `${a.nodeId} evil\u001b]0;title\u0007\n${c.nodeId}\n`);
  throwsCode(() => list.reload(), 'ERR_INVALID_NODE_ID');
  throwsCode(() => list.verify(a), 'ERR_PEER_REJECTED');
  // Fixed: everything in the file is in force again.
  writeFileSync(path, `${a.nodeId}\n${c.nodeId}\n`);
  list.reload();
  list.verify(a);
  list.verify(c);
  assert.equal(changes, 3);
  // A file others may write is not used at all: the list becomes empty.
  chmodSync(path, 0o666);
  throwsCode(() => list.reload(), 'ERR_FILE_PERMISSIONS');
  assert.equal(list.size, 0);
  stop();
  list.set([a.nodeId]);
  assert.equal(changes, 4, 'no listener after unsubscribing');
});

test('trust-on-first-use endpoints are normalised: one address spelled several ways is one first use', () => {
  const same: Array<[string, string]> = [
    ['localhost.:8765', 'localhost:8765'],
    ['LocalHost:8765', 'localhost:8765'],
    ['[::ffff:7f00:1]:8765', '127.0.0.1:8765'],
    ['[::ffff:127.0.0.1]:8765', '127.0.0.1:8765'],
    ['127.1:8765', '127.0.0.1:8765'],
    ['0x7f.0.0.1:8765', '127.0.0.1:8765'],
    ['[0:0:0:0:0:0:0:1]:8765', '[::1]:8765'],
    ['example.com.:443', 'example.com:443'],
  ];
  for (const [input, key] of same) assert.equal(normalizeEndpoint(input), key, input);
  for (const bad of ['localhost', 'x:0', 'x:65536', 'a b:1', 'u@x:1', 'x:1/p', 'x\n:1', ':8']) assert.equal(normalizeEndpoint(bad), undefined, bad);
  // Names are not resolved: localhost and 127.0.0.1 stay two endpoints.
  assert.notEqual(normalizeEndpoint('localhost:1'), normalizeEndpoint('127.0.0.1:1'));
  const store = new KnownPeersStore(join(dir(), 'known_peers.json'));
  store.verify(a, { endpoint: '[::ffff:7f00:1]:8765' });
  throwsCode(() => store.verify(b, { endpoint: '127.0.0.1:8765' }), 'ERR_PEER_KEY_CHANGED');
  store.verify(a, { endpoint: 'localhost.:8765' });
  throwsCode(() => store.verify(b, { endpoint: 'localhost:8765' }), 'ERR_PEER_KEY_CHANGED');
  assert.deepEqual(store.list().map((k) => k.endpoint).sort(), ['127.0.0.1:8765', 'localhost:8765']);
  assert.ok(store.forget('LOCALHOST.:8765'));
});

test('known peers: the file is the only state, so a second store (another process) never undoes a forget', () => {
  const path = join(dir(), 'known_peers.json');
  const running = new KnownPeersStore(path); // a connect that loaded the file at start
  running.verify(a, { endpoint: 'one:1' });
  assert.ok(new KnownPeersStore(path).forget('one:1')); // `mcp-e2e peers forget one:1`
  assert.equal(running.get('one:1'), undefined);
  running.verify(b, { endpoint: 'two:2' }); // the running one records something else
  const doc = JSON.parse(readFileSync(path, 'utf8'));
  assert.deepEqual(Object.keys(doc.peers), ['two:2'], 'the forgotten endpoint stays forgotten');
  // And it then trusts whatever answers there first, as after any forget.
  running.verify(b, { endpoint: 'one:1' });
  assert.equal(new KnownPeersStore(path).get('one:1'), b.nodeId);
});

/** A child process that records `count` endpoints `name-i:1` by trust on first use, one `verify` each. */
function tofuWriter(path: string, name: string, count: number): Promise<number> {
  const script = `
    const { KnownPeersStore } = await import(${JSON.stringify(TRUST)});
    const { NodeIdentity } = await import(${JSON.stringify(IDENTITY)});
    const store = new KnownPeersStore(${JSON.stringify(path)});
    const id = NodeIdentity.generate();
    for (let i = 0; i < ${count}; i++) store.verify(id, { endpoint: ${JSON.stringify(name)} + '-' + i + ':1' });`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'inherit'] });
  return new Promise((resolve) => child.on('exit', (code) => resolve(code ?? -1)));
}

test('known peers: two processes recording first uses at once keep each other\'s (2 x 150)', async () => {
  const path = join(dir(), 'known_peers.json');
  assert.deepEqual(await Promise.all([tofuWriter(path, 'a', 150), tofuWriter(path, 'b', 150)]), [0, 0]);
  assert.equal(new KnownPeersStore(path).list().length, 300);
});

test('known peers: trust on first use, a changed key is refused loudly, state persists', () => {
  const path = join(dir(), 'known_peers.json');
  const store = new KnownPeersStore(path);
  store.verify(a, { endpoint: 'example:8000' });
  assert.equal(store.get('example:8000'), a.nodeId);
  store.verify(a, { endpoint: 'example:8000' });
  const again = new KnownPeersStore(path);
  const err = throwsCode(() => again.verify(b, { endpoint: 'example:8000' }), 'ERR_PEER_KEY_CHANGED');
  assert.match(err.message, /has changed/);
  assert.match(err.message, /peers forget example:8000/);
  assert.equal(again.get('example:8000'), a.nodeId, 'a refused key is not recorded');
  again.verify(b, { endpoint: 'other:1' });
  assert.equal(again.list().length, 2);
  assert.ok(again.forget('example:8000'));
  assert.ok(!again.forget('example:8000'));
  again.verify(b, { endpoint: 'example:8000' });
  throwsCode(() => again.verify(b), 'ERR_PEER_REJECTED'); // no endpoint: nothing to key on
  assert.equal(JSON.parse(readFileSync(path, 'utf8')).version, 1);
  writeFileSync(path, '{"version":1,"peers":{"x":{"node_id":"zz","first_seen":""}}}');
  throwsCode(() => new KnownPeersStore(path), 'ERR_KEY_FILE_CORRUPT');
});
