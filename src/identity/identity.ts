/**
 * Node identities: an Ed25519 key pair (RFC 8032) and a self-certifying node
 * id, `node_id = lowercase hex(SHA-256(raw 32-byte public key))` (PROTOCOL.md §2).
 * Anyone holding the public key can check a node id; nobody can choose one.
 */
import { existsSync } from 'node:fs';
import { inspect } from 'node:util';
import { McpE2eError } from '../errors.js';
import { decodeHex, hasExactKeys } from '../util/assert.js';
import { readPrivateFile, writeFileAtomic } from '../util/files.js';
import {
  ed25519FromSeed,
  generateEd25519,
  importEd25519PublicKey,
  sha256,
  type Ed25519PublicKey,
  type Ed25519Signer,
} from '../crypto/primitives.js';
import { SIGNATURE_LABELS } from '../protocol.js';

/** Length of a node id in hex characters (SHA-256, 32 bytes). */
export const NODE_ID_HEX_LENGTH = 64;
const FINGERPRINT_HEX_CHARS = 20;
const KEY_FILE_TYPE = 'mcp-e2e-identity';
const KEY_FILE_VERSION = 1;
const MAX_KEY_FILE_BYTES = 4096;

/** The node id of a raw Ed25519 public key. */
export function nodeIdFromPublicKey(publicKey: Uint8Array): string {
  return sha256(publicKey).toString('hex');
}

/**
 * The short human fingerprint of a node id: its first 80 bits as five
 * groups of four hex digits, e.g. `3f2a-91bc-07de-4410-ab12`. For display
 * and comparison by eye; trust decisions always use the full node id.
 */
export function fingerprintOf(nodeId: string): string {
  return nodeId.slice(0, FINGERPRINT_HEX_CHARS).match(/.{4}/g)!.join('-');
}

/** A node id as a person may type it (surrounding spaces, upper case) in canonical form, or undefined if it is none. */
export function normalizeNodeId(value: string): string | undefined {
  const id = value.trim().toLowerCase();
  return isNodeId(id) ? id : undefined;
}

/** True when `value` is a syntactically valid node id (64 lowercase hex digits). */
export function isNodeId(value: unknown): value is string {
  return typeof value === 'string' && /^[0-9a-f]{64}$/.test(value);
}

/** A peer's verified public identity, as established by a handshake. */
export interface PeerIdentity {
  /** 64 lowercase hex digits, SHA-256 of `publicKey`. */
  readonly nodeId: string;
  /** Raw 32-byte Ed25519 public key. */
  readonly publicKey: Buffer;
  /** Short display form of `nodeId`. */
  readonly fingerprint: string;
}

/** Build a PeerIdentity from a raw public key (the node id is derived, never trusted). */
export function peerIdentityFromPublicKey(publicKey: Uint8Array): PeerIdentity {
  const nodeId = nodeIdFromPublicKey(publicKey);
  // A copy with an ArrayBuffer of its own: it lives as long as the connection,
  // and a small Buffer.from() copy would be a slice of Node's shared 8 KiB
  // pool, keeping the whole pool chunk alive.
  const own = Buffer.alloc(publicKey.length);
  own.set(publicKey);
  return Object.freeze({ nodeId, publicKey: own, fingerprint: fingerprintOf(nodeId) });
}

/**
 * A local node identity. The private key never leaves this object except
 * through `save()`; `inspect`, `toJSON` and `toString` show only the node id.
 */
export class NodeIdentity implements PeerIdentity {
  readonly nodeId: string;
  readonly publicKey: Buffer;
  readonly fingerprint: string;
  readonly #privateKey: Ed25519Signer;
  readonly #verifyKey: Ed25519PublicKey;

  private constructor(privateKey: Ed25519Signer) {
    this.#privateKey = privateKey;
    this.publicKey = privateKey.publicKey;
    this.#verifyKey = importEd25519PublicKey(this.publicKey);
    this.nodeId = nodeIdFromPublicKey(this.publicKey);
    this.fingerprint = fingerprintOf(this.nodeId);
  }

  /** A new identity from the operating system's CSPRNG. */
  static generate(): NodeIdentity {
    return new NodeIdentity(generateEd25519());
  }

