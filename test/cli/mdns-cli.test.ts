/**
 * The command line over real multicast, in network namespaces this test
 * makes and removes (one bridged segment, three hosts): two
 * `mcp-e2e serve --announce` on two hosts; `mcp-e2e discover` on the third
 * lists both with their ids and ports; `mcp-e2e connect <node id>` (an empty
 * home: nothing but mDNS to go on) reaches each one's MCP server with the
 * real SDK client; a stopped serve disappears within 2 s (its goodbye), a
 * killed one (-9, no goodbye) when its TTL runs out (the watcher bounds TTLs
 * at 4 s). Skipped, with the reason, where namespaces cannot be made.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { ChildProcess } from 'node:child_process';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { netNamespaceUnavailable, startLan, type Lan, type LanHost } from '../helpers/netns.js';
import { CLI, DEMO_SERVER, makeHome } from './helpers.js';
import { MDNS_NODE, startJson, type JsonProcess } from '../discovery/mdns-helpers.js';
import { textOf } from '../transport/helpers.js';

const unavailable = await netNamespaceUnavailable();

interface Served {
  proc: ChildProcess;
  nodeId: string;
  instance: string;
  entries: Array<Record<string, unknown>>;
}

/** `mcp-e2e serve --announce` on `host`, on all its addresses (`listen`: 0.0.0.0, or :: for IPv6 too); resolves once announced. */
async function serve(host: LanHost, home: string, listen: string, extra: string[] = []): Promise<Served> {
  const proc = host.run(process.execPath, [CLI, 'serve', '--json', '--home', home, '--announce', '--host', listen, '--port', '8765', '--allow-any-peer', ...extra, '--', process.execPath, DEMO_SERVER]);
  const entries: Array<Record<string, unknown>> = [];
  const announced = new Promise<Record<string, unknown>>((resolve, reject) => {
    createInterface({ input: proc.stderr! }).on('line', (line) => {
      try {
        const e = JSON.parse(line) as Record<string, unknown>;
        entries.push(e);
        if (typeof e.instance === 'string') resolve(e);
      } catch {
        entries.push({ raw: line });
      }
    });
    proc.once('exit', (code) => reject(new Error(`serve exited (${code}): ${JSON.stringify(entries)}`)));
  });
  const a = await announced;
  const listening = entries.find((e) => typeof e.node_id === 'string')!;
  return { proc, nodeId: listening.node_id as string, instance: a.instance as string, entries };
}

/** An MCP SDK client whose server command is `mcp-e2e connect NODE_ID`, run on `host`. */
async function connectById(host: LanHost, home: string, nodeId: string) {
  const transport = new StdioClientTransport({ command: 'nsenter', args: ['-t', String(host.pid), '-n', '--', process.execPath, CLI, 'connect', nodeId, '--home', home, '--json'], stderr: 'pipe' });
  let stderr = '';
  transport.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const client = new Client({ name: 'mdns-cli-test', version: '1.0.0' });
  try {
    await client.connect(transport);
  } catch (err) {
    throw new Error(`connect ${nodeId.slice(0, 12)} failed: ${(err as Error).message}\n${stderr}`);
  }
  return { client, stderr: () => stderr };
}

