import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeIdentity } from '../../src/identity/identity.js';
import { allowAnyPeer, allowLineNodeId, formatAllowLine, pinnedPeer, PeerAllowList, KnownPeersStore, normalizeEndpoint, parseAllowLine, parseAllowList, parseAllowListEntries } from '../../src/identity/trust.js';
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

test('allowlist command= option: a JSON array of strings before the node id, parsed without a shell; formatAllowLine writes what it reads', () => {
  const id = a.nodeId;
  const accepted: Array<[string, string[] | undefined, string]> = [
    [`command=["node","/srv/s.js"] ${id} bob`, ['node', '/srv/s.js'], 'bob'],
    // JSON strings keep spaces, quotes, backslashes, # and ] literally; no shell, no globbing, no $.
    [`  command=[ "/bin/srv" , "a b", "say \\"hi\\"", "c:\\\\x", "#not-a-comment", "]", "$HOME", "*" ]\t${id.toUpperCase()}  bob  the builder # note`, ['/bin/srv', 'a b', 'say "hi"', 'c:\\x', '#not-a-comment', ']', '$HOME', '*'], 'bob the builder'],
    [`command=["srv",""] ${id}`, ['srv', ''], ''],
    [`command=["\\u00e9t\\u00e9"] ${id}`, ['été'], ''],
    [`${id} plain`, undefined, 'plain'],
  ];
  for (const [line, command, label] of accepted) {
    const entry = parseAllowLine(line, 'f line 1');
    assert.deepEqual(entry, { nodeId: id, label, ...(command ? { command } : {}) }, line);
    assert.deepEqual(parseAllowLine(formatAllowLine(id, entry!), 'again'), entry, 'formatAllowLine round-trips');
  }
  assert.equal(parseAllowLine('  # command=["x"] ' + id, 'f'), undefined, 'a comment line stays a comment');
  const refused: Array<[string, RegExp]> = [
    [`command="node /srv/s.js" ${id}`, /command= takes a JSON array of strings, run without a shell/],
    [`command=node ${id}`, /command= takes a JSON array/],
    [`command=["node" ${id}`, /does not end/],
    [`command=["node",] ${id}`, /not valid JSON/],
    [`command=['node'] ${id}`, /not valid JSON/],
    [`command=[] ${id}`, /non-empty array of strings/],
    [`command=["node",1] ${id}`, /non-empty array of strings/],
    [`command=[["node"]] ${id}`, /not valid JSON|non-empty array/],
    [`command=[""] ${id}`, /names no program/],
    [`command=["node","\\u001b[2J"] ${id}`, /control character/],
    [`command=["node","a\\nb"] ${id}`, /control character/],
    [`command=["node"]${id}`, /followed by whitespace and the node id/],
    [`command=["node"]`, /followed by whitespace and the node id/],
    [`command=["node"] # ${id}`, /must be followed by the node id/],
    [`command=["a"] command=["b"] ${id}`, /a second command= option/],
    [`from="10.0.0.1" ${id}`, /unknown option "from="/],
    [`Command=["node"] ${id}`, /unknown option "Command="/],
    [`${id} command=["node"]`, /options go before the node id/],
    [`${id} bob command=["node"]`, /options go before the node id/],
    [`command=[${'"x",'.repeat(256)}"x"] ${id}`, /257 arguments, at most 256/],
  ];
  for (const [line, why] of refused) {
    const err = throwsCode(() => parseAllowLine(line, 'peers.txt line 7'), 'ERR_INVALID_NODE_ID');
    assert.match(err.message, /^peers\.txt line 7: /, line);
    assert.match(err.message, why, line);
  }
  // The same id twice: fine with the same command (last label wins), refused with two different ones.
  assert.equal(parseAllowListEntries(`${id} x\n${id} y\n`).get(id)!.label, 'y');
  assert.deepEqual(parseAllowListEntries(`command=["s"] ${id} x\ncommand=["s"] ${id} y\n`).get(id), { label: 'y', command: ['s'] });
  for (const text of [`command=["s"] ${id}\n${id}\n`, `${id}\ncommand=["s"] ${id}\n`, `command=["s"] ${id}\ncommand=["t"] ${id}\n`]) {
    const err = throwsCode(() => parseAllowList(text, 'f'), 'ERR_INVALID_NODE_ID');
    assert.match(err.message, /^f line 2: .* already listed on line 1 with another command/);
  }
  // Editing: the id a line is about, also for a broken line (so that peers deny removes it).
  assert.equal(allowLineNodeId(`command=["s"] ${id} x`), id);
  assert.equal(allowLineNodeId(`command="s" ${id} x`), id);
  assert.equal(allowLineNodeId('# nothing'), undefined);
});

