/**
 * The mDNS source on real multicast, in network namespaces this test makes
 * and removes (a bridged segment of its own; nothing leaves the machine):
 * a name conflict resolved by renaming; hostile packets leaving a node
 * running with its caches within their caps; interfaces that appear and
 * disappear followed without a restart; and a real avahi that sees our
 * service with its TXT, and whose `avahi-publish` we see.
 * Skipped, with the reason, where namespaces cannot be made.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { netNamespaceUnavailable, startLan, startNetNamespace, type Lan } from '../helpers/netns.js';
import { avahiUnavailable, startAvahi } from '../helpers/avahi.js';
import { NodeIdentity } from '../../src/identity/identity.js';
import { MDNS_ATTACKER, MDNS_NODE, MESH_NODE, startJson, type Line } from './mdns-helpers.js';

const unavailable = await netNamespaceUnavailable();
const hint = (nodeId: unknown, pred: (l: Line) => boolean = () => true) => (l: Line) => l.event === 'hint' && l.node_id === nodeId && pred(l);

describe('mDNS on a segment of network namespaces', { skip: unavailable }, () => {
  let lan: Lan;
  before(async () => {
    lan = await startLan(3);
  });
  after(async () => {
    await lan?.close();
  });

  test('two nodes asking for one instance name: one is renamed, both stay discoverable with their own ids', async () => {
    const [h1, h2, h3] = lan.hosts;
    const watcher = startJson(h3!, [MDNS_NODE, '--browse-only']);
    const a = startJson(h1!, [MDNS_NODE, '--port', '4001', '--instance', 'same-name']);
    const b = startJson(h2!, [MDNS_NODE, '--port', '4002', '--instance', 'same-name']);
    const ra = await a.waitFor((l) => l.event === 'ready', 20_000, 'a announced');
    const rb = await b.waitFor((l) => l.event === 'ready', 20_000, 'b announced');
    assert.notEqual(ra.instance, rb.instance, 'two different instance names in the end');
    assert.ok([ra.instance, rb.instance].includes('same-name'), 'one keeps the name');
    assert.ok([ra.instance, rb.instance].includes('same-name (2)'), `the other is renamed as RFC 6762 §9 asks: ${ra.instance} / ${rb.instance}`);
    assert.equal(ra.hooks_intact, true, "announcing (loading ciao) left the process's Error.prepareStackTrace and process.emit alone");
    const ha = await watcher.waitFor(hint(ra.node_id), 15_000, "a's hint");
    const hb = await watcher.waitFor(hint(rb.node_id), 15_000, "b's hint");
    assert.equal(ha.name, ra.instance);
    assert.equal(hb.name, rb.instance);
    assert.deepEqual(ha.urls, ['ws://10.99.0.1:4001', 'ws://[fd99::1]:4001']);
    assert.deepEqual(hb.urls, ['ws://10.99.0.2:4002', 'ws://[fd99::2]:4002']);
    for (const p of [watcher, a, b]) p.child.kill('SIGKILL');
  });

  test('hostile packets: junk, a huge TXT, a flood of fake services and a false claim of a node id leave the node running within its caps', async () => {
    const [h1, h2, h3] = lan.hosts;
    const real = startJson(h2!, [MDNS_NODE, '--port', '4100']);
    const realReady = await real.waitFor((l) => l.event === 'ready', 20_000, 'the real node');
    const victim = startJson(h1!, [MDNS_NODE, '--port', '4200', '--max-services', '64', '--stats-ms', '250']);
    await victim.waitFor(hint(realReady.node_id), 20_000, 'the real node found');
    const attacker = startJson(h3!, [MDNS_ATTACKER, '--address', h3!.ipv4, '--claim', String(realReady.node_id), '--flood', '3000', '--port', '4100']);
    await attacker.waitFor((l) => l.event === 'flooded', 60_000, 'the flood sent');
    const claim = await victim.waitFor(hint(realReady.node_id, (l) => l.name === 'impostor'), 20_000, 'the impostor seen');
    // The claim is one more hint for that id, at the attacker's address, beside the real one: nothing is replaced.
    assert.deepEqual(claim.urls, [`ws://${h3!.ipv4}:4100`]);
    const since = Date.now();
    const stats = await victim.waitFor((l) => l.event === 'stats' && (l.t ?? 0) > since, 10_000, 'stats after the attack');
    assert.equal(victim.child.exitCode, null, 'still running');
    assert.ok((stats.parseErrors as number) >= 100, `junk counted as parse errors: ${stats.parseErrors}`);
    assert.ok(((stats.txtRefused as Record<string, number>)['txt-too-large'] ?? 0) >= 1, 'the huge TXT refused');
    assert.ok((stats.services as number) <= 64, `services cached: ${stats.services}`);
    assert.ok((stats.rateLimited as number) + (stats.capDropped as number) > 0, 'the flood met the rate limit and the cap');
    const realHints = victim.lines.filter(hint(realReady.node_id, (l) => l.name !== 'impostor'));
    assert.ok(realHints.length >= 1 && realHints.every((l) => (l.urls as string[])[0] === 'ws://10.99.0.2:4100'), "the real node's entry is its own");
    // And the real node still answers: a fresh query from the victim finds it (a node that announces is found at once, too).
    const watcher = startJson(h1!, [MDNS_NODE, '--browse-only']);
    await watcher.waitFor(hint(realReady.node_id, (l) => l.name !== 'impostor'), 20_000, 'the real node found again after the attack');
    for (const p of [attacker, victim, real, watcher]) p.child.kill('SIGKILL');
  });

  test("a node announces only the local addresses its record states: a listener on 127.0.0.1 stays off the LAN", async () => {
    const [h1, h2] = lan.hosts;
    const lonely = startJson(h1!, [MDNS_NODE, '--address', 'ws://127.0.0.1:4500']);
    const wide = startJson(h1!, [MDNS_NODE, '--address', `ws://${h1!.ipv4}:4501/mcp`]);
    const far = startJson(h2!, [MDNS_NODE, '--browse-only']);
    const near = startJson(h1!, [MDNS_NODE, '--browse-only']);
    const [lonelyId, wideId] = await Promise.all([lonely, wide].map(async (p) => (await p.waitFor((l) => l.event === 'ready', 20_000, 'announced')).node_id));
    const seenNear = await near.waitFor(hint(lonelyId), 15_000, 'the loopback-only node from its own host');
    assert.deepEqual(seenNear.urls, ['ws://127.0.0.1:4500']);
    const wideFar = await far.waitFor(hint(wideId), 15_000, 'the LAN node from another host');
    assert.deepEqual(wideFar.urls, [`ws://${h1!.ipv4}:4501/mcp`], 'its record address only: no IPv6, the path kept');
    // The far browser has queried and been answered (it found the other node); give the loopback-only node the same chance.
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(far.lines.filter(hint(lonelyId)).length, 0, 'the loopback-only node is not offered on the LAN');
    for (const p of [lonely, wide, far, near]) p.child.kill('SIGKILL');
  });

  test('mesh nodes with mDNS: connect by id through mDNS; a false claim of that id leaves the registry view as the handshake made it, and connects stay pinned', async () => {
    const [h1, h2, h3] = lan.hosts;
    const victim = startJson(h1!, [MESH_NODE, '--no-serve'], { stdin: true });
    const real = startJson(h2!, [MESH_NODE, '--port', '4600']);
    const other = startJson(h3!, [MESH_NODE, '--port', '4601']);
    const [v, r] = await Promise.all([victim, real, other].map((p) => p.waitFor((l) => l.event === 'ready', 20_000, 'mesh node ready')));
    const realUrl = `ws://${h2!.ipv4}:4600`;
    const discovered = await victim.waitFor((l) => l.event === 'peer:discovered' && l.node_id === r!.node_id, 20_000, 'the real node discovered');
    assert.equal(discovered.source, 'mdns');
    assert.equal(discovered.state, 'discovered', 'discovery grants nothing');
    victim.send(`connect ${r!.node_id}`);
    const first = await victim.waitFor((l) => l.event === 'connected' || l.event === 'connect-failed', 20_000, 'connect by id');
    assert.equal(first.node_id, r!.node_id, JSON.stringify(first));
    assert.equal(first.url, realUrl);
    const views: Line[] = [];
    const view = async () => {
      const n = victim.lines.filter((l) => l.event === 'view').length;
      victim.send(`view ${r!.node_id}`);
      const got = await victim.waitFor((l) => l.event === 'view' && victim.lines.filter((x) => x.event === 'view').indexOf(l) === n, 5000, 'view');
      views.push(got);
      return got;
    };
    const before = await view();
    assert.equal(before.state, 'verified');
    assert.equal((before.addresses as string[])[0], realUrl);
    // Now someone on the link claims the real node's id at the other node's address.
    const impostorUrl = `ws://${h3!.ipv4}:4601`;
    const attacker = startJson(h3!, [MDNS_ATTACKER, '--address', h3!.ipv4, '--claim', String(r!.node_id), '--flood', '0', '--port', '4601']);
    await victim.waitFor((l) => l.event === 'peer:updated' && l.node_id === r!.node_id && (l.addresses as string[]).includes(impostorUrl), 20_000, 'the claim arrived');
    const during = await view();
    assert.equal(during.state, before.state, 'still verified, by the handshake');
    assert.equal(during.seq, before.seq, "the real node's record is kept");
    assert.equal((during.addresses as string[])[0], realUrl, 'the address that worked stays first; the claim is only one more hint');
    victim.send(`connect ${r!.node_id}`);
    const again = await victim.waitFor((l) => l.event === 'connected' && l !== first, 20_000, 'connect again');
    assert.equal(again.node_id, r!.node_id);
    // With the real node gone, the claim is all that is left: the pinned handshake refuses whoever answers there.
    real.child.kill('SIGKILL');
    victim.send(`connect ${r!.node_id}`);
    const refused = await victim.waitFor((l) => l.event === 'connect-failed', 30_000, 'connect to a dead node and its impostor');
    assert.equal(refused.code, 'ERR_PEER_KEY_CHANGED', String(refused.message));
    assert.match(String(refused.message), new RegExp(impostorUrl.replace(/[.[\]]/g, '\\$&')));
    const after = await view();
    assert.equal(after.state, 'verified');
    assert.equal(after.seq, before.seq);
    for (const p of [attacker, victim, other]) p.child.kill('SIGKILL');
  });

  test('an interface that appears is used without a restart, and one that disappears crashes nothing', async () => {
    const far = lan.hosts[0]!;
    const watcher = startJson(far, [MDNS_NODE, '--browse-only']);
    const late = await startNetNamespace();
    try {
      const node = startJson(late, [MDNS_NODE, '--port', '4300']);
      const ready = await node.waitFor((l) => l.event === 'ready', 20_000, 'the node on loopback only');
      // Now plug it into the segment.
      const plugged = await lan.addHost(late);
      const found = await watcher.waitFor(hint(ready.node_id), 30_000, 'the node found through its new interface');
      assert.deepEqual(found.urls, [`ws://${plugged.ipv4}:4300`, `ws://[${plugged.ipv6}]:4300`]);
      // Pull it out again: the node keeps running, and its browser still works on loopback.
      await late.exec('ip', ['link', 'del', 'eth0']);
      const other = startJson(late, [MDNS_NODE, '--port', '4301']);
      const otherReady = await other.waitFor((l) => l.event === 'ready', 20_000, 'a second node on loopback');
      await node.waitFor(hint(otherReady.node_id), 20_000, 'the first node, after losing eth0, still finds nodes on loopback');
      assert.equal(node.child.exitCode, null);
    } finally {
      watcher.child.kill('SIGKILL');
      await late.close();
    }
  });
});

describe('mDNS and a real avahi', { skip: unavailable ?? avahiUnavailable() }, () => {
  let lan: Lan;
  before(async () => {
    lan = await startLan(2, { ipv6: false });
  });
  after(async () => {
    await lan?.close();
  });

  test('avahi-browse resolves our service with its TXT; we see what avahi-publish announces', async () => {
    const [ours, theirs] = lan.hosts;
    const avahi = await startAvahi(theirs!, 'eth0');
    try {
      const node = startJson(ours!, [MDNS_NODE, '--port', '4400', '--name', 'avahi-test']);
      const ready = await node.waitFor((l) => l.event === 'ready', 20_000, 'our node announced');
      let rows: string[][] = [];
      for (let i = 0; i < 5 && !rows.some((r) => r[3] === ready.instance); i++) rows = await avahi.browse('_mcp-e2e._tcp');
      const row = rows.find((r) => r[3] === ready.instance);
      assert.ok(row, `avahi-browse lists ${ready.instance}: ${JSON.stringify(rows)}`);
      assert.equal(row[4], '_mcp-e2e._tcp');
      assert.equal(row[7], ours!.ipv4);
      assert.equal(row[8], '4400');
      const txt = row.slice(9).join(';');
      for (const s of ['"txtvers=1"', `"id=${ready.node_id}"`, '"pv=2"', '"key=']) assert.ok(txt.includes(s), `TXT has ${s}: ${txt}`);

      const foreign = NodeIdentity.generate();
      await avahi.publish('from-avahi', '_mcp-e2e._tcp', 4500, ['txtvers=1', `id=${foreign.nodeId}`, 'pv=1', `key=${foreign.publicKey.toString('base64url')}`]);
      const seen = await node.waitFor(hint(foreign.nodeId), 20_000, 'the avahi-published service');
      assert.equal(seen.name, 'from-avahi');
      assert.deepEqual(seen.urls, [`ws://${theirs!.ipv4}:4500`]);
      assert.equal(seen.key, foreign.publicKey.toString('hex'));
      node.child.kill('SIGKILL');
    } finally {
      await avahi.close();
    }
  });
});
