import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { EPHEMERAL_POOL_SIZE, takeEphemeralPair } from '../../src/handshake/ephemeral.js';
import { x25519, x25519FromPrivate } from '../../src/crypto/primitives.js';

/** A fixed peer: both ends of an exchange with it agree only if the pair's halves belong together. */
const peer = x25519FromPrivate(Buffer.alloc(32, 9));

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

test('every ephemeral pair is handed out once: fresh keys across refills and bursts', async () => {
  const seen = new Set<string>();
  for (let round = 0; round < 4; round++) {
    // A burst larger than the pool (some generated on the spot), then time to refill.
    for (let i = 0; i < EPHEMERAL_POOL_SIZE * 3; i++) {
      const pair = takeEphemeralPair();
      const pub = pair.publicKey.toString('hex');
      assert.equal(pair.publicKey.length, 32);
      assert.ok(!seen.has(pub), 'a pair was handed out twice');
      seen.add(pub);
      // The raw public key belongs to the private key: X25519 with a fixed peer agrees both ways.
      assert.ok(x25519(pair, peer.publicKey).equals(x25519(peer, pair.publicKey)));
    }
    for (let i = 0; i < EPHEMERAL_POOL_SIZE + 2; i++) await tick();
  }
  assert.equal(seen.size, 4 * EPHEMERAL_POOL_SIZE * 3);
});

test('taking a pair leaves nothing that holds the process open', () => {
  const url = new URL('../../src/handshake/ephemeral.js', import.meta.url).href;
  const started = Date.now();
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', `const m = await import(${JSON.stringify(url)}); m.takeEphemeralPair();`], { timeout: 10_000 });
  assert.equal(r.status, 0, String(r.stderr));
  assert.ok(Date.now() - started < 5_000);
});

