/**
 * Trust policies: which authenticated peers to accept. A handshake proves
 * that the peer holds the key behind its node id; a policy decides whether
 * that node id is welcome. Policies are synchronous and throw McpE2eError
 * `ERR_PEER_REJECTED` (unknown peer) or `ERR_PEER_KEY_CHANGED` (a pinned or
 * previously seen endpoint now presents another identity).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { McpE2eError } from '../errors.js';
import { writeFileAtomic } from '../util/files.js';
import { hasExactKeys } from '../util/assert.js';
import { fingerprintOf, isNodeId, normalizeNodeId, type PeerIdentity } from './identity.js';

/** Where the peer was reached, for policies keyed by endpoint. */
export interface TrustContext {
  /** `host:port` the client connected to (clients only). */
  endpoint?: string;
}

export interface TrustPolicy {
  /** Throw McpE2eError to refuse `peer`; return to accept it. */
  verify(peer: PeerIdentity, context?: TrustContext): void;
}

/** Accept every authenticated peer. Use only where any key holder may connect. */
export function allowAnyPeer(): TrustPolicy {
  return { verify() {} };
}

function checkNodeId(value: string, where: string): string {
  const id = normalizeNodeId(value);
  if (!id) throw new McpE2eError('ERR_INVALID_NODE_ID', `${where}: not a node id (64 hex digits): ${JSON.stringify(value.slice(0, 80))}`);
  return id;
}

/** Accept exactly one node id (pinning). Any other identity is a changed key. */
export function pinnedPeer(expectedNodeId: string): TrustPolicy {
  const expected = checkNodeId(expectedNodeId, 'expected peer');
  return {
    verify(peer) {
      if (peer.nodeId !== expected) {
        throw new McpE2eError(
          'ERR_PEER_KEY_CHANGED',
          `peer identity ${peer.fingerprint} is not the pinned peer ${fingerprintOf(expected)} (node id ${peer.nodeId})`,
        );
      }
    },
  };
}

/**
 * Parse an allowlist file: one node id per line; `#` starts a comment; text
 * after the node id (separated by whitespace) is a free-form label.
 */
export function parseAllowList(text: string, source = 'allowlist'): Map<string, string> {
  const out = new Map<string, string>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) return;
    const [id, ...label] = line.split(/\s+/);
    out.set(checkNodeId(id!, `${source} line ${i + 1}`), label.join(' '));
  });
  return out;
}

/** An allowlist of node ids; replaceable at run time (`set`, `reload`) without a restart. */
export class PeerAllowList implements TrustPolicy {
  #ids = new Map<string, string>();
  readonly path: string | undefined;

  constructor(entries: Iterable<string> = [], path?: string) {
    this.set(entries);
    this.path = path;
  }

  /** Load from a file written in the `parseAllowList` format (a missing file is an empty list). */
  static fromFile(path: string): PeerAllowList {
    const list = new PeerAllowList([], path);
    list.reload();
    return list;
  }

  /** Re-read the file this list came from. On a parse error the old list stays in force and the error is thrown. */
  reload(): void {
    if (!this.path) return;
    const text = existsSync(this.path) ? readFileSync(this.path, 'utf8') : '';
    this.#ids = parseAllowList(text, this.path);
  }

  /** Replace the whole list. */
  set(entries: Iterable<string>): void {
    const next = new Map<string, string>();
    for (const e of entries) next.set(checkNodeId(e, 'allowed peer'), '');
    this.#ids = next;
  }

  has(nodeId: string): boolean {
    return this.#ids.has(nodeId);
  }

  get size(): number {
    return this.#ids.size;
  }

