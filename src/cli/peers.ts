/**
 * `mcp-e2e peers`: edit the allowlist (who may connect to `serve`, and the
 * names given to peers here) and the known peers (whom `connect` has met).
 * Peers are named as names.ts says: a node id, a name given here, or the
 * fingerprint of a peer known here.
 */
import { updateFileLocked } from '../util/files.js';
import { escapeControlCharacters as safe, hasControlCharacters } from '../util/text.js';
import { KnownPeersStore, MAX_ALLOWLIST_FILE_BYTES, normalizeEndpoint, PeerAllowList, parseAllowList } from '../identity/trust.js';
import { fingerprintOf, normalizeNodeId } from '../identity/identity.js';
import { fingerprintDigits, looksLikeId, nameOf, resolvePeer, type LocalPeers } from './names.js';
import { UsageError } from './usage.js';
import type { HomePaths } from './home.js';

const ALLOWLIST = { what: 'allowlist', maxBytes: MAX_ALLOWLIST_FILE_BYTES };

/** The peers this home knows: its allowlist (with the names given here) and the endpoints connect recorded. */
export function localPeers(paths: HomePaths): LocalPeers {
  return { allowed: PeerAllowList.fromFile(paths.allowedPeers).entries(), known: new KnownPeersStore(paths.knownPeers).list() };
}

/** The first word of an allowlist line, lowercased: its node id if the line is good. */
const lineId = (line: string) => line.replace(/#.*/, '').trim().split(/\s+/)[0]?.toLowerCase();

/**
 * Add a node id to an allowlist file with an optional name, keeping its
 * comments (locked read-modify-write, so a concurrent edit is never lost).
 * A name is one a person uses to select the peer here (`--peer NAME`), so
 * it must be unambiguous.
 * @returns `added`, `renamed` (it was there under another name) or `unchanged`.
 * @throws UsageError for a bad node id, or a name with control characters
 *   or `#`, one that reads as a node id or fingerprint, or one another peer has.
 */
export function allowPeer(path: string, nodeId: string, name = ''): 'added' | 'renamed' | 'unchanged' {
  const id = normalizeNodeId(nodeId);
  if (!id) throw new UsageError(`not a node id (64 hex digits): ${JSON.stringify(nodeId)}; get one with \`mcp-e2e id\` on the peer`);
  // A newline in a name would start a second line: another allowed id.
  if (hasControlCharacters(name)) throw new UsageError('a name must not contain control characters (newlines, tabs, escapes)');
  if (name.includes('#')) throw new UsageError('a name must not contain # (it starts a comment in the allowlist)');
  if (looksLikeId(name)) throw new UsageError(`a name must not look like a node id or a fingerprint: ${JSON.stringify(name)}`);
  const label = name.trim().replace(/\s+/g, ' ');
  let outcome: 'added' | 'renamed' | 'unchanged' = 'unchanged';
  updateFileLocked(path, ALLOWLIST, (current) => {
    const text = current?.toString('utf8') ?? '';
    const entries = parseAllowList(text, path);
    const holder = label ? [...entries].find(([other, l]) => l === label && other !== id)?.[0] : undefined;
    if (holder) throw new UsageError(`the name ${JSON.stringify(label)} is already given to ${fingerprintOf(holder)} (${holder}); choose another, or deny that one first`);
    const line = `${id}${label ? ' ' + label : ''}`;
    if (entries.has(id)) {
      if (!label || entries.get(id) === label) return undefined;
      outcome = 'renamed';
      return text.split(/\r?\n/).map((l) => (lineId(l) === id ? line : l)).join('\n');
    }
    outcome = 'added';
    const sep = text === '' || text.endsWith('\n') ? '' : '\n';
    return `${text}${sep}${line}\n`;
  });
  return outcome;
}

/** Remove a node id from an allowlist file (locked read-modify-write; other lines are kept as they are, even bad ones). Returns false if it was not there. */
export function denyPeer(path: string, nodeId: string): boolean {
  const id = normalizeNodeId(nodeId);
  if (!id) throw new UsageError(`not a node id (64 hex digits): ${JSON.stringify(nodeId)}`);
  let removed = false;
  updateFileLocked(path, ALLOWLIST, (current) => {
    if (current === undefined) return undefined;
    const lines = current.toString('utf8').split(/\r?\n/);
    const kept = lines.filter((l) => lineId(l) !== id);
    if (kept.length === lines.length) return undefined;
    removed = true;
    return kept.join('\n');
  });
  return removed;
}

/** `ws://host:port[/path]` or `host:port` as the key of known_peers.json, or undefined. */
export function endpointOf(text: string): string | undefined {
  if (/^wss?:\/\//i.test(text)) {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      return undefined;
    }
    return normalizeEndpoint(`${url.hostname}:${url.port || (url.protocol === 'wss:' ? '443' : '80')}`);
  }
  return normalizeEndpoint(text);
}

