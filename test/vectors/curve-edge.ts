/**
 * Generator of curve25519-edge.json: Ed25519 keys and signatures on which
 * OpenSSL and libsodium disagree or that sit at the edge of RFC 8032, and
 * X25519 inputs that RFC 7748 says to accept, each with the outcome the
 * protocol's acceptance rule gives (PROTOCOL.md §1.3). Both providers must
 * reproduce every outcome (test/crypto/provider.test.ts, vectors.test.ts).
 *
 * Building these needs point arithmetic, which only libsodium exposes
 * (crypto_core_ed25519_add, crypto_scalarmult_ed25519_base_noclamp): the
 * file can be regenerated only where sodium-native loads. Scalars mod L are
 * plain BigInt arithmetic on public test values.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';

interface Sodium {
  crypto_sign_seed_keypair(pk: Buffer, sk: Buffer, seed: Buffer): void;
  crypto_sign_detached(sig: Buffer, m: Buffer, sk: Buffer): void;
  crypto_core_ed25519_add(r: Buffer, p: Buffer, q: Buffer): void;
  crypto_scalarmult_ed25519_base_noclamp(q: Buffer, n: Buffer): void;
  crypto_scalarmult(q: Buffer, n: Buffer, p: Buffer): void;
}

/** sodium-native, or undefined where it does not load. */
export function loadSodium(): Sodium | undefined {
  try {
    return createRequire(import.meta.url)('sodium-native') as Sodium;
  } catch {
    return undefined;
  }
}

const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const P = 2n ** 255n - 19n;
const D = (((-121665n * modpow(121666n, P - 2n, P)) % P) + P) % P;

function modpow(b: bigint, e: bigint, m: bigint): bigint {
  let r = 1n;
  b = ((b % m) + m) % m;
  for (; e > 0n; e >>= 1n, b = (b * b) % m) if (e & 1n) r = (r * b) % m;
  return r;
}
const le = (b: Uint8Array): bigint => b.reduceRight((n, byte) => (n << 8n) | BigInt(byte), 0n);
function toLe(n: bigint, len = 32): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++, n >>= 8n) b[i] = Number(n & 0xffn);
  return b;
}
const sha512 = (...parts: Buffer[]) => createHash('sha512').update(Buffer.concat(parts)).digest();
const hex = (b: Buffer) => b.toString('hex');

/** An order-8 point (libsodium's small-order list). */
const T8 = Buffer.from('26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05', 'hex');

export interface Ed25519EdgeCase {
  name: string;
  public_key: string;
  message: string;
  /** Omitted when the key itself is refused. */
  signature?: string;
  /** The key passes the rule (32 bytes, canonical, not of small order). */
  key_valid: boolean;
  /** The signature passes the rule (only for valid keys). */
  signature_valid?: boolean;
}

export interface X25519EdgeCase {
  name: string;
  private_key: string;
  public_key: string;
  shared: string;
}