  entries(): Array<{ nodeId: string; label: string }> {
    return [...this.#ids].map(([nodeId, label]) => ({ nodeId, label }));
  }

  verify(peer: PeerIdentity): void {
    if (!this.#ids.has(peer.nodeId)) {
      throw new McpE2eError('ERR_PEER_REJECTED', `peer ${peer.fingerprint} (node id ${peer.nodeId}) is not on the allowlist`);
    }
  }
}

interface KnownPeer {
  node_id: string;
  first_seen: string;
}

const KNOWN_PEERS_VERSION = 1;
const MAX_KNOWN_PEERS_FILE_BYTES = 4 * 1024 * 1024;

/**
 * Known peers with trust on first use, keyed by endpoint (`host:port`), as
 * ssh's known_hosts: the first identity seen at an endpoint is recorded; a
 * different one later is refused loudly with `ERR_PEER_KEY_CHANGED`.
 */
export class KnownPeersStore implements TrustPolicy {
  readonly path: string;
  #peers: Record<string, KnownPeer> = {};

  constructor(path: string) {
    this.path = path;
    this.#load();
  }

  #load(): void {
    if (!existsSync(this.path)) return;
    const corrupt = (why: string) => new McpE2eError('ERR_KEY_FILE_CORRUPT', `known peers file ${this.path} is corrupt: ${why}`);
    if (statSync(this.path).size > MAX_KNOWN_PEERS_FILE_BYTES) throw corrupt('too large');
    let doc: unknown;
    try {
      doc = JSON.parse(readFileSync(this.path, 'utf8'));
    } catch {
      throw corrupt('not valid JSON');
    }
    if (!hasExactKeys(doc, ['version', 'peers']) || doc.version !== KNOWN_PEERS_VERSION) throw corrupt('unexpected fields or version');
    const peers = doc.peers;
    if (typeof peers !== 'object' || peers === null || Array.isArray(peers)) throw corrupt('peers is not an object');
    const out: Record<string, KnownPeer> = {};
    for (const [endpoint, entry] of Object.entries(peers)) {
      if (!hasExactKeys(entry, ['node_id', 'first_seen']) || !isNodeId(entry.node_id) || typeof entry.first_seen !== 'string') {
        throw corrupt(`bad entry for ${endpoint}`);
      }
      out[endpoint] = { node_id: entry.node_id, first_seen: entry.first_seen };
    }
    this.#peers = out;
  }

  #save(): void {
    writeFileAtomic(this.path, JSON.stringify({ version: KNOWN_PEERS_VERSION, peers: this.#peers }, null, 2) + '\n', 0o600);
  }

  /** The node id recorded for `endpoint`, if any. */
  get(endpoint: string): string | undefined {
    return Object.prototype.hasOwnProperty.call(this.#peers, endpoint) ? this.#peers[endpoint]!.node_id : undefined;
  }

  list(): Array<{ endpoint: string; nodeId: string; firstSeen: string }> {
    return Object.entries(this.#peers).map(([endpoint, p]) => ({ endpoint, nodeId: p.node_id, firstSeen: p.first_seen }));
  }

  /** Record (or replace) the identity of an endpoint. */
  remember(endpoint: string, nodeId: string): void {
    this.#peers[endpoint] = { node_id: checkNodeId(nodeId, 'known peer'), first_seen: new Date().toISOString() };
    this.#save();
  }

  /** Forget an endpoint; returns whether it was known. */
  forget(endpoint: string): boolean {
    if (this.get(endpoint) === undefined) return false;
    delete this.#peers[endpoint];
    this.#save();
    return true;
  }

  verify(peer: PeerIdentity, context: TrustContext = {}): void {
    const endpoint = context.endpoint;
    if (!endpoint) throw new McpE2eError('ERR_PEER_REJECTED', 'trust on first use needs the endpoint the peer was reached at');
    const known = this.get(endpoint);
    if (known === undefined) {
      this.remember(endpoint, peer.nodeId);
      return;
    }
    if (known !== peer.nodeId) {
      throw new McpE2eError(
        'ERR_PEER_KEY_CHANGED',
        `WARNING: the identity of ${endpoint} has changed! Known ${fingerprintOf(known)}, now presented ${peer.fingerprint} ` +
          `(node id ${peer.nodeId}). This may be an attack. If the change is expected, forget the old identity ` +
          `(mcp-e2e peers forget ${endpoint}) and connect again.`,
      );
    }
  }
}