const describeId = (id: string, peers: LocalPeers) => {
  const name = nameOf(id, peers);
  return `${id} (fingerprint ${fingerprintOf(id)}${name ? `, named ${JSON.stringify(safe(name))}` : ''})`;
};

export function peersCommand(args: string[], paths: HomePaths, out: (line: string) => void, json: boolean): void {
  const [sub, ...rest] = args;
  const usage = (how: string) => new UsageError(`usage: mcp-e2e peers ${how} (see mcp-e2e peers --help)`);
  switch (sub) {
    case 'allow': {
      if (!rest[0]) throw usage('allow NODE_ID [NAME]');
      const peers = localPeers(paths);
      // A fingerprint may select a server connect has met (its full id is recorded); it is never a pin by itself.
      const id = fingerprintDigits(rest[0]) ? resolvePeer(rest[0], { allowed: [], known: peers.known }) : rest[0];
      const outcome = allowPeer(paths.allowedPeers, id, rest.slice(1).join(' '));
      const now = localPeers(paths);
      const nodeId = normalizeNodeId(id)!;
      if (outcome === 'unchanged') out(`already allowed: ${describeId(nodeId, now)}`);
      else out(`${outcome === 'added' ? 'allowed' : 'renamed'} ${describeId(nodeId, now)} in ${paths.allowedPeers}`);
      return;
    }
    case 'deny': {
      if (!rest[0] || rest.length > 1) throw usage('deny PEER');
      const peers = localPeers(paths);
      const id = resolvePeer(rest[0], peers);
      const removed = denyPeer(paths.allowedPeers, id);
      out(removed ? `removed ${describeId(id, peers)} from ${paths.allowedPeers}` : `${id} is not on the allowlist`);
      return;
    }
    case 'forget': {
      if (!rest[0] || rest.length > 1) throw usage('forget ENDPOINT|PEER');
      const store = new KnownPeersStore(paths.knownPeers);
      const endpoint = endpointOf(rest[0]);
      if (endpoint) {
        out(store.forget(endpoint) ? `forgot the identity of ${endpoint}` : `${endpoint} is not a known peer`);
        return;
      }
      let id: string;
      try {
        id = resolvePeer(rest[0], localPeers(paths));
      } catch (err) {
        throw new UsageError(`${(err as Error).message}; or give the endpoint as ws://HOST:PORT or HOST:PORT, as \`mcp-e2e peers\` lists it`);
      }
      const endpoints = store.list().filter((k) => k.nodeId === id).map((k) => k.endpoint);
      for (const e of endpoints) store.forget(e);
      out(endpoints.length ? `forgot the identity of ${endpoints.join(', ')}` : `no endpoint is recorded for ${fingerprintOf(id)}`);
      return;
    }
    case 'list':
    case undefined: {
      if (rest.length) throw usage('list');
      const allowed = PeerAllowList.fromFile(paths.allowedPeers).entries();
      const known = new KnownPeersStore(paths.knownPeers).list();
      const named = (id: string) => (nameOf(id, { allowed }) ? '  ' + safe(nameOf(id, { allowed })!) : '');
      if (json) {
        out(JSON.stringify({ allowed: allowed.map((p) => ({ node_id: p.nodeId, label: p.label })), known: known.map((k) => ({ endpoint: k.endpoint, node_id: k.nodeId, first_seen: k.firstSeen })) }));
        return;
      }
      out(`allowed peers (${paths.allowedPeers}):`);
      for (const p of allowed) out(`  ${p.nodeId}  ${fingerprintOf(p.nodeId)}${named(p.nodeId)}`);
      if (allowed.length === 0) out('  (none)');
      out(`known peers (${paths.knownPeers}):`);
      for (const k of known) out(`  ${safe(k.endpoint)}  ${k.nodeId}  ${fingerprintOf(k.nodeId)}${named(k.nodeId)}`);
      if (known.length === 0) out('  (none)');
      return;
    }
    default:
      throw new UsageError(`unknown peers command "${sub}"; use list, allow, deny or forget (see mcp-e2e peers --help)`);
  }
}
