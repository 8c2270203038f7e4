/**
 * Thin wrappers over node:crypto (OpenSSL). No primitive is implemented here.
 *
 * - Ed25519 (RFC 8032), X25519 (RFC 7748), HKDF-SHA256 (RFC 5869),
 *   HMAC-SHA256 (RFC 2104), SHA-256, AES-256-GCM (NIST SP 800-38D).
 * - Raw public keys are imported through JWK (fast, ~6 µs); raw private keys
 *   through a fixed PKCS#8 prefix (Node 20 has no 'raw' import and its JWK
 *   import of an OKP private key demands the public half too).
 * - KeyObjects are created once and reused by callers.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  diffieHellman,
  generateKeyPairSync,
  hash,
  hkdfSync,
  randomBytes,
  sign,
  timingSafeEqual,
  verify,
  type JsonWebKey,
  type KeyObject,
} from 'node:crypto';
import { McpE2eError } from '../errors.js';
import { assertBytes } from '../util/assert.js';

export const KEY_BYTES = 32;
export const SIGNATURE_BYTES = 64;
export const GCM_TAG_BYTES = 16;
export const GCM_NONCE_BYTES = 12;

const PKCS8_PREFIX = {
  // SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING (32) } }
  ed25519: Buffer.from('302e020100300506032b657004220420', 'hex'),
  // Same, OID 1.3.101.110
  x25519: Buffer.from('302e020100300506032b656e04220420', 'hex'),
};

type OkpCurve = 'ed25519' | 'x25519';
const JWK_CRV: Record<OkpCurve, string> = { ed25519: 'Ed25519', x25519: 'X25519' };

/** Import a 32-byte raw private key (Ed25519 seed or X25519 scalar). */
export function importPrivateKey(curve: OkpCurve, raw: Uint8Array): KeyObject {
  assertBytes(raw, KEY_BYTES, `${curve} private key`);
  const der = Buffer.concat([PKCS8_PREFIX[curve], raw]);
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } finally {
    der.fill(0);
  }
}

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

/** True when `raw` encodes an Ed25519 point of small order (any sign bit, canonical or not). */
export function isSmallOrderEd25519(raw: Uint8Array): boolean {
  if (raw.length !== KEY_BYTES) return false;
  const masked = Buffer.from(raw);
  masked[31]! &= 0x7f;
  return ED25519_SMALL_ORDER.some((p) => p.equals(masked));
}

/**
 * Import a 32-byte raw public key via JWK. Throws McpE2eError
 * ERR_HANDSHAKE_BAD_KEY on a bad length or encoding, and for an Ed25519 key
 * of small order (see `isSmallOrderEd25519`).
 */
export function importPublicKey(curve: OkpCurve, raw: Uint8Array): KeyObject {
  if (raw.length !== KEY_BYTES) {
    throw new McpE2eError('ERR_HANDSHAKE_BAD_KEY', `${curve} public key: expected ${KEY_BYTES} bytes, got ${raw.length}`);
  }
  // Checked before import: OpenSSL accepts these keys, and signatures under them can be forged.
  if (curve === 'ed25519' && isSmallOrderEd25519(raw)) {
    throw new McpE2eError('ERR_HANDSHAKE_BAD_KEY', 'ed25519 public key has small order (signatures under it can be forged)');
  }
  try {
    return createPublicKey({ key: { kty: 'OKP', crv: JWK_CRV[curve], x: Buffer.from(raw).toString('base64url') }, format: 'jwk' });
  } catch (cause) {
    throw new McpE2eError('ERR_HANDSHAKE_BAD_KEY', `${curve} public key rejected by OpenSSL`, { cause });
  }
}

/** Recently imported Ed25519 identity keys, by raw key: peers reconnect, and a KeyObject costs an import and native memory. */
const IDENTITY_KEY_CACHE_SIZE = 64;
const identityKeys = new Map<string, KeyObject>();

/**
 * `importPublicKey('ed25519', raw)` through a small cache of recent keys
 * (KeyObjects are immutable, so sessions of one peer can share one). Only
 * keys that passed every check are cached.
 */
