/**
 * The mesh node (src/mesh/node.ts) with real nodes on 127.0.0.1: real
 * servers, real sockets, the real MCP SDK. Connect by node id from a record
 * given by hand or learned from an incoming session; a record pointing at
 * another node's address fails with the pinned-id error and never reaches
 * that node's MCP layer; lookups asked in parallel; records on the control
 * channel (the peer's own only, rate-limited, refreshed); blocks; events.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { NodeIdentity } from '../../src/identity/identity.js';
import { McpE2eError } from '../../src/errors.js';
import { PeerAllowList } from '../../src/identity/trust.js';
import { createPeerRecord } from '../../src/discovery/record.js';
import { StaticSource } from '../../src/discovery/sources/static.js';
import type { DiscoveryHint, DiscoverySource } from '../../src/discovery/source.js';
import { MeshNode, PEER_RECORD_MESSAGE, SESSION_RECORD_BURST, type MeshNodeOptions } from '../../src/mesh/node.js';
import { listeningUrls } from '../../src/mesh/addresses.js';
import { PeerRegistry } from '../../src/discovery/registry.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EncryptedWebSocketClientTransport } from '../../src/transport/client.js';
import { WebSocketServer } from 'ws';
import { makeMcpServer, textOf, within } from '../transport/helpers.js';

/** A node that serves the test MCP server to every authenticated peer (allowAnyPeer unless an allowlist is given). */
async function node(name: string, extra: Partial<MeshNodeOptions> = {}, allowed?: PeerAllowList) {
  const identity = NodeIdentity.generate();
  const mcpSessions: string[] = [];
  const refused: string[] = [];
  const n = new MeshNode({
    identity,
    announce: { name },
    server: {
      ...(allowed ? { allowedPeers: allowed } : { allowAnyPeer: true }),
      onConnection: async (transport, peer) => {
        mcpSessions.push(peer!.nodeId);
        await makeMcpServer().connect(transport);
      },
      onError: (err) => refused.push((err as McpE2eError).code ?? err.message),
    },
    ...extra,
  });
  await n.start();
  return { n, identity, mcpSessions, refused, url: listeningUrls(n.address!)[0]! };
}

/** Connect by node id and return an MCP client on it. */
async function mcpTo(from: MeshNode, nodeId: string) {
  let client!: Client;
  const transport = await from.connect(nodeId, {
    start: async (t) => {
      client = new Client({ name: 'mesh-test', version: '1.0.0' });
      await client.connect(t);
    },
  });
  return { client, transport };
}

