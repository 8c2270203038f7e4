/**
 * mDNS figures (issue 12), on real multicast in network namespaces made for
 * the run (a bridged segment; nothing leaves the machine; needs root):
 *
 * 1. Discovery latency, over `--runs` repetitions: a browser runs on host 2;
 *    a node process starts on host 1. Reported: from the node's
 *    `MdnsSource.start()` to the browser's hint (and from the process spawn,
 *    which adds Node's start-up), from start to "announced" (ciao's probing),
 *    from SIGTERM to the browser's "expired" (goodbye), and from a new
 *    browser's start to its hint for a node already running.
 * 2. Packets at rest: `--nodes` nodes (each announcing and browsing, as
 *    `serve --announce` does) on the segment and a passive counter; after
 *    `--warmup-s`, packets are counted for `--window-s` and given per node per
 *    minute, beside libp2p's mDNS (a query every 10 s, every node answering
 *    every query, no known-answer suppression).
 *
 *   node dist/bench/mdns.js [--runs 20] [--nodes 3] [--warmup-s 60] [--window-s 300] [--quick]
 */
import { parseArgs } from 'node:util';
import { startLan } from '../test/helpers/netns.js';
import { MDNS_NODE, startJson, type Line } from '../test/discovery/mdns-helpers.js';
import { fileURLToPath } from 'node:url';
import { quantile } from './stats.js';

const COUNTER = fileURLToPath(new URL('./mdns-counter.js', import.meta.url));
const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '20' },
    nodes: { type: 'string', default: '3' },
    'warmup-s': { type: 'string', default: '60' },
    'window-s': { type: 'string', default: '300' },
    quick: { type: 'boolean' },
  },
});
const quick = values.quick ?? false;
const runs = quick ? 3 : Number(values.runs);
const nodes = Number(values.nodes);
const warmupS = quick ? 5 : Number(values['warmup-s']);
const windowS = quick ? 10 : Number(values['window-s']);
const log = (s: string) => process.stderr.write(s + '\n');
const fmt = (xs: number[]) => `p50 ${quantile(xs, 0.5).toFixed(0)} ms, p90 ${quantile(xs, 0.9).toFixed(0)} ms, min ${Math.min(...xs).toFixed(0)}, max ${Math.max(...xs).toFixed(0)} (n=${xs.length})`;
const t = (l: Line) => l.t as number;

async function latency(): Promise<void> {
  const lan = await startLan(2, { ipv6: false });
  try {
    const [h1, h2] = lan.hosts;
    const browser = startJson(h2!, [MDNS_NODE, '--browse-only']);
    await browser.waitFor((l) => l.event === 'ready', 20_000, 'the browser');
    const fromStart: number[] = [];
    const fromSpawn: number[] = [];
    const toAnnounced: number[] = [];
    const goodbye: number[] = [];
    const browserStart: number[] = [];
    for (let i = 0; i < runs; i++) {
      const spawned = Date.now();
      const node = startJson(h1!, [MDNS_NODE, '--port', String(5000 + i)]);
      const starting = await node.waitFor((l) => l.event === 'starting', 20_000, 'node starting');
      const ready = await node.waitFor((l) => l.event === 'ready', 20_000, 'node announced');
      const found = await browser.waitFor((l) => l.event === 'hint' && l.node_id === ready.node_id, 20_000, 'the node found');
      fromStart.push(t(found) - t(starting));
      fromSpawn.push(t(found) - spawned);
      toAnnounced.push(t(ready) - t(starting));
      // A browser that starts while the node runs.
      const late = startJson(h2!, [MDNS_NODE, '--browse-only']);
      const lateStart = await late.waitFor((l) => l.event === 'starting', 20_000, 'late browser starting');
      const lateFound = await late.waitFor((l) => l.event === 'hint' && l.node_id === ready.node_id, 20_000, 'late browser finds the node');
      browserStart.push(t(lateFound) - t(lateStart));
      late.child.kill('SIGKILL');
      const stopped = Date.now();
      node.child.kill('SIGTERM');
      const gone = await browser.waitFor((l) => l.event === 'expired' && l.node_id === ready.node_id, 20_000, 'the goodbye');
      goodbye.push(t(gone) - stopped);
      log(`run ${i + 1}/${runs}: start→found ${fromStart.at(-1)} ms, browser start→found ${browserStart.at(-1)} ms, SIGTERM→gone ${goodbye.at(-1)} ms`);
    }
    console.log(`## mDNS discovery latency (${runs} runs, two namespaces on one bridge)\n`);
    console.log(`| figure | value |\n| --- | --- |`);
    console.log(`| node start() → found by a running browser | ${fmt(fromStart)} |`);
    console.log(`| node process spawn → found | ${fmt(fromSpawn)} |`);
    console.log(`| node start() → announced (probing done) | ${fmt(toAnnounced)} |`);
    console.log(`| browser start → finds a running node | ${fmt(browserStart)} |`);
    console.log(`| SIGTERM → browser reports it gone (goodbye) | ${fmt(goodbye)} |\n`);
    browser.child.kill('SIGKILL');
  } finally {
    await lan.close();
  }
}

async function atRest(): Promise<void> {
  const lan = await startLan(nodes + 1, { ipv6: false });
  try {
    const started = lan.hosts.slice(0, nodes).map((h, i) => startJson(h, [MDNS_NODE, '--port', String(6000 + i)]));
    const ids = await Promise.all(started.map(async (p) => (await p.waitFor((l) => l.event === 'ready', 30_000, 'node announced')).node_id as string));
    for (const p of started) for (const id of ids) await p.waitFor((l) => l.event === 'hint' && l.node_id === id, 30_000, 'every node finds every node');
    log(`${nodes} nodes up and found each other; warming up ${warmupS} s, then counting ${windowS} s`);
    await new Promise((r) => setTimeout(r, warmupS * 1000));
    const counterHost = lan.hosts[nodes]!;
    const counter = startJson(counterHost, [COUNTER, '--address', counterHost.ipv4, '--seconds', String(windowS)]);
    const result = await counter.waitFor((l) => l.event === 'counted', (windowS + 30) * 1000, 'the count');
    const bySender = result.bySender as Record<string, { query: number; response: number; other: number; bytes: number }>;
    const perNode = lan.hosts.slice(0, nodes).map((h) => bySender[h.ipv4] ?? { query: 0, response: 0, other: 0, bytes: 0 });
    const minutes = windowS / 60;
    const q = perNode.reduce((n, s) => n + s.query, 0) / nodes / minutes;
    const r = perNode.reduce((n, s) => n + s.response, 0) / nodes / minutes;
    const bytes = perNode.reduce((n, s) => n + s.bytes, 0) / nodes / minutes;
    const libp2p = 6 + 6 * (nodes - 1); // 6 queries/min of its own + an answer to each of the others' 6/min
    console.log(`## mDNS packets at rest (${nodes} nodes, counted ${windowS} s after ${warmupS} s)\n`);
    console.log(`| | per node per minute |\n| --- | --- |`);
    console.log(`| queries sent | ${q.toFixed(2)} |`);
    console.log(`| responses sent | ${r.toFixed(2)} |`);
    console.log(`| packets in all | ${(q + r).toFixed(2)} (${bytes.toFixed(0)} bytes of UDP payload) |`);
    console.log(`| libp2p mDNS (10 s interval, computed) | ${libp2p} |\n`);
    console.log('Per sender:', JSON.stringify(bySender));
    for (const p of started) p.child.kill('SIGKILL');
  } finally {
    await lan.close();
  }
}

await latency();
await atRest();
process.exit(0);
