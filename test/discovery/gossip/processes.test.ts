/**
 * Bootstrap and gossip with real processes on 127.0.0.1 (issue 13): each
 * node is a MeshNode in a process of its own (fixtures/mesh-node.ts) with
 * gossip intervals shortened (round 100 ms, anti-entropy 500 ms). Deadlines
 * are generous (the machine is shared); what is asserted is the outcome.
 * - five nodes with one bootstrap address between them learn all others,
 *   and each opens an MCP session to every other by node id;
 * - a malicious member's forged, stale, expired, oversize and
 *   wrongly-labelled records are refused by every node, and it is cut off;
 * - a node that announces leaving is forgotten at once; one killed with -9
 *   when its record expires;
 * - two halves that could not talk converge once one link joins them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { NodeIdentity } from '../../../src/identity/identity.js';
import { EncryptedWebSocketClientTransport } from '../../../src/transport/client.js';
import { createPeerRecord, encodePeerRecordBody, type PeerRecord } from '../../../src/discovery/record.js';
import { GOSSIP_TYPE } from '../../../src/discovery/gossip/protocol.js';
import { LABEL } from '../../../src/protocol.js';
import type { McpE2eError } from '../../../src/errors.js';
import type { FixtureConfig } from './fixtures/mesh-node.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/mesh-node.js', import.meta.url));
const DEADLINE_MS = 30_000;

interface PeerView {
  nodeId: string;
  seq?: number;
  left: boolean;
  expired: boolean;
  sources: string[];
}

class Proc {
  readonly child: ChildProcess;
  nodeId = '';
  url = '';
  #next = 1;
  readonly #waiting = new Map<number, (m: Record<string, unknown>) => void>();
  readonly ready: Promise<void>;

  constructor(config: FixtureConfig) {
    this.child = fork(FIXTURE, [JSON.stringify(config)], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    let stderr = '';
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    this.ready = new Promise((resolve, reject) => {
      this.child.on('message', (m: Record<string, unknown>) => {
        if (m.ready) {
          this.nodeId = m.nodeId as string;
          this.url = m.url as string;
          resolve();
        } else this.#waiting.get(m.id as number)?.(m);
      });
      this.child.once('exit', (code) => reject(new Error(`node exited with ${code} before it was ready: ${stderr}`)));
    });
  }

  ask(cmd: string, extra: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const id = this.#next++;
    return new Promise((resolve) => {
      this.#waiting.set(id, resolve);
      this.child.send({ id, cmd, ...extra });
    });
  }

  async peers(): Promise<PeerView[]> {
    return (await this.ask('peers')).peers as PeerView[];
  }

  /** Node ids this node holds an unexpired record of (not ours, not left). */
  async known(): Promise<Set<string>> {
    return new Set((await this.peers()).filter((p) => p.nodeId !== this.nodeId && p.seq !== undefined && !p.expired && !p.left).map((p) => p.nodeId));
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}

async function start(configs: FixtureConfig[]): Promise<Proc[]> {
  const procs = configs.map((c) => new Proc(c));
  await Promise.all(procs.map((p) => p.ready));
  return procs;
}

async function until(what: string, cond: () => Promise<boolean>, ms = DEADLINE_MS): Promise<number> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) assert.fail(`timed out after ${ms} ms waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return Date.now() - t0;
}

function cleanup(procs: Proc[]): void {
  for (const p of procs) p.kill();
}

test('five nodes with one bootstrap address learn all others, and each opens an MCP session to every other by node id', { timeout: 120_000 }, async () => {
  // The bootstrap node gossips with everyone who dials it (an open node); the others keep the default:
  // they gossip with their bootstrap peer only.
  const hub = (await start([{ seed: 1, open: true }]))[0]!;
  const procs = [hub, ...(await start([2, 3, 4, 5].map((seed) => ({ seed, bootstrap: [`${hub.url}#${hub.nodeId}`] }))))];
  try {
    const all = procs.map((p) => p.nodeId);
    const took = await until('every node knows the other four', async () => {
      for (const p of procs) {
        const k = await p.known();
        if (!all.every((id) => id === p.nodeId || k.has(id))) return false;
      }
      return true;
    });
    // Gossip-learned peers carry their source.
    const views = await procs[4]!.peers();
    assert.ok(views.find((v) => v.nodeId === procs[2]!.nodeId)!.sources.includes('gossip'));
    assert.ok(views.find((v) => v.nodeId === hub.nodeId)!.sources.includes('bootstrap'));
    for (const a of procs) {
      for (const b of procs) {
        if (a === b) continue;
        const r = await a.ask('mcp', { nodeId: b.nodeId });
        assert.equal(r.ok, true, `${a.nodeId.slice(0, 8)} -> ${b.nodeId.slice(0, 8)}: ${r.message}`);
        assert.equal(r.peer, b.nodeId);
        assert.equal(r.text, `Echo: ${a.nodeId.slice(0, 8)}`);
      }
    }
    process.stderr.write(`# five nodes learned each other in ${took} ms\n`);
  } finally {
    cleanup(procs);
  }
});