const waitFor = async (pred: () => boolean, what: string, ms = 5000) => {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

test('A knows only B’s record, given by hand: connect(B’s id) reaches B’s MCP server, both sides verified', async () => {
  const a = await node('a');
  const b = await node('b');
  try {
    const verified: string[] = [];
    a.n.on('peer:verified', (e) => verified.push(e.nodeId));
    const o = a.n.add({ record: b.n.record!.bytes });
    assert.equal(o.record?.accepted, true);
    assert.equal(a.n.registry.stateOf(b.identity.nodeId), 'discovered');
    const { client, transport } = await mcpTo(a.n, b.identity.nodeId);
    assert.equal(transport.peer!.nodeId, b.identity.nodeId);
    assert.equal(textOf(await client.callTool({ name: 'echo', arguments: { message: 'by id' } })), 'Echo: by id');
    assert.deepEqual(b.mcpSessions, [a.identity.nodeId]);
    assert.equal(a.n.registry.stateOf(b.identity.nodeId), 'verified');
    assert.deepEqual(verified, [b.identity.nodeId]);
    assert.deepEqual(a.n.registry.get(b.identity.nodeId)!.lastHandshake?.url, b.url);
    // B learned A as a verified peer, and A's record on the control channel.
    await waitFor(() => b.n.registry.get(a.identity.nodeId)?.record !== undefined, 'A’s record at B');
    assert.equal(b.n.registry.stateOf(a.identity.nodeId), 'verified');
    assert.deepEqual(b.n.registry.get(a.identity.nodeId)!.record!.addresses, [a.url]);
    await client.close();
  } finally {
    await Promise.all([a.n.stop(), b.n.stop()]);
  }
});

test('A learns B from an incoming session only, then connects to B by id without being given a URL', async () => {
  const a = await node('a');
  const b = await node('b');
  try {
    b.n.add({ record: a.n.record!.bytes });
    const discovered: string[] = [];
    a.n.on('peer:discovered', (e) => discovered.push(`${e.nodeId}:${e.source}`));
    const first = await mcpTo(b.n, a.identity.nodeId);
    await waitFor(() => a.n.registry.get(b.identity.nodeId)?.record !== undefined, 'B’s record at A');
    assert.deepEqual(a.n.registry.dialAddresses(b.identity.nodeId), [b.url]);
    assert.deepEqual(discovered, [`${b.identity.nodeId}:incoming`], 'one discovery event, from the handshake');
    await first.client.close();
    const back = await mcpTo(a.n, b.identity.nodeId);
    assert.equal(textOf(await back.client.callTool({ name: 'add', arguments: { a: 2, b: 3 } })), '5');
    await back.client.close();
  } finally {
    await Promise.all([a.n.stop(), b.n.stop()]);
  }
});

test('a record for B that points at C’s address: connect fails with ERR_PEER_KEY_CHANGED and never talks MCP to C', async () => {
  const a = await node('a');
  const c = await node('c');
  const bId = NodeIdentity.generate();
  try {
    const now = Date.now();
    const lying = createPeerRecord(bId, { seq: now, issuedAtMs: now, expiresAtMs: now + 60_000, addresses: ['ws://127.0.0.1:1', c.url], protocolVersions: [1] });
    a.n.add({ record: lying.bytes });
    const err = await a.n.connect(bId.nodeId).then(
      () => assert.fail('connected'),
      (e: unknown) => e as McpE2eError,
    );
    assert.ok(err instanceof McpE2eError);
    assert.equal(err.code, 'ERR_PEER_KEY_CHANGED', err.message);
    assert.match(err.message, /ws:\/\/127\.0\.0\.1:1 \(ERR_CONNECT_FAILED/);
    assert.ok(err.message.includes(`${c.url} (ERR_PEER_KEY_CHANGED`), err.message);
    assert.equal((err.cause as AggregateError).errors.length, 2);
    assert.deepEqual(c.mcpSessions, [], 'C never got an MCP session');
    assert.equal(a.n.registry.stateOf(c.identity.nodeId), undefined, 'nothing about C was learned from it');
    assert.equal(a.n.registry.get(bId.nodeId)!.lastFailure!.url, c.url);
  } finally {
    await Promise.all([a.n.stop(), c.n.stop()]);
  }
});

test('no address: ERR_PEER_NOT_FOUND; lookups are asked in parallel and the first answer is dialled at once', async () => {
  const b = await node('b');
  const slowAborted: boolean[] = [];
  const slow: DiscoverySource = {
    name: 'slow',
    start() {},
    stop() {},
    lookup: (_id, signal) =>
      new Promise<DiscoveryHint[]>((resolve) => {
        signal.addEventListener('abort', () => {
          slowAborted.push(true);
          resolve([]);
        });
      }),
  };
  const quick: DiscoverySource = {
    name: 'quick',
    start() {},
    stop() {},
    lookup: async (id) => (id === b.identity.nodeId ? [{ record: b.n.record!.bytes }] : []),
  };
  const a = await node('a', { sources: [slow, quick], lookupTimeoutMs: 60_000 });
  const lonely = await node('lonely');
  try {
    const nobody = NodeIdentity.generate().nodeId;
    await assert.rejects(lonely.n.connect(nobody), (e: unknown) => e instanceof McpE2eError && e.code === 'ERR_PEER_NOT_FOUND');
    await assert.rejects(lonely.n.connect('not-an-id'), (e: unknown) => e instanceof McpE2eError && e.code === 'ERR_INVALID_NODE_ID');
    const started = Date.now();
    const { client } = await within(mcpTo(a.n, b.identity.nodeId), 20_000, 'connect through the quick lookup');
    assert.ok(Date.now() - started < 30_000, 'did not wait for the slow lookup');
    assert.deepEqual(slowAborted, [true], 'the slow lookup was told to stop');
    assert.deepEqual(a.n.registry.get(b.identity.nodeId)!.sources.includes('quick'), true);
    await client.close();
  } finally {
    await Promise.all([a.n.stop(), b.n.stop(), lonely.n.stop()]);
  }
});

test('a lookup that answers for another node id is refused (ERR_RECORD_WRONG_PEER), nothing stored', async () => {
  const b = await node('b');
  const other = await node('other');
  const wrong: DiscoverySource = { name: 'wrong', start() {}, stop() {}, lookup: async () => [{ record: other.n.record!.bytes }, { nodeId: other.identity.nodeId, addresses: [other.url] }] };
  const a = await node('a', { sources: [wrong], lookupTimeoutMs: 2000 });
  try {
    const refused: string[] = [];
    a.n.on('record:refused', (e) => refused.push(e.code));
    await assert.rejects(a.n.connect(b.identity.nodeId), (e: unknown) => e instanceof McpE2eError && e.code === 'ERR_PEER_NOT_FOUND');
    assert.deepEqual(refused, ['ERR_RECORD_WRONG_PEER', 'ERR_RECORD_WRONG_PEER']);
    assert.equal(a.n.registry.has(other.identity.nodeId), false);
  } finally {
    await Promise.all([a.n.stop(), b.n.stop(), other.n.stop()]);
  }
});

test('records on a session: another node’s record is refused as not the peer’s own; a flood is cut to the burst', async () => {
  const a = await node('a');
  const b = await node('b');
  const c = NodeIdentity.generate();
  try {
    b.n.add({ record: a.n.record!.bytes });
    const refused: string[] = [];
    a.n.on('record:refused', (e) => refused.push(e.code));
    const updates: number[] = [];
    a.n.on('peer:updated', (e) => updates.push(e.peer.record!.seq));
    const t: EncryptedWebSocketClientTransport = await b.n.connect(a.identity.nodeId);
    await waitFor(() => a.n.registry.get(b.identity.nodeId)?.record !== undefined, 'B’s record at A');
    const now = Date.now();
    const cRecord = createPeerRecord(c, { seq: now, issuedAtMs: now, expiresAtMs: now + 60_000, addresses: [], protocolVersions: [1] });
    await t.sendControl({ type: PEER_RECORD_MESSAGE, record: cRecord.toHex() });
    await waitFor(() => refused.length === 1, 'the refusal');
    assert.deepEqual(refused, ['ERR_RECORD_WRONG_PEER']);
    assert.equal(a.n.registry.has(c.nodeId), false);
    // B's own records, newer each time: 1 + 1 above used two of the burst; the rest are dropped.
    for (let i = 1; i <= 10; i++) {
      const r = createPeerRecord(b.identity, { seq: now + 1000 + i, issuedAtMs: now, expiresAtMs: now + 60_000, addresses: [b.url], protocolVersions: [1] });
      await t.sendControl({ type: PEER_RECORD_MESSAGE, record: r.toHex() });
    }
    await t.sendControl({ type: 'something-newer', x: 1 });
    await t.sendControl({ type: PEER_RECORD_MESSAGE, record: 'zz', extra: 1 });
    await new Promise((r) => setTimeout(r, 300));
    // The first record of B (sent as the session opened) and C's used two tokens of the burst; two of the ten got through.
    assert.equal(updates.length, 1 + SESSION_RECORD_BURST - 2, `updates ${updates.join(',')}`);
    assert.equal(a.n.sessions.length, 1, 'the session stays up');
    assert.equal(a.n.sessions[0]!.counters.unknown, 1);
    await t.close();
  } finally {
    await Promise.all([a.n.stop(), b.n.stop()]);
  }
});

test('refresh: a new record goes to open sessions; expiry is an event; a block refuses and disconnects', async () => {
  const a = await node('a', { expiryCheckMs: 50 });
  const b = await node('b', { announce: { name: 'b', lifetimeMs: 1500, refreshMs: 400 } });
  try {
    b.n.add({ record: a.n.record!.bytes });
    const seqs: number[] = [];
    a.n.on('peer:updated', (e) => e.nodeId === b.identity.nodeId && seqs.push(e.peer.record!.seq));
    const expired: string[] = [];
    a.n.on('peer:expired', (e) => expired.push(e.nodeId));
    const t = await b.n.connect(a.identity.nodeId);
    await waitFor(() => seqs.length >= 1, 'a refreshed record of B at A');
    assert.ok(seqs[0]! > b.n.registry.get(b.identity.nodeId)!.record!.seq - 10_000);
    await t.close();
    await b.n.stop();
    await waitFor(() => expired.includes(b.identity.nodeId), 'B’s record to expire at A', 5000);
    assert.equal(a.n.registry.get(b.identity.nodeId)!.recordExpired, true);
    assert.deepEqual(a.n.registry.dialAddresses(b.identity.nodeId), [], 'an expired record is not dialled');
    // Blocks: C is refused as a client of A, and A refuses to dial C.
    const c = await node('c');
    c.n.add({ record: a.n.record!.bytes });
    a.n.add({ record: c.n.record!.bytes });
    a.n.setBlocked(c.identity.nodeId, true);
    await assert.rejects(a.n.connect(c.identity.nodeId), (e: unknown) => e instanceof McpE2eError && e.code === 'ERR_PEER_BLOCKED');
    const ct = await c.n.connect(a.identity.nodeId).catch((e: McpE2eError) => e);
    if (!(ct instanceof McpE2eError)) await waitFor(() => ct.closed, 'A to close the blocked client');
    await waitFor(() => a.refused.includes('ERR_PEER_BLOCKED'), 'A’s refusal');
    assert.ok(!a.mcpSessions.includes(c.identity.nodeId));
    await c.n.stop();
  } finally {
    await Promise.all([a.n.stop(), b.n.stop()]);
  }
});

test('a block written by another process (mcp-e2e peers block) reaches a running node within its tick: open sessions closed, new ones refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-e2e-mesh-'));
  const path = join(dir, 'peers.json');
  const a = await node('a', { registry: { path }, expiryCheckMs: 50 });
  const c = await node('c');
  try {
    c.n.add({ record: a.n.record!.bytes });
    const before = await c.n.connect(a.identity.nodeId);
    const endings: McpE2eError[] = [];
    before.onerror = (e) => endings.push(e as McpE2eError);
    // A counts the session once its MCP side is set up, a moment after C's connect resolves.
    await waitFor(() => a.mcpSessions.includes(c.identity.nodeId), 'A to take the session before the block');
    const other = new PeerRegistry({ path, flushIntervalMs: 0 });
    other.setBlocked(c.identity.nodeId, true);
    other.flush();
    await waitFor(() => a.n.registry.isBlocked(c.identity.nodeId), 'the block at A');
    await waitFor(() => before.closed, 'A to close the session C had before the block');
    assert.deepEqual(endings.map((e) => `${e.code} ${e.fromPeer}`), ['ERR_PEER_BLOCKED true'], 'C reads why, sealed');
    const ct = await c.n.connect(a.identity.nodeId).catch((e: McpE2eError) => e);
    if (!(ct instanceof McpE2eError)) await waitFor(() => ct.closed, 'A to close the blocked client');
    await waitFor(() => a.refused.includes('ERR_PEER_BLOCKED'), 'A to refuse C');
    assert.equal(a.mcpSessions.filter((id) => id === c.identity.nodeId).length, 1, 'only the session from before the block');
  } finally {
    await Promise.all([a.n.stop(), c.n.stop()]);
  }
});

