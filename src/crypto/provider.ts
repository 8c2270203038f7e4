/**
 * The one place that chooses who computes Ed25519 (RFC 8032) and X25519
 * (RFC 7748): libsodium through `sodium-native` where it loads, OpenSSL
 * through node:crypto otherwise. Both are reference-quality implementations
 * of these curves; libsodium is about twice as fast here (Ed25519 sign
 * 18.7 µs against 37, verify 51 against 109, X25519 key generation 21
 * against 56; shared/PERF-NOTES.md). Nothing here checks keys or signatures
 * against the protocol's rules: primitives.ts does that, identically for
 * both providers, before calling into one (PROTOCOL.md §1.2).
 *
 * `MCP_E2E_CRYPTO=node` forces node:crypto, `MCP_E2E_CRYPTO=sodium`
 * requires libsodium (loading fails loudly if it is missing); unset, the
 * faster one that loads is used. The suite runs the vectors, handshake and
 * session tests under both (`npm test`).
 *
 * AES-256-GCM, SHA-256, HMAC and HKDF always come from node:crypto:
 * libsodium's binding does not expose AES-256-GCM, and OpenSSL's are fast.
 */
import { createRequire } from 'node:module';
import {
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  randomFillSync,
  sign,
  verify,
  type JsonWebKey,
  type KeyObject,
} from 'node:crypto';

/** A private Ed25519 key. */
export interface Ed25519Signer {
  /** The raw 32-byte public key (RFC 8032 encoding). */
  readonly publicKey: Buffer;
  /** The 64-byte RFC 8032 signature of `message` (deterministic). */
  sign(message: Uint8Array): Buffer;
  /** A copy of the 32-byte seed (for the key file). The caller wipes it. */
  seed(): Buffer;
}

/** A public Ed25519 key, imported once. Callers check it first (primitives.ts). */
export interface Ed25519Verifier {
  /** RFC 8032 §5.1.7 verification by the library, no extra checks. */
  verify(message: Uint8Array, signature: Uint8Array): boolean;
}

/** An X25519 private key with its public half. */
export interface X25519Secret {
  /** The raw 32-byte public key. */
  readonly publicKey: Buffer;
  /** X25519 with `peer` (32 raw bytes); undefined when the library refuses (a low-order peer key). */
  agree(peer: Uint8Array): Buffer | undefined;
  /** Erase the private key where the provider holds its bytes. Idempotent. */
  dispose(): void;
}

export interface Curve25519Provider {
  /** `libsodium` or `node:crypto`. */
  readonly name: 'libsodium' | 'node:crypto';
  ed25519FromSeed(seed: Uint8Array): Ed25519Signer;
  /** Import a raw 32-byte public key (which the caller has checked). */
  ed25519Verifier(publicKey: Uint8Array): Ed25519Verifier;
  x25519Generate(): X25519Secret;
  /** From a fixed 32-byte private key (test vectors). */
  x25519FromPrivate(privateKey: Uint8Array): X25519Secret;
}

// ------------------------------------------------------------------ node:crypto

const PKCS8_PREFIX = {
  // SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING (32) } }
  ed25519: Buffer.from('302e020100300506032b657004220420', 'hex'),
  // Same, OID 1.3.101.110
  x25519: Buffer.from('302e020100300506032b656e04220420', 'hex'),
};

/** Import a raw private key through a fixed PKCS#8 prefix (Node 20 has no 'raw' import). */
function importPkcs8(curve: 'ed25519' | 'x25519', raw: Uint8Array): KeyObject {
  const der = Buffer.concat([PKCS8_PREFIX[curve], raw]);
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } finally {
    der.fill(0);
  }
}

/** The raw public key of an OKP KeyObject: JWK, not SPKI DER (OpenSSL 3.0's DER encoder costs ~100 µs, JWK ~5). */
function jwkX(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return Buffer.from(pub.export({ format: 'jwk' }).x as string, 'base64url');
}

