/**
 * `mcp-e2e peers`: show the peer registry (what discovery and sessions
 * taught this node), edit the allowlist (who may connect to `serve`), the
 * known peers (whom `connect URL` has met) and the registry (records and
 * addresses given by hand, blocks).
 */
import { updateFileLocked } from '../util/files.js';
import { escapeControlCharacters as safe, hasControlCharacters } from '../util/text.js';
import { KnownPeersStore, MAX_ALLOWLIST_FILE_BYTES, normalizeEndpoint, PeerAllowList, parseAllowList } from '../identity/trust.js';
import { fingerprintOf, normalizeNodeId, NodeIdentity } from '../identity/identity.js';
import { PeerRegistry, type PeerInfo } from '../discovery/registry.js';
import { recordBytesFromHex } from '../discovery/record.js';
import { McpE2eError } from '../errors.js';
import { UsageError } from './usage.js';
import type { HomePaths } from './home.js';

/** Addresses given by hand stay dialable this long (ms): a person typed them. */
const MANUAL_HINT_TTL_MS = 365 * 24 * 60 * 60 * 1000;

/** The home's registry; `trusted` read from the allowlist, our own entry marked. */
export function openRegistry(paths: HomePaths, allowList: PeerAllowList = PeerAllowList.fromFile(paths.allowedPeers)): PeerRegistry {
  let self: string | undefined;
  try {
    self = NodeIdentity.load(paths.identity).nodeId;
  } catch {
    // No identity yet: nothing is ours.
  }
  return new PeerRegistry({ path: paths.registry, flushIntervalMs: 0, isTrusted: (id) => allowList.has(id), ...(self ? { selfNodeId: self } : {}) });
}