test('a malicious member: forged, stale, expired, oversize and wrongly-labelled records are refused by every node, and it is cut off', { timeout: 120_000 }, async () => {
  const procs = await start([11, 12, 13].map((seed) => ({ seed, open: true })));
  const [a, b, c] = procs as [Proc, Proc, Proc];
  const mallory = NodeIdentity.fromPrivateKey(Buffer.alloc(32, 99));
  const sessions: EncryptedWebSocketClientTransport[] = [];
  try {
    // An honest mesh: b and c join through a.
    await b.ask('dial', { nodeId: a.nodeId, url: a.url });
    await c.ask('dial', { nodeId: a.nodeId, url: a.url });
    await until('the honest nodes know each other', async () => (await b.known()).has(c.nodeId) && (await c.known()).has(b.nodeId));
    // An old record of b's, then a newer one everywhere.
    const old = (await a.peers()).find((p) => p.nodeId === b.nodeId)!.seq!;
    const newer = (await b.ask('republish')).seq as number;
    assert.ok(newer > old);
    await until('every node holds b\'s newer record', async () => {
      for (const p of [a, c]) if ((await p.peers()).find((v) => v.nodeId === b.nodeId)?.seq !== newer) return false;
      return true;
    });

    const now = Date.now();
    const victim = NodeIdentity.fromPrivateKey(Buffer.alloc(32, 98));
    const make = (id: NodeIdentity, f: Partial<{ seq: number; issued: number; lifetime: number }> = {}): PeerRecord =>
      createPeerRecord(id, { seq: f.seq ?? now, issuedAtMs: f.issued ?? now, expiresAtMs: (f.issued ?? now) + (f.lifetime ?? 3_600_000), addresses: ['ws://127.0.0.1:9'], protocolVersions: [1] });
    const good = make(victim).toHex();
    const forged = good.slice(0, -2) + (good.endsWith('00') ? '01' : '00');
    const body = encodePeerRecordBody(mallory.publicKey, { seq: now, issuedAtMs: now, expiresAtMs: now + 60_000, addresses: [], protocolVersions: [1] });
    const wrongLabel = Buffer.concat([body, mallory.sign(LABEL.RECORD_SIGNATURE, body)]).toString('hex');
    const expired = make(victim, { issued: now - 7_200_000, lifetime: 60_000 }).toHex();
    // A replay of b's old record: it must never replace the newer one.
    const oldRecordOfB = await oldRecord(b, old);
    const injections: Array<[string, unknown[]]> = [
      ['stale', [oldRecordOfB]],
      ['expired', [expired]],
      ['oversize', ['ab'.repeat(2049)]],
      ['forged', [forged]],
      ['wrongly labelled', [wrongLabel]],
    ];
    const endings: McpE2eError[] = [];
    for (const p of procs) {
      const t = new EncryptedWebSocketClientTransport(p.url, { identity: mallory, expectedPeer: p.nodeId });
      t.onerror = (e) => endings.push(e as McpE2eError);
      await t.start();
      sessions.push(t);
      for (const [, records] of injections) await t.sendControl({ type: GOSSIP_TYPE.PUSH, records }).catch(() => {});
    }
    await until('every node cut mallory off', async () => sessions.every((t) => t.closed));
    // Each says why, authenticated: its sealed CLOSE names the cut-off.
    assert.deepEqual(endings.map((e) => `${e.code} ${e.fromPeer}`), procs.map(() => 'ERR_GOSSIP_CUT_OFF true'));
    for (const p of procs) {
      const s = (await p.ask('status')) as { counters: { cutoffs: number; refused: Record<string, number> } };
      assert.ok(s.counters.cutoffs >= 1, `${p.nodeId.slice(0, 8)} cut mallory off`);
      // b itself never takes a record of its own id from others (PROTOCOL.md §14.1): no stale refusal there.
      const codes = p === b ? ['ERR_RECORD_EXPIRED', 'ERR_RECORD_BAD_SIGNATURE'] : ['ERR_RECORD_STALE', 'ERR_RECORD_EXPIRED', 'ERR_RECORD_BAD_SIGNATURE'];
      for (const code of codes) assert.ok((s.counters.refused[code] ?? 0) >= 1, `${p.nodeId.slice(0, 8)} refused ${code}: ${JSON.stringify(s.counters.refused)}`);
      const views = await p.peers();
      assert.ok(!views.some((v) => v.nodeId === victim.nodeId || (v.nodeId === mallory.nodeId && v.seq !== undefined)), 'no injected record stored');
      assert.equal(views.find((v) => v.nodeId === b.nodeId)!.seq, newer, 'b\'s record never replaced by the older one');
    }
  } finally {
    for (const t of sessions) await t.close().catch(() => {});
    cleanup(procs);
  }
});

