/**
 * `mcp-e2e serve --announce --bootstrap URL#ID` with real processes (issue
 * 13): five serve processes with one bootstrap address between them learn
 * all others (intervals shortened); `mcp-e2e peers` shows the
 * gossip-learned peers with their source; the status line reports mesh
 * sessions and gossip counters; a mesh session costs no MCP server process
 * until MCP flows, and MCP through an address learned by gossip reaches the
 * right node (pinned by its id).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { CLI, DEMO_SERVER, childPids, makeHome, runCli, startServe, type Serve } from './helpers.js';

const FAST = ['--announce', '--no-mdns', '--allow-any-peer', '--gossip-interval', '0.1', '--anti-entropy-interval', '0.5', '--status-interval', '0.5'];

interface Discovered {
  node_id: string;
  sources: string[];
  addresses: string[];
  self: boolean;
}

function discovered(home: string): Discovered[] {
  const r = runCli(['peers', '--json', '--home', home]);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout).peers as Discovered[]).filter((p) => !p.self);
}

test('five serve processes with one bootstrap address learn all others; peers shows the source; status line; MCP by the learned address', { timeout: 180_000 }, async () => {
  const homes = Array.from({ length: 5 }, () => makeHome());
  const serves: Serve[] = [];
  try {
    const hub = await startServe(['--home', homes[0]!.home, ...FAST, '--open-mesh', '--name', 'hub'], [process.execPath, DEMO_SERVER]);
    serves.push(hub);
    const entry = `${hub.url}#${homes[0]!.identity.nodeId}`;
    for (const h of homes.slice(1)) serves.push(await startServe(['--home', h.home, ...FAST, '--bootstrap', entry], [process.execPath, DEMO_SERVER]));
    const ids = homes.map((h) => h.identity.nodeId);
    const end = Date.now() + 60_000;
    for (;;) {
      const done = homes.every((h, i) => {
        const seen = new Set(discovered(h.home).filter((p) => p.addresses.length > 0).map((p) => p.node_id));
        return ids.every((id, j) => i === j || seen.has(id));
      });
      if (done) break;
      assert.ok(Date.now() < end, 'every node lists the other four within 60 s');
      await new Promise((r) => setTimeout(r, 250));
    }
    // Where each was learned: the hub by bootstrap, the others by gossip.
    const last = discovered(homes[4]!.home);
    assert.ok(last.find((p) => p.node_id === ids[0])!.sources.includes('bootstrap'));
    for (const id of ids.slice(1, 4)) assert.ok(last.find((p) => p.node_id === id)!.sources.includes('gossip'), `${id.slice(0, 8)} learned by gossip`);
    const text = runCli(['peers', '--home', homes[4]!.home]).stdout;
    assert.match(text, /LEARNED/);
    assert.match(text, /\bgossip\b/);
    // The status line with mesh sessions and gossip counters.
    const status = await serves[2]!.waitFor((e) => typeof e.mesh_sessions === 'number' && (e.records as number) >= 5);
    assert.ok((status.gossip_peers as number) >= 1 && (status.messages_in as number) > 0, JSON.stringify(status));
    // Mesh sessions only: no MCP server process was started anywhere.
    for (const s of serves) assert.deepEqual(childPids(s.proc.pid!).length, 0, 'no child for mesh sessions');
    // MCP from node 4 to node 2 through the address node 4 learned by gossip, pinned to node 2's id.
    const url = last.find((p) => p.node_id === ids[2])!.addresses[0]!;
    assert.equal(new URL(url).port, new URL(serves[2]!.url).port, 'the address node 2 announced');
    const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, 'connect', url, '--home', homes[4]!.home, '--peer', ids[2]!], stderr: 'pipe' });
    const client = new Client({ name: 'mesh-cli-test', version: '1.0.0' });
    await client.connect(transport);
    const tools = await client.listTools();
    assert.ok(tools.tools.length > 0);
    await client.close();
  } finally {
    await Promise.all(serves.map((s) => s.stop()));
  }
});
