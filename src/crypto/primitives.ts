/**
 * The cryptographic operations of the protocol, as thin wrappers: no
 * primitive is implemented here.
 *
 * - Ed25519 (RFC 8032) and X25519 (RFC 7748) come from the provider chosen
 *   in provider.ts (libsodium where it loads, else OpenSSL). The protocol's
 *   acceptance rules for Ed25519 keys and signatures (PROTOCOL.md §1.3) are
 *   checked here, before either library is asked, so both providers accept
 *   exactly the same keys and signatures: the two libraries differ on
 *   signatures whose R is a point of small order (libsodium refuses them,
 *   OpenSSL 3 accepts them when the equation holds) and on non-canonical
 *   public keys (OpenSSL imports them).
 * - HKDF-SHA256 (RFC 5869), HMAC-SHA256 (RFC 2104), SHA-256 and AES-256-GCM
 *   (NIST SP 800-38D) from node:crypto.
 * - Key handles are created once and reused by callers.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createSecretKey,
  hash,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto';
import { McpE2eError } from '../errors.js';
import { assertBytes } from '../util/assert.js';
import { curve25519, type Ed25519Signer, type Ed25519Verifier, type X25519Secret } from './provider.js';

export type { Ed25519Signer, Ed25519Verifier, X25519Secret } from './provider.js';

export const KEY_BYTES = 32;
export const SIGNATURE_BYTES = 64;
export const GCM_TAG_BYTES = 16;
export const GCM_NONCE_BYTES = 12;

/** Name of the Ed25519/X25519 implementation in use: `libsodium` or `node:crypto`. */
export const CURVE25519_PROVIDER = curve25519.name;

/**
 * Encodings of the Ed25519 points of small order (orders 1, 2, 4, 8),
 * canonical or not, compared with the sign bit (bit 255) cleared, as
 * libsodium's ge25519_has_small_order does. OpenSSL accepts these as public
 * keys, and under them signatures verify without any private key (under
 * 01 00..00, R = 01 00..00 with S = 0 verifies for every message), so a node
 * id derived from one would not belong to anyone in particular (PROTOCOL.md §2).
 */
const ED25519_SMALL_ORDER = [
  '0000000000000000000000000000000000000000000000000000000000000000', // order 4 (y = 0)
  '0100000000000000000000000000000000000000000000000000000000000000', // order 1 (identity)
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05', // order 8
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a', // order 8
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // order 2 (y = p - 1)
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // y = p, non-canonical 0
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // y = p + 1, non-canonical 1
].map((h) => Buffer.from(h, 'hex'));

/** True when the 32 bytes at `raw` encode an Ed25519 point of small order (any sign bit, canonical or not). */
export function isSmallOrderEd25519(raw: Uint8Array): boolean {
  if (raw.length !== KEY_BYTES) return false;
  for (const p of ED25519_SMALL_ORDER) {
    let diff = (raw[31]! & 0x7f) ^ p[31]!;
    for (let i = 0; i < 31 && diff === 0; i++) diff |= raw[i]! ^ p[i]!;
    if (diff === 0) return true;
  }
  return false;
}

/**
 * True when the y-coordinate encoded in `raw` (bits 0-254, little-endian) is
 * below p = 2^255 - 19, i.e. the encoding is canonical. The 19 values from p
 * to 2^255 - 1 are second encodings of y = 0..18 (libsodium's
 * ge25519_is_canonical; OpenSSL imports them).
 */
export function isCanonicalEd25519(raw: Uint8Array): boolean {
  if (raw.length !== KEY_BYTES) return false;
  if ((raw[31]! & 0x7f) !== 0x7f) return true;
  for (let i = 30; i > 0; i--) if (raw[i] !== 0xff) return true;
  return raw[0]! < 0xed;
}

/** The group order L = 2^252 + 27742317777372353535851937790883648493, 32 bytes little-endian. */
const ED25519_L = Buffer.from('edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010', 'hex');

/** True when the 32-byte little-endian scalar `s` is below L (a canonical S, RFC 8032 §5.1.7). */
export function isCanonicalScalar(s: Uint8Array): boolean {
  if (s.length !== 32) return false;
  for (let i = 31; i >= 0; i--) {
    if (s[i]! < ED25519_L[i]!) return true;
    if (s[i]! > ED25519_L[i]!) return false;
  }
  return false;
}