export function importIdentityKey(raw: Uint8Array): KeyObject {
  const id = raw.length === KEY_BYTES ? Buffer.from(raw.buffer, raw.byteOffset, raw.length).toString('latin1') : undefined;
  const cached = id === undefined ? undefined : identityKeys.get(id);
  if (cached) {
    // Most recently used last.
    identityKeys.delete(id!);
    identityKeys.set(id!, cached);
    return cached;
  }
  const key = importPublicKey('ed25519', raw);
  if (identityKeys.size >= IDENTITY_KEY_CACHE_SIZE) identityKeys.delete(identityKeys.keys().next().value!);
  identityKeys.set(id!, key);
  return key;
}

/** The raw 32-byte public key of an OKP public or private KeyObject. */
export function rawPublicKey(key: KeyObject): Buffer {
  // JWK, not SPKI DER: OpenSSL 3.0's DER encoder costs ~100 µs, the JWK export ~5.
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  const x = pub.export({ format: 'jwk' }).x;
  if (typeof x !== 'string') throw new Error('not an OKP key');
  return Buffer.from(x, 'base64url');
}

/** The raw 32-byte private key of an OKP private KeyObject. Callers must wipe it. */
export function rawPrivateKey(key: KeyObject): Buffer {
  const d = key.export({ format: 'jwk' }).d;
  if (typeof d !== 'string') throw new Error('not an OKP private key');
  return Buffer.from(d, 'base64url');
}

// Node 20 deadlock: the KeyGenJob behind a generated KeyObject takes that
// key's mutex when it is garbage-collected, and a JWK export of the key holds
// the same mutex while it allocates. A GC during that export (seen here after
// some 30,000 generate-then-export rounds) blocks the process forever. So a
// generated KeyObject is never exported: the job encodes what we need itself.

/** generateKeyPairSync with JWK encodings (missing from the Node 20 typings). */
const generateJwk = generateKeyPairSync as unknown as <P, K>(type: 'x25519' | 'ed25519', options: object) => { publicKey: P; privateKey: K };

/** A fresh X25519 key pair; the public half as 32 raw bytes (encoded by the generation, see above). */
export function generateX25519(): { privateKey: KeyObject; publicKey: Buffer } {
  const { privateKey, publicKey } = generateJwk<JsonWebKey, KeyObject>('x25519', { publicKeyEncoding: { format: 'jwk' } });
  return { privateKey, publicKey: Buffer.from(publicKey.x!, 'base64url') };
}

/** A fresh Ed25519 private key, imported from the generation's JWK (so exporting it later is safe, see above). */
export function generateEd25519(): { privateKey: KeyObject } {
  const { privateKey } = generateJwk<JsonWebKey, JsonWebKey>('ed25519', { publicKeyEncoding: { format: 'jwk' }, privateKeyEncoding: { format: 'jwk' } });
  return { privateKey: createPrivateKey({ key: privateKey, format: 'jwk' }) };
}

/**
 * X25519 shared secret. OpenSSL refuses a low-order peer key (the all-zero
 * result of RFC 7748 §6.1) by throwing; we also check for zeros ourselves so
 * the guarantee does not depend on the OpenSSL version.
 */
export function x25519(privateKey: KeyObject, peerPublicKey: KeyObject): Buffer {
  let secret: Buffer;
  try {
    secret = diffieHellman({ privateKey, publicKey: peerPublicKey });
  } catch (cause) {
    throw new McpE2eError('ERR_HANDSHAKE_LOW_ORDER_KEY', 'X25519 produced no shared secret (low-order peer key)', { cause });
  }
  if (isAllZero(secret)) {
    throw new McpE2eError('ERR_HANDSHAKE_LOW_ORDER_KEY', 'X25519 shared secret is all zeros (low-order peer key)');
  }
  return secret;
}

export function ed25519Sign(privateKey: KeyObject, message: Uint8Array): Buffer {
  return sign(null, message, privateKey);
}

export function ed25519Verify(publicKey: KeyObject, message: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== SIGNATURE_BYTES) return false;
  return verify(null, message, publicKey, signature);
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
