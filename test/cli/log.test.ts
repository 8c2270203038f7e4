/** The CLI logger: control characters escaped in both formats, and floods summarised. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger, summarizing } from '../../src/cli/log.js';

test('every control character (C0, DEL, C1) is escaped, in messages and fields, readable and JSON', () => {
  const lines: string[] = [];
  const evil = 'a\u001b[2Kb\rc\nd\u007fe\u009bf';
  createLogger({ write: (l) => lines.push(l) }).warn(evil, { from: evil });
  createLogger({ json: true, write: (l) => lines.push(l) }).warn(evil, { from: evil });
  for (const l of lines) assert.ok(!/[\u0000-\u001f\u007f-\u009f]/.test(l), JSON.stringify(l));
  assert.match(lines[0]!, /a\\x1b\[2Kb\\x0dc\\x0ad\\x7fe\\x9bf/);
  assert.equal(JSON.parse(lines[1]!).msg, evil, 'JSON keeps the text');
});

test('summarizing: the first lines of an interval pass, the rest become one summary line by code', async () => {
  const lines: string[] = [];
  const log = createLogger({ write: (l) => lines.push(l) });
  const refusal = summarizing(log, { burst: 3, intervalMs: 100, what: 'connections refused' });
  for (let i = 0; i < 10; i++) refusal('warn', `refused ${i}`, { code: i % 2 ? 'ERR_A' : 'ERR_B' });
  assert.equal(lines.length, 3);
  await new Promise((r) => setTimeout(r, 250));
  assert.equal(lines.length, 4);
  assert.match(lines[3]!, /7 more connections refused in the last 0\.1 s, not logged one by one: ERR_A 4, ERR_B 3/);
  // A new interval logs again.
  refusal('warn', 'refused again', {});
  assert.match(lines.at(-1)!, /refused again/);
});
