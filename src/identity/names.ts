/**
 * How a person says which peer (`connect --peer`, `connect NAME`, `peers
 * deny`, `peers forget`, `MeshNode.resolve`): its full node id, a name given
 * here, or its fingerprint.
 *
 * - A node id (64 hex digits) is a pin: it is used as it is.
 * - A name is what someone on this machine called the peer (`peers allow
 *   NODE_ID NAME`, the label in the allowlist). Names are local: the name a
 *   node gives itself in its record is a claim, mentioned when nothing
 *   matched but never followed, even for a trusted node, so nobody can make
 *   `connect alice` mean their key by calling themselves alice.
 * - A fingerprint (the first 80 bits of the node id, as `mcp-e2e id`
 *   prints it) only selects among the peers already known here (allowed,
 *   or recorded by `connect`): it is never itself a pin, since 80 bits are
 *   not enough to stop someone who makes keys until one matches.
 */
import { McpE2eError } from '../errors.js';
import { fingerprintOf, normalizeNodeId } from './identity.js';

/** The peers known here, with the names given to them. */
export interface LocalPeers {
  /** The allowlist's entries (label = the name given here). */
  allowed: ReadonlyArray<{ nodeId: string; label: string }>;
  /** The endpoints `connect` recorded (peers a person connected to). */
  known?: ReadonlyArray<{ endpoint: string; nodeId: string }>;
  /** Names nodes give themselves (their records): only for the message when nothing matched. */
  claims?: ReadonlyArray<{ nodeId: string; name: string }>;
}

/** `text` as a fingerprint (20 hex digits, dashes and case as a person may type them), or undefined. */
export function fingerprintDigits(text: string): string | undefined {
  const t = text.trim();
  return /^[0-9a-fA-F]{4}(-?[0-9a-fA-F]{4}){4}$/.test(t) ? t.toLowerCase().replace(/-/g, '') : undefined;
}

/** True when a name would read as a node id or a fingerprint (and so could never be used as a name). */
export function looksLikeId(name: string): boolean {
  return normalizeNodeId(name) !== undefined || fingerprintDigits(name) !== undefined;
}

/** The ids a name or fingerprint selects among the local peers. */
function candidates(text: string, peers: LocalPeers): { ids: Set<string>; by: 'name' | 'fingerprint' } {
  const digits = fingerprintDigits(text);
  const ids = new Set<string>();
  if (digits) {
    for (const p of [...peers.allowed, ...(peers.known ?? [])]) if (p.nodeId.startsWith(digits)) ids.add(p.nodeId);
    return { ids, by: 'fingerprint' };
  }
  for (const p of peers.allowed) if (p.label === text) ids.add(p.nodeId);
  return { ids, by: 'name' };
}

/**
 * The node id `text` stands for.
 * @throws McpE2eError `ERR_PEER_NOT_FOUND` when it is none of a node id, a
 *   name given here or the fingerprint of a peer known here, or when it
 *   selects several.
 */
export function resolvePeerName(text: string, peers: LocalPeers): string {
  const id = normalizeNodeId(text);
  if (id) return id;
  const { ids, by } = candidates(text, peers);
  const notFound = (message: string) => new McpE2eError('ERR_PEER_NOT_FOUND', message);
  if (ids.size === 1) return [...ids][0]!;
  if (ids.size > 1) throw notFound(`${JSON.stringify(text)} is the ${by} of several peers here (${[...ids].map(fingerprintOf).join(', ')}); give the full node id`);
  if (by === 'fingerprint') {
    throw notFound(
      `no peer known here has the fingerprint ${fingerprintOf(fingerprintDigits(text)!.padEnd(64, '0'))}: a fingerprint only selects a peer already known here, it is not enough to pin one; give the full node id (64 hex digits, \`mcp-e2e id\` prints it on the peer)`,
    );
  }
  const claimants = [...new Set((peers.claims ?? []).filter((c) => c.name === text).map((c) => c.nodeId))];
  const claimed = claimants.length
    ? `; ${claimants.map(fingerprintOf).join(', ')} call${claimants.length === 1 ? 's itself' : ' themselves'} that, a claim that selects nothing: name one here (mcp-e2e peers allow NODE_ID ${JSON.stringify(text)}) or give its node id`
    : '';
  throw notFound(`${JSON.stringify(text)} is neither a node id (64 hex digits) nor the name or fingerprint of a peer known here (names are given here: mcp-e2e peers allow NODE_ID NAME)${claimed}`);
}

/** The name given here to `nodeId`, if any. */
export function nameOf(nodeId: string, peers: Pick<LocalPeers, 'allowed'>): string | undefined {
  const label = peers.allowed.find((p) => p.nodeId === nodeId)?.label;
  return label ? label : undefined;
}
