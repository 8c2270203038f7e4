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

test('gossip simulation at 1,000 nodes: reach, cost at rest, no penalty among honest nodes', { timeout: 300_000 }, () => {
  const r = runSize(1000, { sizes: [1000], trials: 1, warmMs: 5000, restMs: 10_000, churnMs: 20_000, maxRounds: 40 });
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
