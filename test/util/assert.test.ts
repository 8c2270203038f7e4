import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeHex } from '../../src/util/assert.js';

// Short inputs take the regex path, long ones (above 256 characters) the
// decode-then-check path: both must refuse exactly the same things.
for (const bytes of [4, 32, 200, 4096]) {
  test(`decodeHex is strict at ${bytes} bytes`, () => {
    const good = Buffer.alloc(bytes, 0xab).toString('hex');
    assert.deepEqual(decodeHex(good), Buffer.alloc(bytes, 0xab));
    assert.deepEqual(decodeHex(good, bytes), Buffer.alloc(bytes, 0xab));
    assert.equal(decodeHex(good, bytes + 1), undefined);
    const at = (i: number, c: string) => good.slice(0, i) + c + good.slice(i + 1);
    for (const i of [0, good.length >> 1, good.length - 1]) {
      for (const c of ['A', 'F', 'g', 'G', ' ', '\n', 'x', '\0', '\u00e1', '\u0161', '\u0130', '\ud800', '\uff41']) {
        assert.equal(decodeHex(at(i, c)), undefined, `${JSON.stringify(c)} at ${i}`);
      }
    }
    assert.equal(decodeHex(good.slice(1)), undefined, 'odd length');
    assert.equal(decodeHex('0x' + good.slice(2)), undefined, '0x prefix');
    // "\u0161" truncated to its low byte would read as "a": must not decode.
    assert.equal(decodeHex('\u0161' + good.slice(1)), undefined);
    assert.equal(decodeHex(good.toUpperCase()), undefined);
    assert.equal(decodeHex(undefined), undefined);
    assert.equal(decodeHex(123), undefined);
  });
}