test('allowlist commands: commandOf gives each peer its own, a reload applies changes, and a malformed command= removes the peer (never the default command)', () => {
  const path = join(dir(), 'allowed_peers');
  writeFileSync(path, `command=["srv","--for-a"] ${a.nodeId} alice\n${b.nodeId}\n`);
  const list = PeerAllowList.fromFile(path);
  assert.deepEqual(list.commandOf(a.nodeId), ['srv', '--for-a']);
  assert.equal(list.commandOf(b.nodeId), undefined);
  assert.deepEqual(list.entries(), [{ nodeId: a.nodeId, label: 'alice', command: ['srv', '--for-a'] }, { nodeId: b.nodeId, label: '' }]);
  writeFileSync(path, `command=["srv","--changed"] ${a.nodeId} alice\ncommand=["other"] ${b.nodeId}\n`);
  list.reload();
  assert.deepEqual(list.commandOf(a.nodeId), ['srv', '--changed']);
  assert.deepEqual(list.commandOf(b.nodeId), ['other']);
  // An ssh-style command="..." is refused: a is not allowed until it is fixed, rather than served the default.
  writeFileSync(path, `command="srv --changed" ${a.nodeId} alice\ncommand=["other"] ${b.nodeId}\n`);
  const err = throwsCode(() => list.reload(), 'ERR_INVALID_NODE_ID');
  assert.match(err.message, new RegExp(`${path} line 1: command= takes a JSON array`));
  throwsCode(() => list.verify(a), 'ERR_PEER_REJECTED');
  assert.equal(list.commandOf(a.nodeId), undefined);
  list.verify(b);
});

test('a broken reload never moves a restricted peer to the default command: a duplicate plain line, a dropped command=, a bad line naming it', () => {
  const path = join(dir(), 'allowed_peers');
  const restricted = `command=["srv","--restricted"] ${a.nodeId} alice`;
  const cases: Array<[string, string]> = [
    // The plain line parses first; the command= line after it is the conflict, the bad line.
    ['a plain line above its command= line', `${a.nodeId} alice\n${restricted}\n${b.nodeId}\n`],
    // The command= is gone from its line, and some other line is broken.
    ['its command= removed while another line is bad', `${a.nodeId} alice\nnot-a-node-id\n${b.nodeId}\n`],
    // Its good line is unchanged, but a broken line also names it.
    ['a bad line that names it too', `${restricted}\ncommand=[1] ${a.nodeId}\n${b.nodeId}\n`],
  ];
  for (const [name, text] of cases) {
    writeFileSync(path, `${restricted}\n${b.nodeId}\n`);
    const list = PeerAllowList.fromFile(path);
    assert.deepEqual(list.commandOf(a.nodeId), ['srv', '--restricted']);
    writeFileSync(path, text);
    throwsCode(() => list.reload(), 'ERR_INVALID_NODE_ID');
    assert.ok(!list.has(a.nodeId) || JSON.stringify(list.commandOf(a.nodeId)) === '["srv","--restricted"]', `${name}: ${JSON.stringify(list.entries())}`);
    assert.ok(!list.has(a.nodeId), `${name}: cut off until the file is fixed`);
    list.verify(b);
  }
  // A restriction being added on a malformed line (no space after the array) names the peer too:
  // cut off, not left on the default command it had.
  writeFileSync(path, `${a.nodeId} alice\n${b.nodeId}\n`);
  const plain = PeerAllowList.fromFile(path);
  writeFileSync(path, `${a.nodeId} alice\ncommand=["srv","--restricted"]${a.nodeId}\n${b.nodeId}\n`);
  throwsCode(() => plain.reload(), 'ERR_INVALID_NODE_ID');
  assert.ok(!plain.has(a.nodeId), JSON.stringify(plain.entries()));
  plain.verify(b);
  // Untouched by the broken line, a restricted peer keeps its command.
  writeFileSync(path, `${restricted}\n${b.nodeId}\n`);
  const list = PeerAllowList.fromFile(path);
  writeFileSync(path, `${restricted}\n${b.nodeId}\nnot-a-node-id\n`);
  throwsCode(() => list.reload(), 'ERR_INVALID_NODE_ID');
  assert.deepEqual(list.commandOf(a.nodeId), ['srv', '--restricted']);
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

test('known peers options: strict refuses an endpoint with no record (and records nothing), onFirstUse hears of each first use once, unknown options are refused', () => {
  const path = join(dir(), 'known_peers.json');
  const strict = new KnownPeersStore(path, { strict: true });
  const err = throwsCode(() => strict.verify(a, { endpoint: 'server:1' }), 'ERR_PEER_REJECTED');
  assert.match(err.message, /no identity is recorded for server:1, and unknown servers are refused \(strict\)/);
  assert.equal(strict.get('server:1'), undefined);
  const heard: string[] = [];
  const tofu = new KnownPeersStore(path, { onFirstUse: (endpoint, peer) => heard.push(`${endpoint} ${peer.nodeId}`) });
  tofu.verify(a, { endpoint: 'server:1' });
  tofu.verify(a, { endpoint: 'SERVER.:1' });
  assert.deepEqual(heard, [`server:1 ${a.nodeId}`]);
  // Recorded: strict accepts it now, and still refuses a changed key as such.
  strict.verify(a, { endpoint: 'server:1' });
  throwsCode(() => strict.verify(b, { endpoint: 'server:1' }), 'ERR_PEER_KEY_CHANGED');
  // A listener that throws does not turn a first use into a refusal.
  new KnownPeersStore(path, { onFirstUse: () => { throw new Error('listener bug'); } }).verify(b, { endpoint: 'other:2' });
  assert.equal(tofu.get('other:2'), b.nodeId);
  assert.throws(() => new KnownPeersStore(path, { stric: true } as never), /unknown option "stric"/);
});