/**
 * Check a raw Ed25519 public key against the protocol's rule (PROTOCOL.md
 * §1.3): 32 bytes, canonical, not of small order.
 * @throws McpE2eError ERR_HANDSHAKE_BAD_KEY.
 */
export function checkEd25519PublicKey(raw: Uint8Array): void {
  if (raw.length !== KEY_BYTES) {
    throw new McpE2eError('ERR_HANDSHAKE_BAD_KEY', `ed25519 public key: expected ${KEY_BYTES} bytes, got ${raw.length}`);
  }
  if (!isCanonicalEd25519(raw)) throw new McpE2eError('ERR_HANDSHAKE_BAD_KEY', 'ed25519 public key is not canonically encoded (y >= p)');
  // Checked before import: OpenSSL accepts these keys, and signatures under them can be forged.
  if (isSmallOrderEd25519(raw)) throw new McpE2eError('ERR_HANDSHAKE_BAD_KEY', 'ed25519 public key has small order (signatures under it can be forged)');
}

/** A checked Ed25519 public key: its raw bytes and the provider's imported form. */
export interface Ed25519PublicKey {
  readonly raw: Buffer;
  readonly verifier: Ed25519Verifier;
}

/** Import a raw Ed25519 public key after `checkEd25519PublicKey`. @throws McpE2eError ERR_HANDSHAKE_BAD_KEY. */
export function importEd25519PublicKey(raw: Uint8Array): Ed25519PublicKey {
  checkEd25519PublicKey(raw);
  const own = Buffer.alloc(KEY_BYTES);
  own.set(raw);
  return Object.freeze({ raw: own, verifier: curve25519.ed25519Verifier(own) });
}

/** Recently imported Ed25519 identity keys, by raw key: peers reconnect, and an import costs time and (OpenSSL) native memory. */
const IDENTITY_KEY_CACHE_SIZE = 64;
const identityKeys = new Map<string, Ed25519PublicKey>();

/**
 * `importEd25519PublicKey(raw)` through a small cache of recent keys (the
 * imported keys are immutable, so sessions of one peer can share one). Only
 * keys that passed every check are cached.
 */
export function importIdentityKey(raw: Uint8Array): Ed25519PublicKey {
  const id = raw.length === KEY_BYTES ? Buffer.from(raw.buffer, raw.byteOffset, raw.length).toString('latin1') : undefined;
  const cached = id === undefined ? undefined : identityKeys.get(id);
  if (cached) {
    // Most recently used last.
    identityKeys.delete(id!);
    identityKeys.set(id!, cached);
    return cached;
  }
  const key = importEd25519PublicKey(raw);
  if (identityKeys.size >= IDENTITY_KEY_CACHE_SIZE) identityKeys.delete(identityKeys.keys().next().value!);
  identityKeys.set(id!, key);
  return key;
}

/** An Ed25519 private key from its 32-byte seed (RFC 8032). */
export function ed25519FromSeed(seed: Uint8Array): Ed25519Signer {
  assertBytes(seed, KEY_BYTES, 'ed25519 seed');
  return curve25519.ed25519FromSeed(seed);
}

/** A fresh Ed25519 private key from the CSPRNG. */
export function generateEd25519(): Ed25519Signer {
  const seed = randomBytes(KEY_BYTES);
  try {
    return curve25519.ed25519FromSeed(seed);
  } finally {
    seed.fill(0);
  }
}

/**
 * Verify an Ed25519 signature under the protocol's acceptance rule
 * (PROTOCOL.md §1.3), the same on both providers: 64 bytes; S below L;
 * R not of small order; then the library's RFC 8032 check (both compute
 * the cofactorless equation and compare R byte for byte).
 */
export function ed25519Verify(key: Ed25519PublicKey, message: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== SIGNATURE_BYTES) return false;
  if (!isCanonicalScalar(signature.subarray(32, 64))) return false;
  if (isSmallOrderEd25519(signature.subarray(0, 32))) return false;
  return key.verifier.verify(message, signature);
}

/** A fresh X25519 key pair (private handle with its raw public key). */
export function generateX25519(): X25519Secret {
  return curve25519.x25519Generate();
}

/** An X25519 key from a fixed 32-byte private key (test vectors only). */
export function x25519FromPrivate(raw: Uint8Array): X25519Secret {
  assertBytes(raw, KEY_BYTES, 'x25519 private key');
  return curve25519.x25519FromPrivate(raw);
}