describe('mcp-e2e serve --announce, discover, connect NODE_ID on one LAN', { skip: unavailable }, () => {
  let lan: Lan;
  let watcher: JsonProcess;
  let a: Served;
  let b: Served;
  const client = makeHome();
  before(async () => {
    lan = await startLan(3);
    const [h1, h2, h3] = lan.hosts;
    // A browser that keeps running on the third host, to see nodes go (TTLs bounded at 4 s: a killed node is noticed soon).
    watcher = startJson(h3!, [MDNS_NODE, '--browse-only', '--max-ttl-ms', '4000']);
    [a, b] = await Promise.all([serve(h1!, makeHome().home, '0.0.0.0'), serve(h2!, makeHome().home, '::', ['--name', 'beta'])]);
  });
  after(async () => {
    await lan?.close();
  });

  test('discover lists both, with their ids, ports and addresses, as new', async () => {
    const out = await lan.hosts[2]!.exec(process.execPath, [CLI, 'discover', '--json', '--timeout', '3', '--home', client.home], { timeoutMs: 20_000 });
    const rows = JSON.parse(out) as Array<{ name: string; node_id: string; port: number; addresses: string[]; state: string }>;
    const ra = rows.find((r) => r.node_id === a.nodeId);
    const rb = rows.find((r) => r.node_id === b.nodeId);
    assert.ok(ra && rb, `both nodes listed: ${out}`);
    assert.equal(ra.port, 8765);
    assert.equal(rb.port, 8765);
    assert.equal(ra.name, a.instance);
    assert.match(rb.name, new RegExp(`^beta-${b.nodeId.slice(0, 12)}`));
    assert.deepEqual(ra.addresses, ['ws://10.99.0.1:8765'], 'a listener on 0.0.0.0 takes IPv4 only: no AAAA announced');
    assert.deepEqual(rb.addresses, ['ws://10.99.0.2:8765', 'ws://[fd99::2]:8765'], 'a listener on :: takes both');
    assert.equal(ra.state, 'new');
    const table = await lan.hosts[2]!.exec(process.execPath, [CLI, 'discover', '--timeout', '2', '--home', client.home], { timeoutMs: 20_000 });
    assert.match(table, /NAME\s+NODE\s+STATE\s+ADDRESSES/);
    assert.ok(table.includes(b.instance), table);
  });

  test('connect NODE_ID reaches each through an mDNS lookup, pinned to the id; discover then shows them verified (or trusted once allowed)', async () => {
    for (const s of [a, b]) {
      const { client: mcp, stderr } = await connectById(lan.hosts[2]!, client.home, s.nodeId);
      assert.equal(textOf(await mcp.callTool({ name: 'echo', arguments: { message: 'found by id' } })), 'Echo: found by id');
      await mcp.close();
      assert.match(stderr(), new RegExp(`"node_id":"${s.nodeId}"`), 'connect logged the pinned node id');
    }
    // A person allows B: discover marks it trusted (the allowlist), A stays verified (a handshake, no trust).
    await lan.hosts[2]!.exec(process.execPath, [CLI, 'peers', 'allow', b.nodeId, '--home', client.home]);
    const rows = JSON.parse(await lan.hosts[2]!.exec(process.execPath, [CLI, 'discover', '--json', '--timeout', '2', '--home', client.home], { timeoutMs: 20_000 })) as Array<{ node_id: string; state: string }>;
    assert.equal(rows.find((r) => r.node_id === a.nodeId)?.state, 'verified');
    assert.equal(rows.find((r) => r.node_id === b.nodeId)?.state, 'trusted');
  });

  test('connect NODE_ID fails with ERR_PEER_NOT_FOUND for a node nobody announces, and with --no-mdns from an empty home', async () => {
    const { NodeIdentity } = await import('../../src/identity/identity.js');
    const fails = async (args: string[]) => {
      const run = lan.hosts[2]!.run(process.execPath, [CLI, 'connect', ...args]);
      let stderr = '';
      run.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const [code] = (await once(run, 'exit')) as [number];
      assert.equal(code, 1, stderr);
      assert.match(stderr, /ERR_PEER_NOT_FOUND/);
    };
    await fails([NodeIdentity.generate().nodeId, '--home', client.home]);
    // A's id, but mDNS off and nothing in this home's registry: nothing to go on (so the test above did use mDNS).
    await fails([a.nodeId, '--no-mdns', '--home', makeHome().home]);
  });

  test('a stopped serve is gone within 2 s (its goodbye); a killed one (-9) when its TTL runs out', async () => {
    await watcher.waitFor((l) => l.event === 'hint' && l.node_id === a.nodeId, 15_000, 'the watcher has A');
    await watcher.waitFor((l) => l.event === 'hint' && l.node_id === b.nodeId, 15_000, 'the watcher has B');
    const stoppedAt = Date.now();
    a.proc.kill('SIGTERM');
    const goneA = await watcher.waitFor((l) => l.event === 'expired' && l.node_id === a.nodeId, 10_000, 'A gone');
    assert.equal(goneA.reason, 'goodbye');
    assert.ok((goneA.t as number) - stoppedAt < 2000, `gone ${(goneA.t as number) - stoppedAt} ms after SIGTERM`);
    const killedAt = Date.now();
    b.proc.kill('SIGKILL');
    const goneB = await watcher.waitFor((l) => l.event === 'expired' && l.node_id === b.nodeId, 20_000, 'B gone');
    assert.equal(goneB.reason, 'expired', 'no goodbye from a killed process: the TTL ran out');
    assert.ok((goneB.t as number) - killedAt <= 4000 + 1000, `gone ${(goneB.t as number) - killedAt} ms after kill -9 (TTL 4 s)`);
  });
});
