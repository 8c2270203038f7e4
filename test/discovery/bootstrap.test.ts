/**
 * Bootstrap entries (src/discovery/bootstrap.ts): `URL#NODE_ID` parsing
 * (an entry without an id only with trust on first use), and the schedule:
 * everything at start, then only below the target, each entry with its own
 * growing, jittered backoff.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BOOTSTRAP_BACKOFF, BootstrapSchedule, parseBootstrapEntry } from '../../src/discovery/bootstrap.js';
import { throwsCode } from '../helpers/pair.js';

const ID = 'ab'.repeat(32);

test('entries: URL#NODE_ID, ids normalised; no id only with trust on first use', () => {
  assert.deepEqual(parseBootstrapEntry(`ws://127.0.0.1:8765#${ID.toUpperCase()}`), { url: 'ws://127.0.0.1:8765/', nodeId: ID });
  assert.deepEqual(parseBootstrapEntry(`wss://Boot.Example/mcp#${ID}`), { url: 'wss://boot.example/mcp', nodeId: ID });
  assert.throws(() => parseBootstrapEntry('ws://127.0.0.1:8765'), RangeError);
  assert.throws(() => parseBootstrapEntry('ws://127.0.0.1:8765#'), RangeError);
  assert.deepEqual(parseBootstrapEntry('ws://127.0.0.1:8765', { trustOnFirstUse: true }), { url: 'ws://127.0.0.1:8765/', nodeId: undefined });
  throwsCode(() => parseBootstrapEntry('ws://127.0.0.1:8765#abc'), 'ERR_INVALID_NODE_ID');
  for (const bad of [`http://h#${ID}`, `ws://u:p@h#${ID}`, `ws://h/?q=1#${ID}`, 'not a url']) assert.throws(() => parseBootstrapEntry(bad), RangeError, bad);
});

test('schedule: all entries at start, then only below the target, each with its own backoff', () => {
  const entries = [parseBootstrapEntry(`ws://a:1#${ID}`), parseBootstrapEntry(`ws://b:1#${'cd'.repeat(32)}`)];
  const s = new BootstrapSchedule(entries, () => 0); // jitter 0.5 with random 0: the full delay
  assert.deepEqual(s.due(0, 10, 3), entries, 'at start, whatever the target');
  assert.deepEqual(s.due(0, 0, 3), [], 'being dialled');
  s.connected(entries[0]!);
  const delays = [1, 2, 3, 4, 5].map((k) => s.failed(entries[1]!, k * 1000_000));
  assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16000]);
  const t = 5 * 1000_000;
  assert.deepEqual(s.due(t + 15_999, 0, 3), [], 'still backing off');
  assert.deepEqual(s.due(t + 16_000, 5, 3), [], 'enough sessions: no dial');
  assert.deepEqual(s.due(t + 16_000, 1, 3), [entries[1]]);
  s.connected(entries[1]!);
  s.closed(entries[1]!, t + 20_000);
  assert.equal(s.nextDueAt(), t + 20_000 + BOOTSTRAP_BACKOFF.initialDelayMs, 'a success resets the backoff');
  for (let k = 0; k < 20; k++) s.failed(entries[1]!, 0);
  assert.ok(s.nextDueAt() <= BOOTSTRAP_BACKOFF.maxDelayMs);
});