/** generateKeyPairSync with a JWK public key (that overload is missing from the Node 20 typings). */
const generateJwkPair = generateKeyPairSync as unknown as (type: 'x25519', options: { publicKeyEncoding: { format: 'jwk' } }) => { publicKey: JsonWebKey; privateKey: KeyObject };

class NodeSigner implements Ed25519Signer {
  readonly publicKey: Buffer;
  readonly #key: KeyObject;
  constructor(key: KeyObject) {
    this.#key = key;
    this.publicKey = jwkX(key);
  }
  sign(message: Uint8Array): Buffer {
    return sign(null, message, this.#key);
  }
  seed(): Buffer {
    return Buffer.from(this.#key.export({ format: 'jwk' }).d as string, 'base64url');
  }
}

class NodeX25519 implements X25519Secret {
  readonly publicKey: Buffer;
  #key: KeyObject | undefined;
  constructor(key: KeyObject, publicKey: Buffer) {
    this.#key = key;
    this.publicKey = publicKey;
  }
  agree(peer: Uint8Array): Buffer | undefined {
    if (!this.#key) throw new Error('X25519 key already disposed');
    const peerKey = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(peer).toString('base64url') }, format: 'jwk' });
    try {
      return diffieHellman({ privateKey: this.#key, publicKey: peerKey });
    } catch {
      // OpenSSL refuses a low-order peer key by throwing (ERR_OSSL_FAILED_DURING_DERIVATION).
      return undefined;
    }
  }
  dispose(): void {
    // A KeyObject's bytes live in OpenSSL; dropping the last reference is all node:crypto allows.
    this.#key = undefined;
  }
}

const nodeProvider: Curve25519Provider = {
  name: 'node:crypto',
  ed25519FromSeed: (seed) => new NodeSigner(importPkcs8('ed25519', seed)),
  ed25519Verifier: (publicKey) => {
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') }, format: 'jwk' });
    return { verify: (message, signature) => verify(null, message, key, signature) };
  },
  x25519Generate: () => {
    // Never export a generated KeyObject: on Node 20 a GC during the export can
    // destroy the key's KeyGenJob, which waits on the mutex the export holds, and
    // the process hangs (seen after ~20,000 rounds). The generation encodes the
    // public half as JWK itself; the private key is only used, never exported.
    const { privateKey, publicKey } = generateJwkPair('x25519', { publicKeyEncoding: { format: 'jwk' } });
    return new NodeX25519(privateKey, Buffer.from(publicKey.x!, 'base64url'));
  },
  x25519FromPrivate: (raw) => {
    const key = importPkcs8('x25519', raw);
    return new NodeX25519(key, jwkX(key));
  },
};

// --------------------------------------------------------------------- libsodium

/** The part of sodium-native's API used here (it ships no type declarations). */
interface SodiumNative {
  sodium_malloc(size: number): Buffer;
  sodium_memzero(buf: Uint8Array): void;
  crypto_sign_seed_keypair(pk: Uint8Array, sk: Uint8Array, seed: Uint8Array): void;
  crypto_sign_detached(sig: Uint8Array, m: Uint8Array, sk: Uint8Array): void;
  crypto_sign_verify_detached(sig: Uint8Array, m: Uint8Array, pk: Uint8Array): boolean;
  crypto_scalarmult_base(q: Uint8Array, n: Uint8Array): void;
  crypto_scalarmult(q: Uint8Array, n: Uint8Array, p: Uint8Array): void;
}

/** Identity keys held in libsodium's guarded memory, at most (see SodiumSigner). */
export const MAX_GUARDED_KEYS = 1024;

/** A Buffer of `n` bytes with an ArrayBuffer of its own (never a slice of Node's shared pool). */
const own = (n: number) => Buffer.alloc(n);

function sodiumProvider(na: SodiumNative): Curve25519Provider {
  let guarded = 0;
  class SodiumSigner implements Ed25519Signer {
    readonly publicKey = own(32);
    // seed || public key, in libsodium's guarded, locked memory: identity keys live for the process.
    // Each guarded key takes its own pages and mappings, and a process may hold 65,530 mappings
    // (vm.max_map_count): some 15,000 live keys ended the process (std::bad_alloc, no exception
    // to catch). Past MAX_GUARDED_KEYS (tests, simulators making thousands of identities) keys
    // go into ordinary memory.
    readonly #secret = guarded++ < MAX_GUARDED_KEYS ? na.sodium_malloc(64) : own(64);
    constructor(seed: Uint8Array) {
      na.crypto_sign_seed_keypair(this.publicKey, this.#secret, seed);
    }
    sign(message: Uint8Array): Buffer {
      const sig = Buffer.allocUnsafe(64);
      na.crypto_sign_detached(sig, message, this.#secret);
      return sig;
    }
    seed(): Buffer {
      return Buffer.from(this.#secret.subarray(0, 32));
    }
  }
  class SodiumX25519 implements X25519Secret {
    readonly publicKey = own(32);
    // Plain memory, not sodium_malloc: an ephemeral key lives for one handshake,
    // and sodium_malloc costs an mmap with guard pages per call. Erased on dispose().
    readonly #secret: Buffer;
    #disposed = false;
    constructor(secret: Buffer) {
      this.#secret = secret;
      na.crypto_scalarmult_base(this.publicKey, secret);
    }
    agree(peer: Uint8Array): Buffer | undefined {
      if (this.#disposed) throw new Error('X25519 key already disposed');
      const out = own(32);
      try {
        // libsodium refuses the small-order u-coordinates (result all zero) with -1: an exception here.
        na.crypto_scalarmult(out, this.#secret, peer);
      } catch {
        return undefined;
      }
      return out;
    }
    dispose(): void {
      this.#disposed = true;
      na.sodium_memzero(this.#secret);
    }
  }
  return {
    name: 'libsodium',
    ed25519FromSeed: (seed) => new SodiumSigner(seed),
    ed25519Verifier: (publicKey) => {
      const pk = own(32);
      pk.set(publicKey);
      return { verify: (message, signature) => na.crypto_sign_verify_detached(signature, message, pk) };
    },
    x25519Generate: () => new SodiumX25519(randomFillSync(own(32))),
    x25519FromPrivate: (raw) => {
      const secret = own(32);
      secret.set(raw);
      return new SodiumX25519(secret);
    },
  };
}

/** Environment variable that forces a provider: `node` or `sodium`. */
export const CRYPTO_PROVIDER_ENV = 'MCP_E2E_CRYPTO';

function loadSodium(): SodiumNative {
  return createRequire(import.meta.url)('sodium-native') as SodiumNative;
}

function choose(): Curve25519Provider {
  const wanted = process.env[CRYPTO_PROVIDER_ENV];
  if (wanted === 'node') return nodeProvider;
  if (wanted === 'sodium') return sodiumProvider(loadSodium());
  if (wanted !== undefined && wanted !== '') {
    throw new Error(`${CRYPTO_PROVIDER_ENV} must be "node" or "sodium", got ${JSON.stringify(wanted.slice(0, 32))}`);
  }
  try {
    return sodiumProvider(loadSodium());
  } catch {
    // sodium-native is optional: no prebuilt binary for this platform, or not installed.
    return nodeProvider;
  }
}

/** The provider of this process, chosen once at load. */
export const curve25519: Curve25519Provider = choose();

/** Both providers that can load here (for tests comparing them), node:crypto first. */
export function availableProviders(): Curve25519Provider[] {
  const list = [nodeProvider];
  try {
    list.push(curve25519.name === 'libsodium' ? curve25519 : sodiumProvider(loadSodium()));
  } catch {
    // not installed
  }
  return list;
}