test('names are given here: an allowlist label resolves; the name in a record, trusted or not, is a claim that is never followed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-e2e-names-'));
  const list = PeerAllowList.fromFile(join(dir, 'allowed_peers'));
  const a = await node('a', { allowList: list });
  const b = await node('prod');
  const impostor = await node('prod');
  const claim = (e: unknown) => e instanceof McpE2eError && e.code === 'ERR_PEER_NOT_FOUND' && /call themselves that, a claim that selects nothing/.test(e.message);
  try {
    a.n.add({ record: b.n.record!.bytes });
    a.n.add({ record: impostor.n.record!.bytes });
    assert.throws(() => a.n.resolve('prod'), claim);
    // Trusted, it still does not get the name it claims: a person names it.
    list.set([b.identity.nodeId]);
    assert.equal(a.n.registry.stateOf(b.identity.nodeId), 'trusted');
    assert.throws(() => a.n.resolve('prod'), claim);
    writeFileSync(join(dir, 'allowed_peers'), `${b.identity.nodeId} production\n`);
    list.reload();
    assert.equal(a.n.resolve('production'), b.identity.nodeId);
    assert.equal(a.n.resolve(b.identity.fingerprint), b.identity.nodeId);
    assert.equal(a.n.resolve(` ${b.identity.nodeId.toUpperCase()} `), b.identity.nodeId);
    assert.throws(() => a.n.resolve(impostor.identity.fingerprint), /a fingerprint only selects a peer already known here/);
  } finally {
    await Promise.all([a.n.stop(), b.n.stop(), impostor.n.stop()]);
  }
});