function ago(ms: number, now: number): string {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

/** The registry as a table people can read: name, short id, state, addresses, where learned, last seen. */
export function peersTable(peers: readonly PeerInfo[], now = Date.now()): string[] {
  const rows = peers.map((p) => [
    safe(p.name ?? '-') + (p.self ? ' (self)' : ''),
    p.nodeId.slice(0, 12),
    p.state + (p.left ? ', left' : p.recordExpired ? ', expired' : ''),
    p.addresses.length === 0 ? '-' : safe(p.addresses[0]!) + (p.addresses.length > 1 ? ` +${p.addresses.length - 1}` : ''),
    p.sources.join(',') || '-',
    ago(p.lastSeenMs, now),
  ]);
  const head = ['NAME', 'ID', 'STATE', 'ADDRESSES', 'LEARNED', 'LAST SEEN'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [head, ...rows].map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  '));
}

function peerJson(p: PeerInfo): Record<string, unknown> {
  return {
    node_id: p.nodeId,
    name: p.name ?? null,
    state: p.state,
    self: p.self,
    addresses: p.addresses,
    sources: p.sources,
    first_seen: new Date(p.firstSeenMs).toISOString(),
    last_seen: new Date(p.lastSeenMs).toISOString(),
    last_handshake: p.lastHandshake ? { at: new Date(p.lastHandshake.atMs).toISOString(), direction: p.lastHandshake.direction, url: p.lastHandshake.url ?? null } : null,
    last_failure: p.lastFailure ? { at: new Date(p.lastFailure.atMs).toISOString(), url: p.lastFailure.url, code: p.lastFailure.code } : null,
    record: p.record ? { ...p.record.toJSON(), expired: p.recordExpired, left: p.left } : null,
  };
}

function normalizeId(value: string | undefined): string {
  const id = normalizeNodeId(value ?? '');
  if (!id) throw new UsageError(`not a node id (64 hex digits): ${JSON.stringify(value ?? '')}; get one with \`mcp-e2e id\` on the peer`);
  return id;
}

const ALLOWLIST = { what: 'allowlist', maxBytes: MAX_ALLOWLIST_FILE_BYTES };

/**
 * Add a node id to an allowlist file, keeping its comments (locked
 * read-modify-write, so a concurrent edit is never lost). Returns false if
 * it was already there.
 * @throws UsageError for a bad node id or a label with control characters.
 */
export function allowPeer(path: string, nodeId: string, label = ''): boolean {
  const id = normalizeId(nodeId);
  // A newline in a label would start a second line: another allowed id.
  if (hasControlCharacters(label)) throw new UsageError('a label must not contain control characters (newlines, tabs, escapes)');
  let added = false;
  updateFileLocked(path, ALLOWLIST, (current) => {
    const text = current?.toString('utf8') ?? '';
    if (parseAllowList(text, path).has(id)) return undefined;
    added = true;
    const sep = text === '' || text.endsWith('\n') ? '' : '\n';
    return `${text}${sep}${id}${label ? ' ' + label : ''}\n`;
  });
  return added;
}

/** Remove a node id from an allowlist file (locked read-modify-write; other lines are kept as they are, even bad ones). Returns false if it was not there. */
export function denyPeer(path: string, nodeId: string): boolean {
  const id = normalizeId(nodeId);
  let removed = false;
  updateFileLocked(path, ALLOWLIST, (current) => {
    if (current === undefined) return undefined;
    const lines = current.toString('utf8').split(/\r?\n/);
    const kept = lines.filter((l) => l.replace(/#.*/, '').trim().split(/\s+/)[0]?.toLowerCase() !== id);
    if (kept.length === lines.length) return undefined;
    removed = true;
    return kept.join('\n');
  });
  return removed;
}

export function peersCommand(args: string[], paths: HomePaths, out: (line: string) => void, json: boolean): void {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'allow': {
      const added = allowPeer(paths.allowedPeers, rest[0] ?? '', rest.slice(1).join(' '));
      out(added ? `allowed ${fingerprintOf(normalizeId(rest[0]))} in ${paths.allowedPeers}` : 'already allowed');
      return;
    }
    case 'deny': {
      const removed = denyPeer(paths.allowedPeers, rest[0] ?? '');
      out(removed ? `removed ${fingerprintOf(normalizeId(rest[0]))} from ${paths.allowedPeers}` : 'not on the allowlist');
      return;
    }
    case 'forget': {
      if (!rest[0]) throw new UsageError('usage: mcp-e2e peers forget HOST:PORT | NODE_ID');
      const id = normalizeNodeId(rest[0]);
      if (id) {
        const registry = openRegistry(paths);
        const forgot = registry.forget(id);
        registry.close();
        out(forgot ? `forgot node ${fingerprintOf(id)} (${paths.registry})` : `${fingerprintOf(id)} is not in the registry`);
        return;
      }
      const endpoint = normalizeEndpoint(rest[0]);
      if (!endpoint) throw new UsageError(`not an endpoint or a node id: ${JSON.stringify(rest[0])}; expected HOST:PORT or NODE_ID as printed by \`mcp-e2e peers list\``);
      const forgot = new KnownPeersStore(paths.knownPeers).forget(endpoint);
      out(forgot ? `forgot the identity of ${endpoint}` : `${endpoint} is not a known peer`);
      return;
    }
    case 'add': {
      // A record (hex) as `mcp-e2e peers record` prints it on the peer, or a node id and its addresses.
      if (rest.length === 0) throw new UsageError('usage: mcp-e2e peers add RECORD_HEX | NODE_ID URL...');
      const registry = openRegistry(paths);
      const id = normalizeNodeId(rest[0]!);
      let outcome;
      if (id) {
        if (rest.length < 2) throw new UsageError('usage: mcp-e2e peers add NODE_ID URL... (ws:// or wss:// addresses)');
        const urls = rest.slice(1);
        outcome = registry.addHint(id, urls, 'manual', MANUAL_HINT_TTL_MS);
        if (outcome.accepted && registry.get(id)!.hints.filter((h) => urls.includes(h.url)).length !== urls.length) {
          throw new UsageError(`not an address a peer can have (ws:// or wss://, lowercase host, no query): ${urls.join(' ')}`);
        }
      } else {
        let bytes;
        try {
          bytes = recordBytesFromHex(rest[0]);
        } catch (err) {
          throw new UsageError(`neither a node id nor a peer record (hex): ${(err as Error).message}`);
        }
        outcome = registry.addRecordBytes(bytes, 'manual');
      }
      registry.close();
      if (!outcome.accepted) throw new McpE2eError(outcome.code, outcome.message);
      out(`${outcome.change === 'new' ? 'added' : outcome.change === 'updated' ? 'updated' : 'already known:'} node ${fingerprintOf(outcome.nodeId)} (${outcome.nodeId})`);
      return;
    }
    case 'block':
    case 'unblock': {
      const id = normalizeId(rest[0]);
      const registry = openRegistry(paths);
      registry.setBlocked(id, sub === 'block');
      registry.close();
      out(`${sub === 'block' ? 'blocked' : 'unblocked'} node ${fingerprintOf(id)}${sub === 'block' ? ': its records are dropped, it is never dialled, its connections are refused' : ''}`);
      return;
    }
    case 'record': {
      const registry = openRegistry(paths);
      const self = registry.selfNodeId ? registry.get(registry.selfNodeId) : undefined;
      if (!self?.record || self.recordExpired) throw new UsageError('no valid record of this node: `mcp-e2e serve --announce` makes one (and refreshes it while it runs)');
      out(json ? JSON.stringify({ ...self.record.toJSON(), record: self.record.toHex() }) : self.record.toHex());
      return;
    }
    case 'list':
    case undefined: {
      const allowList = PeerAllowList.fromFile(paths.allowedPeers);
      const allowed = allowList.entries();
      const known = new KnownPeersStore(paths.knownPeers).list();
      const peers = openRegistry(paths, allowList).list();
      if (json) {
        out(JSON.stringify({
          peers: peers.map(peerJson),
          allowed: allowed.map((p) => ({ node_id: p.nodeId, label: p.label })),
          known: known.map((k) => ({ endpoint: k.endpoint, node_id: k.nodeId, first_seen: k.firstSeen })),
        }));
        return;
      }
      out(`peer registry (${paths.registry}):`);
      if (peers.length === 0) out('  (none)');
      else for (const line of peersTable(peers)) out(`  ${line}`);
      out(`allowed peers (${paths.allowedPeers}):`);
      for (const p of allowed) out(`  ${fingerprintOf(p.nodeId)}  ${p.nodeId}${p.label ? '  ' + safe(p.label) : ''}`);
      if (allowed.length === 0) out('  (none)');
      out(`known peers (${paths.knownPeers}):`);
      for (const k of known) out(`  ${safe(k.endpoint)}  ${fingerprintOf(k.nodeId)}  ${k.nodeId}`);
      if (known.length === 0) out('  (none)');
      return;
    }
    default:
      throw new UsageError(`unknown peers command "${sub}"; use list, allow, deny, add, block, unblock, forget or record`);
  }
}