  /** An identity from a 32-byte Ed25519 private key (seed), e.g. for test vectors. */
  static fromPrivateKey(seed: Uint8Array): NodeIdentity {
    return new NodeIdentity(ed25519FromSeed(seed));
  }

  /**
   * Load an identity from a key file written by `save()`.
   * @throws McpE2eError `ERR_KEY_FILE_NOT_FOUND`, `ERR_KEY_FILE_PERMISSIONS`
   *   (readable by group/others; the message says how to fix it) or
   *   `ERR_KEY_FILE_CORRUPT` (truncated, wrong fields, key/id mismatch).
   */
  static load(path: string): NodeIdentity {
    const bytes = readPrivateFile(path, MAX_KEY_FILE_BYTES, 'identity key file');
    const corrupt = (why: string) => new McpE2eError('ERR_KEY_FILE_CORRUPT', `identity key file ${path} is corrupt: ${why}`);
    let doc: unknown;
    try {
      doc = JSON.parse(bytes.toString('utf8'));
    } catch {
      throw corrupt('not valid JSON (truncated?)');
    } finally {
      bytes.fill(0);
    }
    if (!hasExactKeys(doc, ['type', 'version', 'node_id', 'public_key', 'private_key'])) throw corrupt('unexpected fields');
    if (doc.type !== KEY_FILE_TYPE) throw corrupt(`type is not "${KEY_FILE_TYPE}"`);
    if (doc.version !== KEY_FILE_VERSION) throw corrupt(`unsupported version`);
    const seed = decodeHex(doc.private_key, 32);
    const pub = decodeHex(doc.public_key, 32);
    if (!seed) throw corrupt('private_key is not 64 hex digits');
    if (!pub) throw corrupt('public_key is not 64 hex digits');
    let identity: NodeIdentity;
    try {
      identity = NodeIdentity.fromPrivateKey(seed);
    } finally {
      seed.fill(0);
    }
    if (!identity.publicKey.equals(pub)) throw corrupt('public_key does not match private_key');
    if (doc.node_id !== identity.nodeId) throw corrupt('node_id does not match public_key');
    return identity;
  }

  /**
   * Write the identity to `path` atomically with mode 0600 (parent folders
   * are created with 0700).
   * @throws McpE2eError `ERR_KEY_FILE_EXISTS` when the file exists and
   *   `overwrite` is not set.
   */
  save(path: string, options: { overwrite?: boolean } = {}): void {
    if (!options.overwrite && existsSync(path)) {
      throw new McpE2eError('ERR_KEY_FILE_EXISTS', `identity key file already exists: ${path} (refusing to overwrite)`);
    }
    const seed = this.#privateKey.seed();
    const text = JSON.stringify(
      {
        type: KEY_FILE_TYPE,
        version: KEY_FILE_VERSION,
        node_id: this.nodeId,
        public_key: this.publicKey.toString('hex'),
        private_key: seed.toString('hex'),
      },
      null,
      2,
    ) + '\n';
    seed.fill(0);
    writeFileAtomic(path, text, 0o600);
  }

  /**
   * Ed25519 signature (64 bytes) over `label || message`. Raw signing is not
   * offered: `label` must be one of `SIGNATURE_LABELS` (the handshake roles,
   * frames, peer records), so a signature made for one purpose can never be
   * replayed as another, whatever bytes a caller passes as `message`.
   * @throws TypeError when `label` is not a reserved signature label.
   */
  sign(label: Uint8Array, message: Uint8Array): Buffer {
    if (!SIGNATURE_LABELS.some((l) => l.equals(label))) throw new TypeError('"label" expected one of SIGNATURE_LABELS (raw signing is not offered)');
    return this.#privateKey.sign(Buffer.concat([label, message]));
  }

  /** Our public key, imported for verification (for checking our own signatures in tests). */
  get verifyKey(): Ed25519PublicKey {
    return this.#verifyKey;
  }

  /** The public part only. */
  toPeerIdentity(): PeerIdentity {
    return peerIdentityFromPublicKey(this.publicKey);
  }

  toJSON(): { node_id: string; fingerprint: string; public_key: string } {
    return { node_id: this.nodeId, fingerprint: this.fingerprint, public_key: this.publicKey.toString('hex') };
  }

  toString(): string {
    return `NodeIdentity(${this.fingerprint})`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}
