/** `mcp-e2e peers`: edit the allowlist (who may connect to `serve`) and the known peers (whom `connect` has met). */
import { existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../util/files.js';
import { KnownPeersStore, PeerAllowList, parseAllowList } from '../identity/trust.js';
import { fingerprintOf, normalizeNodeId } from '../identity/identity.js';
import { PeerRegistry, type PeerInfo } from '../discovery/registry.js';
import { UsageError } from './usage.js';
import type { HomePaths } from './home.js';

function normalizeId(value: string | undefined): string {
  const id = normalizeNodeId(value ?? '');
  if (!id) throw new UsageError(`not a node id (64 hex digits): ${JSON.stringify(value ?? '')}; get one with \`mcp-e2e id\` on the peer`);
  return id;
}

/** Add a node id to an allowlist file, keeping its comments. Returns false if it was already there. */
export function allowPeer(path: string, nodeId: string, label = ''): boolean {
  const id = normalizeId(nodeId);
  const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
  if (parseAllowList(text, path).has(id)) return false;
  const sep = text === '' || text.endsWith('\n') ? '' : '\n';
  writeFileAtomic(path, `${text}${sep}${id}${label ? ' ' + label : ''}\n`, 0o600);
  return true;
}

/** Remove a node id from an allowlist file. Returns false if it was not there. */
export function denyPeer(path: string, nodeId: string): boolean {
  const id = normalizeId(nodeId);
  if (!existsSync(path)) return false;
  const lines = readFileSync(path, 'utf8').split(/\r?\n/);
  const kept = lines.filter((l) => l.replace(/#.*/, '').trim().split(/\s+/)[0]?.toLowerCase() !== id);
  if (kept.length === lines.length) return false;
  writeFileAtomic(path, kept.join('\n'), 0o600);
  return true;
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
      if (!rest[0]) throw new UsageError('usage: mcp-e2e peers forget HOST:PORT');
      const forgot = new KnownPeersStore(paths.knownPeers).forget(rest[0]);
      out(forgot ? `forgot the identity of ${rest[0]}` : `${rest[0]} is not a known peer`);
      return;
    }
    case 'list':
    case undefined: {
      const allowed = PeerAllowList.fromFile(paths.allowedPeers).entries();
      const known = new KnownPeersStore(paths.knownPeers).list();
      const allowedIds = new Set(allowed.map((p) => p.nodeId));
      const discovered = existsSync(paths.peers) ? new PeerRegistry({ path: paths.peers, isTrusted: (id) => allowedIds.has(id), flushIntervalMs: 0 }).list().filter((p) => !p.self) : [];
      if (json) {
        out(
          JSON.stringify({
            allowed: allowed.map((p) => ({ node_id: p.nodeId, label: p.label })),
            known: known.map((k) => ({ endpoint: k.endpoint, node_id: k.nodeId, first_seen: k.firstSeen })),
            discovered: discovered.map((p) => ({ node_id: p.nodeId, name: p.name, state: p.state, sources: p.sources, addresses: p.addresses, seq: p.record?.seq, left: p.left, expired: p.recordExpired, last_seen: p.lastSeenMs })),
          }),
        );
        return;
      }
      out(`allowed peers (${paths.allowedPeers}):`);
      for (const p of allowed) out(`  ${fingerprintOf(p.nodeId)}  ${p.nodeId}${p.label ? '  ' + p.label : ''}`);
      if (allowed.length === 0) out('  (none)');
      out(`known peers (${paths.knownPeers}):`);
      for (const k of known) out(`  ${k.endpoint}  ${fingerprintOf(k.nodeId)}  ${k.nodeId}`);
      if (known.length === 0) out('  (none)');
      out(`discovered peers (${paths.peers}):`);
      for (const p of discovered) out(`  ${describePeer(p)}`);
      if (discovered.length === 0) out('  (none)');
      return;
    }
    default:
      throw new UsageError(`unknown peers command "${sub}"; use allow, deny, forget or list`);
  }
}

/** One line for a registry entry: name, short id, state, where it was learned, addresses, last seen. */
function describePeer(p: PeerInfo): string {
  const status = p.left ? ' (left)' : p.recordExpired ? ' (record expired)' : '';
  const ago = Math.max(0, Math.round((Date.now() - p.lastSeenMs) / 1000));
  // Record names are text without controls or bidirectional marks (PROTOCOL.md §13.2.2); JSON quoting shows them as they are.
  return `${JSON.stringify(p.name ?? '')}  ${p.fingerprint}  ${p.state}${status}  from ${p.sources.join(',')}  ${p.addresses.join(' ') || '(no address)'}  seen ${ago}s ago`;
}
