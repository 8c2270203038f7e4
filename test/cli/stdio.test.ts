/**
 * The stdio framing's line limit (src/cli/stdio.ts): a line longer than the
 * limit, in bytes of UTF-8, is dropped and reported whether its end comes in
 * the same chunk, a later one, or is still to come; shorter lines pass.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LineSplitter } from '../../src/cli/stdio.js';

function split(chunks: string[], limit = 10) {
  const lines: string[] = [];
  const oversize: number[] = [];
  const s = new LineSplitter(limit, (l) => lines.push(l), (b) => oversize.push(b));
  for (const c of chunks) s.push(Buffer.from(c, 'utf8'));
  return { lines, oversize };
}

test('a line over the limit is dropped and reported, however it is cut into chunks; lines within it pass', () => {
  assert.deepEqual(split(['0123456789\n']), { lines: ['0123456789'], oversize: [] });
  assert.deepEqual(split(['0123456789a\nok\n']), { lines: ['ok'], oversize: [11] });
  // Its end in the chunk after: the part before was within the limit.
  assert.deepEqual(split(['01234567', '89abc\nok\n']), { lines: ['ok'], oversize: [13] });
  // Still open at the end of a chunk: dropped up to its newline.
  assert.deepEqual(split(['0123456789abcdef', 'ghi\nok\n']), { lines: ['ok'], oversize: [16] });
  // Bytes, not characters: six é are 12 bytes.
  assert.deepEqual(split(['éééééé\nok\n']), { lines: ['ok'], oversize: [12] });
  assert.deepEqual(split(['ééééé\n']), { lines: ['ééééé'], oversize: [] });
});
