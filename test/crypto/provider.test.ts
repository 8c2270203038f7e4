/**
 * The two Curve25519 providers (libsodium and node:crypto) give the same
 * results: the same public keys and signatures from a seed, the same X25519
 * outputs, and through the protocol's acceptance rule the same verdict on
 * every edge case of test/vectors/curve25519-edge.json. The provider in use
 * is the one asked for (MCP_E2E_CRYPTO), so `npm test` cannot silently run
 * one path twice.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { availableProviders, curve25519, CRYPTO_PROVIDER_ENV, type Curve25519Provider } from '../../src/crypto/provider.js';
import * as prim from '../../src/crypto/primitives.js';
import { McpE2eError } from '../../src/errors.js';
import { loadSodium } from '../vectors/curve-edge.js';

const readVector = (name: string): any => JSON.parse(readFileSync(new URL(`../../../test/vectors/${name}`, import.meta.url), 'utf8'));
const hx = (s: string) => Buffer.from(s, 'hex');
const providers = availableProviders();
const rfc = readVector('rfc.json');
const edge = readVector('curve25519-edge.json');

/** A public key of `provider`, checked by the rule, for prim.ed25519Verify. */
function keyOf(provider: Curve25519Provider, raw: Buffer): prim.Ed25519PublicKey {
  prim.checkEd25519PublicKey(raw);
  return { raw, verifier: provider.ed25519Verifier(raw) };
}

test('the provider in use is the one asked for', () => {
  const wanted = process.env[CRYPTO_PROVIDER_ENV];
  if (wanted === 'node') assert.equal(curve25519.name, 'node:crypto');
  else if (wanted === 'sodium' || loadSodium()) assert.equal(curve25519.name, 'libsodium');
  else assert.equal(curve25519.name, 'node:crypto');
  assert.equal(prim.CURVE25519_PROVIDER, curve25519.name);
  process.stdout.write(`# curve25519 provider: ${curve25519.name}; available: ${providers.map((p) => p.name).join(', ')}\n`);
});

test('sodium-native loads here (it is an optional dependency; CI must exercise both paths)', () => {
  assert.deepEqual(providers.map((p) => p.name), ['node:crypto', 'libsodium']);
});

for (const provider of providers) {
  test(`${provider.name}: RFC 8032 §7.1 and RFC 7748 §5.2, §6.1 vectors`, () => {
    for (const t of rfc.ed25519.tests) {
      const s = provider.ed25519FromSeed(hx(t.secret_key));
      assert.equal(s.publicKey.toString('hex'), t.public_key);
      assert.equal(s.sign(hx(t.message)).toString('hex'), t.signature);
      assert.equal(s.seed().toString('hex'), t.secret_key);
      assert.ok(prim.ed25519Verify(keyOf(provider, hx(t.public_key)), hx(t.message), hx(t.signature)));
    }
    for (const t of rfc.x25519.function) {
      assert.equal(prim.x25519(provider.x25519FromPrivate(hx(t.scalar)), hx(t.u)).toString('hex'), t.output);
    }
    const d = rfc.x25519.diffie_hellman;
    const alice = provider.x25519FromPrivate(hx(d.alice_private));
    assert.equal(alice.publicKey.toString('hex'), d.alice_public);
    assert.equal(prim.x25519(alice, hx(d.bob_public)).toString('hex'), d.shared);
  });

  test(`${provider.name}: every low-order u-coordinate is refused (ERR_HANDSHAKE_LOW_ORDER_KEY), and a disposed key is unusable`, () => {
    for (const u of rfc.x25519.low_order.u) {
      const k = provider.x25519FromPrivate(hx(rfc.x25519.diffie_hellman.alice_private));
      assert.throws(() => prim.x25519(k, hx(u)), (e: unknown) => e instanceof McpE2eError && e.code === 'ERR_HANDSHAKE_LOW_ORDER_KEY', u);
    }
    const k = provider.x25519Generate();
    k.dispose();
    assert.throws(() => k.agree(hx(rfc.x25519.diffie_hellman.bob_public)));
  });

  test(`${provider.name}: every case of curve25519-edge.json gives the outcome of the acceptance rule`, () => {
    for (const c of edge.ed25519) {
      if (!c.key_valid) {
        assert.throws(() => keyOf(provider, hx(c.public_key)), (e: unknown) => e instanceof McpE2eError && e.code === 'ERR_HANDSHAKE_BAD_KEY', c.name);
        continue;
      }
      assert.equal(prim.ed25519Verify(keyOf(provider, hx(c.public_key)), hx(c.message), hx(c.signature)), c.signature_valid, c.name);
    }
    for (const c of edge.x25519) {
      assert.equal(prim.x25519(provider.x25519FromPrivate(hx(c.private_key)), hx(c.public_key)).toString('hex'), c.shared, c.name);
    }
  });
}

test('the two providers agree on random keys: public keys, signatures, cross verification, X25519 both ways', { skip: providers.length < 2 }, () => {
  const [a, b] = providers as [Curve25519Provider, Curve25519Provider];
  for (let i = 0; i < 64; i++) {
    const seed = randomBytes(32);
    const msg = randomBytes(i * 7);
    const sa = a.ed25519FromSeed(seed);
    const sb = b.ed25519FromSeed(seed);
    assert.ok(sa.publicKey.equals(sb.publicKey));
    const sig = sa.sign(msg);
    assert.ok(sig.equals(sb.sign(msg)), 'RFC 8032 signatures are deterministic');
    assert.ok(prim.ed25519Verify(keyOf(b, sa.publicKey), msg, sig));
    assert.ok(prim.ed25519Verify(keyOf(a, sb.publicKey), msg, sig));
    const xa = a.x25519Generate();
    const xb = b.x25519Generate();
    assert.ok(prim.x25519(xa, xb.publicKey).equals(prim.x25519(xb, xa.publicKey)));
    const fixed = randomBytes(32);
    assert.ok(a.x25519FromPrivate(fixed).publicKey.equals(b.x25519FromPrivate(fixed).publicKey));
  }
});

test('why the rule checks before the libraries: what each says alone on the edge cases (diagnostic)', () => {
  const lines: string[] = [];
  for (const c of edge.ed25519) {
    if (!c.signature) continue;
    const verdicts = providers.map((p) => `${p.name}=${p.ed25519Verifier(hx(c.public_key)).verify(hx(c.message), hx(c.signature))}`);
    lines.push(`# ${c.name}: rule=${c.key_valid ? c.signature_valid : 'bad key'}; alone: ${verdicts.join(' ')}`);
  }
  process.stdout.write(lines.join('\n') + '\n');
});

test('a process can hold 20,000 identities: guarded memory is kept for the first keys only (each takes its own mappings; ~15,000 aborted the process)', { timeout: 120_000 }, () => {
  const identityModule = new URL('../../src/identity/identity.js', import.meta.url).href;
  const script = `const { NodeIdentity } = await import(${JSON.stringify(identityModule)});
const keep = [];
for (let i = 0; i < 20000; i++) keep.push(NodeIdentity.generate());
const signed = keep.at(-1).sign(new Uint8Array(Buffer.from('mcp-e2e/2 record signature\\0')), Buffer.from('x'));
process.stdout.write(String(keep.length) + ' ' + signed.length);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 110_000 });
  assert.equal(r.status, 0, `exit ${r.status} ${r.signal ?? ''}: ${r.stderr.slice(-300)}`);
  assert.equal(r.stdout, '20000 64');
});
