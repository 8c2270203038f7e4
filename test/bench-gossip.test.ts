/**
 * Keeps the gossip simulator (bench/gossip/, issue 13) from rotting, and
 * checks at 1,000 nodes what the full run shows at 10,000: the real engine
 * on the simulated network brings a new record to every node within 24
 * rounds at 0%, 5% and 10% loss and under churn, reconciliation at rest stays
 * under 2 KB per node per round, and no honest node is ever scored down or
 * cut off (a penalty among honest nodes would be a bug in the protocol).
 * The figures themselves come from `npm run sim` (docs/GOSSIP-SIMULATION.md).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { judge, renderTable, runSize, storeMemory } from '../bench/gossip/run.js';
import { MemoVerifier, SIM_START_MS } from '../bench/gossip/sim.js';
import { verifyRecordHex } from '../src/discovery/gossip/engine.js';
import { createPeerRecord } from '../src/discovery/record.js';
import { NodeIdentity } from '../src/identity/identity.js';
import { isMcpE2eError } from '../src/errors.js';

test('gossip simulation at 1,000 nodes: reach, cost at rest, no penalty among honest nodes', { timeout: 300_000 }, () => {
  const r = runSize(1000, { sizes: [1000], trials: 1, warmMs: 5000, restMs: 10_000, churnMs: 20_000, churnMsLarge: 20_000, maxRounds: 40 });
  assert.equal(r.reach.length, 4);
  for (const row of r.reach) {
    for (const t of row.trials) {
      assert.ok(t.r100 !== undefined && t.r100 <= 24, `loss ${row.loss}, churn ${row.churn}: 100% after ${t.r100} rounds`);
      assert.ok(t.r50! <= t.r99! && t.r99! <= t.r100);
    }
  }
  assert.ok(r.rest.bytesPerNodePerRound <= 2048, `${r.rest.bytesPerNodePerRound} bytes per node per round at rest`);
  assert.ok(r.rest.bytesPerNodePerRound > 0, 'exchanges run at rest');
  assert.ok(r.changes.joins > 0 && r.changes.bytesPerNodePerMinute > r.rest.bytesPerNodePerMinute);
  assert.equal(r.cutoffs, 0, 'no honest node cut off');
  assert.equal(r.misbehaviour, 0, 'no honest node reported');
  assert.ok(r.verifications < r.verifierLookups, 'identical bytes verified once');
  const table = renderTable([r], 1000);
  assert.match(table, /\| 1,000 \| 10% \| no \|/);
  const goals = judge([r], storeMemory(1000));
  assert.match(goals.lines.at(-1)!, /Per-node memory for 1,000 records/);
});

test('the simulator\'s memoised verifier gives the real verifier\'s verdicts at any time of the run', () => {
  const v = new MemoVerifier();
  const id = NodeIdentity.fromPrivateKey(Buffer.alloc(32, 9));
  const later = SIM_START_MS + 3_600_000;
  const r = createPeerRecord(id, { seq: 1, issuedAtMs: later, expiresAtMs: later + 60_000, addresses: [], protocolVersions: [1] });
  const hex = r.toHex();
  // Issued an hour after the start: from the future then, valid at its time, expired after.
  for (const [now, code] of [[SIM_START_MS, 'ERR_RECORD_FROM_FUTURE'], [later, undefined], [later + 60_000, 'ERR_RECORD_EXPIRED']] as const) {
    for (const verify of [v.verify, verifyRecordHex]) {
      if (code) assert.throws(() => verify(hex, now), (e: unknown) => isMcpE2eError(e, code));
      else assert.equal(verify(hex, now).seq, 1);
    }
  }
  const forged = hex.slice(0, -2) + (hex.endsWith('00') ? '01' : '00');
  for (let i = 0; i < 2; i++) assert.throws(() => v.verify(forged, later), (e: unknown) => isMcpE2eError(e, 'ERR_RECORD_BAD_SIGNATURE'));
  assert.equal(v.verifications, 2, 'each distinct record checked once');
});
