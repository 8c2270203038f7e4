/** `mcp-e2e peers`: edit the allowlist (who may connect to `serve`) and the known peers (whom `connect` has met). */
import { updateFileLocked } from '../util/files.js';
import { escapeControlCharacters as safe, hasControlCharacters } from '../util/text.js';
import { KnownPeersStore, MAX_ALLOWLIST_FILE_BYTES, normalizeEndpoint, PeerAllowList, parseAllowList } from '../identity/trust.js';
import { fingerprintOf, normalizeNodeId } from '../identity/identity.js';
import { UsageError } from './usage.js';
import type { HomePaths } from './home.js';

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
      if (!rest[0]) throw new UsageError('usage: mcp-e2e peers forget HOST:PORT');
      const endpoint = normalizeEndpoint(rest[0]);
      if (!endpoint) throw new UsageError(`not an endpoint: ${JSON.stringify(rest[0])}; expected HOST:PORT as printed by \`mcp-e2e peers list\``);
      const forgot = new KnownPeersStore(paths.knownPeers).forget(endpoint);
      out(forgot ? `forgot the identity of ${endpoint}` : `${endpoint} is not a known peer`);
      return;
    }
    case 'list':
    case undefined: {
      const allowed = PeerAllowList.fromFile(paths.allowedPeers).entries();
      const known = new KnownPeersStore(paths.knownPeers).list();
      if (json) {
        out(JSON.stringify({ allowed: allowed.map((p) => ({ node_id: p.nodeId, label: p.label })), known: known.map((k) => ({ endpoint: k.endpoint, node_id: k.nodeId, first_seen: k.firstSeen })) }));
        return;
      }
      out(`allowed peers (${paths.allowedPeers}):`);
      for (const p of allowed) out(`  ${fingerprintOf(p.nodeId)}  ${p.nodeId}${p.label ? '  ' + safe(p.label) : ''}`);
      if (allowed.length === 0) out('  (none)');
      out(`known peers (${paths.knownPeers}):`);
      for (const k of known) out(`  ${safe(k.endpoint)}  ${fingerprintOf(k.nodeId)}  ${k.nodeId}`);
      if (known.length === 0) out('  (none)');
      return;
    }
    default:
      throw new UsageError(`unknown peers command "${sub}"; use allow, deny, forget or list`);
  }
}