/** Build every case. */
export function buildCurveEdge(na: Sodium): { ed25519: Ed25519EdgeCase[]; x25519: X25519EdgeCase[] } {
  const seed = Buffer.from('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60', 'hex'); // RFC 8032 test 1
  const pk = Buffer.alloc(32);
  const sk = Buffer.alloc(64);
  na.crypto_sign_seed_keypair(pk, sk, seed);
  const h = sha512(seed);
  const clamped = Buffer.from(h.subarray(0, 32));
  clamped[0]! &= 248;
  clamped[31]! &= 127;
  clamped[31]! |= 64;
  const a = le(clamped);
  const sign = (m: Buffer) => {
    const s = Buffer.alloc(64);
    na.crypto_sign_detached(s, m, sk);
    return s;
  };
  /** A signature by the owner of `a` under the key encoding `A`, with nonce scalar r and commitment R (given or r·B). */
  const signWith = (A: Buffer, m: Buffer, r: bigint, R?: Buffer) => {
    const Rb = R ?? Buffer.alloc(32);
    if (!R) na.crypto_scalarmult_ed25519_base_noclamp(Rb, toLe(r));
    const k = le(sha512(Rb, A, m)) % L;
    return { sig: Buffer.concat([Rb, toLe((r + k * a) % L)]), k };
  };
  const out: Ed25519EdgeCase[] = [];
  const add = (c: Ed25519EdgeCase) => out.push(c);
  const msg = Buffer.from('mcp-e2e edge case');

  const honest = sign(msg);
  add({ name: 'honest signature (RFC 8032 test 1 key)', public_key: hex(pk), message: hex(msg), signature: hex(honest), key_valid: true, signature_valid: true });
  const flipR = Buffer.from(honest);
  flipR[3]! ^= 0x10;
  add({ name: 'a bit of R flipped', public_key: hex(pk), message: hex(msg), signature: hex(flipR), key_valid: true, signature_valid: false });
  const signR = Buffer.from(honest);
  signR[31]! ^= 0x80;
  add({ name: 'sign bit of R flipped (R negated)', public_key: hex(pk), message: hex(msg), signature: hex(signR), key_valid: true, signature_valid: false });
  add({
    name: 'S + L (non-canonical S, same value mod L)',
    public_key: hex(pk), message: hex(msg),
    signature: hex(Buffer.concat([honest.subarray(0, 32), toLe(le(honest.subarray(32)) + L)])),
    key_valid: true, signature_valid: false,
  });
  const highS = Buffer.from(honest);
  highS[63]! |= 0xe0;
  add({ name: 'S with its top three bits set (S >= 2^253)', public_key: hex(pk), message: hex(msg), signature: hex(highS), key_valid: true, signature_valid: false });
  // R = the identity point and S = k·a: [S]B - [k]A = identity = R, so the equation holds.
  {
    const R = Buffer.alloc(32);
    R[0] = 1;
    const k = le(sha512(R, pk, msg)) % L;
    add({
      name: 'R = identity (small order), S = k·a: the equation holds; refused for R of small order',
      public_key: hex(pk), message: hex(msg), signature: hex(Buffer.concat([R, toLe((k * a) % L)])),
      key_valid: true, signature_valid: false,
    });
  }
  // A key with a torsion component: A' = A + T8 (not small order, not in the prime-order subgroup).
  const mixed = Buffer.alloc(32);
  na.crypto_core_ed25519_add(mixed, pk, T8);
  {
    // [S]B - [k]A' = R - [k]T8, which is R exactly when k = 0 mod 8.
    let accepted: Buffer | undefined;
    let refused: Buffer | undefined;
    let m = Buffer.alloc(0);
    for (let i = 0; !(accepted && refused); i++) {
      m = Buffer.from(`torsion ${i}`);
      const { sig, k } = signWith(mixed, m, le(sha512(Buffer.from('nonce'), m)) % L);
      if (k % 8n === 0n && !accepted) accepted = Buffer.concat([m, sig]);
      if (k % 8n !== 0n && !refused) refused = Buffer.concat([m, sig]);
    }
    const split = (b: Buffer) => ({ message: hex(b.subarray(0, b.length - 64)), signature: hex(b.subarray(b.length - 64)) });
    add({ name: 'key with a torsion component (A + T8), k = 0 mod 8: the equation holds', public_key: hex(mixed), ...split(accepted), key_valid: true, signature_valid: true });
    add({ name: 'key with a torsion component (A + T8), k != 0 mod 8', public_key: hex(mixed), ...split(refused), key_valid: true, signature_valid: false });
  }
  // Under the mixed key, a small-order R can satisfy the equation: R = -[k]T8 with S = k·a.
  {
    for (let i = 0; ; i++) {
      const m = Buffer.from(`small R ${i}`);
      const R = Buffer.from(T8);
      const k = le(sha512(R, mixed, m)) % L;
      // -[k]T8 = T8 when k = 7 mod 8 (T8 has order 8).
      if (k % 8n !== 7n) continue;
      add({
        name: 'R of order 8 under a key with a torsion component, S = k·a: the equation holds; refused for R of small order',
        public_key: hex(mixed), message: hex(m), signature: hex(Buffer.concat([R, toLe((k * a) % L)])),
        key_valid: true, signature_valid: false,
      });
      break;
    }
  }
  // Non-canonical keys: y + p for small y on the curve (y = 0 and 1 are in the small-order list).
  for (let y = 2n, n = 0; y < 19n && n < 2; y++) {
    const x2 = (((y * y - 1n) * modpow(D * y * y + 1n, P - 2n, P)) % P + P) % P;
    if (modpow(x2, (P - 1n) / 2n, P) !== 1n) continue;
    add({ name: `non-canonical key encoding (y = ${y} + p)`, public_key: hex(toLe(y + P)), message: hex(msg), key_valid: false });
    n++;
  }
  // A canonical encoding that is not a curve point: valid by the key rule, no signature verifies.
  for (let y = 2n; ; y++) {
    const x2 = (((y * y - 1n) * modpow(D * y * y + 1n, P - 2n, P)) % P + P) % P;
    if (modpow(x2, (P - 1n) / 2n, P) === 1n) continue;
    add({ name: `key that is not a curve point (y = ${y})`, public_key: hex(toLe(y)), message: hex(msg), signature: hex(honest), key_valid: true, signature_valid: false });
    break;
  }
  add({ name: 'key with the sign bit flipped (-A)', public_key: hex(Buffer.concat([pk.subarray(0, 31), Buffer.of(pk[31]! ^ 0x80)])), message: hex(msg), signature: hex(honest), key_valid: true, signature_valid: false });

  // X25519: RFC 7748 §5 masks bit 255 and reduces non-canonical u.
  const scalar = Buffer.from('a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4', 'hex'); // RFC 7748 §5.2
  const nine = toLe(9n);
  const x = (u: Buffer) => {
    const q = Buffer.alloc(32);
    na.crypto_scalarmult(q, scalar, u);
    return hex(q);
  };
  const x25519: X25519EdgeCase[] = [
    { name: 'u = 9 (the base point)', private_key: hex(scalar), public_key: hex(nine), shared: x(nine) },
    { name: 'u = 9 + p (non-canonical, reduced to 9)', private_key: hex(scalar), public_key: hex(toLe(9n + P)), shared: x(nine) },
    { name: 'u = 9 with bit 255 set (masked)', private_key: hex(scalar), public_key: hex(toLe(9n + 2n ** 255n)), shared: x(nine) },
  ];
  return { ed25519: out, x25519 };
}
