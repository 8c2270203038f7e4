import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeIdentity } from '../../src/identity/identity.js';
import { allowAnyPeer, pinnedPeer, PeerAllowList, KnownPeersStore, parseAllowList } from '../../src/identity/trust.js';
import { throwsCode, handshakePair } from '../helpers/pair.js';

const a = NodeIdentity.generate();
const b = NodeIdentity.generate();
const dir = () => mkdtempSync(join(tmpdir(), 'mcp-e2e-trust-'));

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
  writeFileSync(path, `${a.nodeId}\nzzz\n`);
  const err = throwsCode(() => list.reload(), 'ERR_INVALID_NODE_ID');
  assert.match(err.message, /line 2/);
  list.verify(b); // old list still in force
  assert.equal(PeerAllowList.fromFile(join(dir(), 'missing')).size, 0);
  assert.equal(parseAllowList('').size, 0);
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