test('StaticSource: its findings are emitted at start and answer lookups; a forged one is refused', async () => {
  const b = await node('b');
  const forged = Buffer.from(b.n.record!.bytes);
  forged[forged.length - 1]! ^= 1;
  const refused: string[] = [];
  const a = new MeshNode({ identity: NodeIdentity.generate(), sources: [new StaticSource([{ record: forged }, { record: b.n.record!.toHex() }], 'config')] });
  a.on('record:refused', (e) => refused.push(`${e.source}:${e.code}`));
  await a.start();
  try {
    assert.deepEqual(refused, ['config:ERR_RECORD_BAD_SIGNATURE']);
    assert.deepEqual(a.registry.get(b.identity.nodeId)!.sources, ['config']);
    const t = await a.connect(b.identity.nodeId);
    await t.close();
  } finally {
    await Promise.all([a.stop(), b.n.stop()]);
  }
});

test('a node whose record states another protocol version: connect by node id fails at once with ERR_SUBPROTOCOL and says which versions', async () => {
  const a = await node('a');
  // An older node: answers the upgrade without our subprotocol, as a v1-only responder does.
  const old = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: () => false });
  await new Promise((r) => old.once('listening', r));
  const oldId = NodeIdentity.generate();
  try {
    const now = Date.now();
    const url = `ws://127.0.0.1:${(old.address() as { port: number }).port}`;
    a.n.add({ record: createPeerRecord(oldId, { seq: now, issuedAtMs: now, expiresAtMs: now + 60_000, addresses: [url], protocolVersions: [1] }).bytes });
    const err = await a.n.connect(oldId.nodeId).then(() => assert.fail('connected'), (e: McpE2eError) => e);
    assert.equal(err.code, 'ERR_SUBPROTOCOL');
    assert.match(err.message, /its record says it speaks protocol version 1, this node 2$/);
  } finally {
    old.close();
    await a.n.stop();
  }
});