/** The record `p` published with `seq` (the fixture keeps the ones it made). */
async function oldRecord(p: Proc, seq: number): Promise<string> {
  const r = (await p.ask('record', { seq })) as { hex?: string };
  assert.ok(r.hex, 'the fixture kept the old record');
  return r.hex!;
}

test('a node that announces leaving is forgotten at once; one killed with -9 when its record expires', { timeout: 120_000 }, async () => {
  const hub = (await start([{ seed: 21, open: true }]))[0]!;
  const [leaver, crasher, watcher] = await start([
    { seed: 22, bootstrap: [`${hub.url}#${hub.nodeId}`] },
    { seed: 23, bootstrap: [`${hub.url}#${hub.nodeId}`], lifetimeMs: 4000 },
    { seed: 24, bootstrap: [`${hub.url}#${hub.nodeId}`] },
  ]);
  const procs = [hub, leaver!, crasher!, watcher!];
  try {
    await until('the watcher knows both', async () => {
      const k = await watcher!.known();
      return k.has(leaver!.nodeId) && k.has(crasher!.nodeId);
    });
    await leaver!.ask('stop');
    const tookLeave = await until('every node saw the leaving record', async () => {
      for (const p of [hub, watcher!]) if (!(await p.peers()).find((v) => v.nodeId === leaver!.nodeId)?.left) return false;
      return true;
    }, 10_000);
    // Forgotten: not dialled any more.
    const r = await watcher!.ask('mcp', { nodeId: leaver!.nodeId });
    assert.equal(r.ok, false);
    assert.equal(r.code, 'ERR_PEER_NOT_FOUND');
    crasher!.kill();
    const tookExpiry = await until('every node saw the crashed node\'s record expire', async () => {
      for (const p of [hub, watcher!]) if (!(await p.peers()).find((v) => v.nodeId === crasher!.nodeId)?.expired) return false;
      return true;
    });
    process.stderr.write(`# leaving seen everywhere in ${tookLeave} ms; expiry after kill -9 in ${tookExpiry} ms (lifetime 4 s)\n`);
  } finally {
    cleanup(procs);
  }
});

test('partition and heal: two halves that could not talk converge once one link joins them', { timeout: 120_000 }, async () => {
  const [a0, b0] = await start([{ seed: 31, open: true }, { seed: 34, open: true }]);
  const halves = [
    [a0!, ...(await start([32, 33].map((seed) => ({ seed, open: true, bootstrap: [`${a0!.url}#${a0!.nodeId}`] }))))],
    [b0!, ...(await start([35, 36].map((seed) => ({ seed, open: true, bootstrap: [`${b0!.url}#${b0!.nodeId}`] }))))],
  ];
  const procs = halves.flat();
  try {
    const ids = (h: Proc[]) => h.map((p) => p.nodeId);
    await until('each half has converged', async () => {
      for (const h of halves) {
        for (const p of h) {
          const k = await p.known();
          if (!ids(h).every((id) => id === p.nodeId || k.has(id))) return false;
        }
      }
      return true;
    });
    for (const p of halves[0]!) for (const id of ids(halves[1]!)) assert.ok(!(await p.known()).has(id), 'the halves are apart');
    // Heal: one link between the last node of each half.
    await halves[0]![2]!.ask('dial', { nodeId: halves[1]![2]!.nodeId, url: halves[1]![2]!.url });
    const took = await until('every node knows all six', async () => {
      for (const p of procs) {
        const k = await p.known();
        if (!procs.every((q) => q === p || k.has(q.nodeId))) return false;
      }
      return true;
    });
    process.stderr.write(`# healed halves converged in ${took} ms (anti-entropy every 0.5 s)\n`);
  } finally {
    cleanup(procs);
  }
});

test('a bootstrap entry without a node id: refused unless trust on first use is asked for, and then the key seen first is pinned', { timeout: 60_000 }, async () => {
  const hub = (await start([{ seed: 41, open: true }]))[0]!;
  const procs = [hub];
  try {
    const refused = new Proc({ seed: 42, bootstrap: [hub.url] });
    await assert.rejects(refused.ready, /no node id/);
    const [tofu] = await start([{ seed: 43, bootstrap: [hub.url], tofu: true }]);
    procs.push(tofu!);
    await until('the node learned the hub by trust on first use', async () => {
      const v = (await tofu!.peers()).find((p) => p.nodeId === hub.nodeId);
      return v !== undefined && v.sources.includes('bootstrap');
    });
    await until('the hub holds its record (a session pinned to the key seen first)', async () => (await hub.known()).has(tofu!.nodeId));
    const s = (await tofu!.ask('status')) as { peers: string[] };
    assert.deepEqual(s.peers, [hub.nodeId], 'the hub is a gossip member: a bootstrap peer');
  } finally {
    cleanup(procs);
  }
});