/**
 * X25519 shared secret with a raw 32-byte peer key (any 32 bytes: RFC 7748
 * masks bit 255 and reduces non-canonical values). Both libraries refuse a
 * low-order peer key (the all-zero result of RFC 7748 §6.1); we also check
 * for zeros ourselves so the guarantee does not depend on either.
 * @throws McpE2eError ERR_HANDSHAKE_BAD_KEY (not 32 bytes), ERR_HANDSHAKE_LOW_ORDER_KEY.
 */
export function x25519(privateKey: X25519Secret, peerPublicKey: Uint8Array): Buffer {
  if (peerPublicKey.length !== KEY_BYTES) {
    throw new McpE2eError('ERR_HANDSHAKE_BAD_KEY', `x25519 public key: expected ${KEY_BYTES} bytes, got ${peerPublicKey.length}`);
  }
  const secret = privateKey.agree(peerPublicKey);
  if (secret === undefined || isAllZero(secret)) {
    secret?.fill(0);
    throw new McpE2eError('ERR_HANDSHAKE_LOW_ORDER_KEY', 'X25519 produced no shared secret (low-order peer key)');
  }
  return secret;
}

/** SHA-256 of the concatenated parts (small inputs: one concatenation, one native call, no Hash object). */
export function sha256(...parts: Uint8Array[]): Buffer {
  return hash('sha256', parts.length === 1 ? parts[0]! : Buffer.concat(parts), 'buffer');
}

export function hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Buffer {
  const h = createHmac('sha256', key);
  for (const p of parts) h.update(p);
  return h.digest();
}

/**
 * HKDF-SHA256 (RFC 5869) extract-then-expand, from OpenSSL. A hand-written
 * HKDF over HMAC measured ~11 µs faster per call (two calls per handshake
 * side), not worth writing a primitive of our own. The result has an
 * ArrayBuffer of its own (never a slice of Node's shared pool).
 */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, salt, info, length));
}

/** Constant-time equality of two byte strings (false on length mismatch). */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

export function isAllZero(bytes: Uint8Array): boolean {
  let acc = 0;
  for (const b of bytes) acc |= b;
  return acc === 0;
}

export function secureRandom(length: number): Buffer {
  return randomBytes(length);
}

/** Wrap 32 key bytes as an AES-256 KeyObject (cached by the caller per epoch). */
export function aesKey(raw: Uint8Array): KeyObject {
  assertBytes(raw, KEY_BYTES, 'AES-256 key');
  return createSecretKey(raw);
}

/**
 * AES-256-GCM encrypt of the concatenated `plaintext` parts, one `update`
 * per part: returns the ciphertext parts (same lengths, GCM is a stream
 * mode) and the 16-byte tag separately, so the caller copies them once,
 * straight into the frame it builds.
 */
export function aesGcmEncrypt(key: KeyObject, nonce: Uint8Array, aad: Uint8Array, plaintext: readonly Uint8Array[]): { ciphertext: Buffer[]; tag: Buffer } {
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: GCM_TAG_BYTES });
  cipher.setAAD(aad);
  const ciphertext = plaintext.map((p) => cipher.update(p));
  // final() returns no bytes in GCM (it only computes the tag); kept if it ever does.
  const rest = cipher.final();
  if (rest.length > 0) ciphertext.push(rest);
  return { ciphertext, tag: cipher.getAuthTag() };
}

/**
 * AES-256-GCM decrypt of ciphertext || tag. `authTagLength: 16` is pinned:
 * without it Node accepts a truncated tag. The plaintext is returned only
 * after `final()` has checked the tag; on failure nothing is released.
 */
export function aesGcmOpen(key: KeyObject, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Buffer {
  if (sealed.length < GCM_TAG_BYTES) {
    throw new McpE2eError('ERR_FRAME_DECRYPT', 'ciphertext shorter than the GCM tag');
  }
  const ctEnd = sealed.length - GCM_TAG_BYTES;
  const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: GCM_TAG_BYTES });
  decipher.setAAD(aad);
  decipher.setAuthTag(sealed.subarray(ctEnd));
  const head = decipher.update(sealed.subarray(0, ctEnd));
  try {
    const tail = decipher.final();
    return tail.length === 0 ? head : Buffer.concat([head, tail]);
  } catch (cause) {
    head.fill(0);
    throw new McpE2eError('ERR_FRAME_DECRYPT', 'authentication tag mismatch', { cause });
  }
}
