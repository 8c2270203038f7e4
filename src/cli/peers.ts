/**
 * `mcp-e2e peers`: show the peer registry (what discovery and sessions
 * taught this node), edit the allowlist (who may connect to `serve`, and the
 * names given to peers here), the known peers (whom `connect URL` has met)
 * and the registry (records and addresses given by hand, blocks). Peers are
 * named as src/identity/names.ts says: a node id, a name given here, or the
 * fingerprint of a peer known here.
 */
import { updateFileLocked } from '../util/files.js';
import { escapeControlCharacters as safe, hasControlCharacters } from '../util/text.js';
import { allowLineNodeId, formatAllowLine, KnownPeersStore, labelHasOption, MAX_ALLOWLIST_FILE_BYTES, normalizeEndpoint, PeerAllowList, parseAllowLine, parseAllowList } from '../identity/trust.js';
import { fingerprintOf, normalizeNodeId, NodeIdentity } from '../identity/identity.js';
import { PeerRegistry, type PeerInfo } from '../discovery/registry.js';
import { recordBytesFromHex } from '../discovery/record.js';
import { McpE2eError } from '../errors.js';
import { fingerprintDigits, looksLikeId, nameOf, resolvePeerName, type LocalPeers } from '../identity/names.js';
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

const ALLOWLIST = { what: 'allowlist', maxBytes: MAX_ALLOWLIST_FILE_BYTES };

/**
 * The peers this home knows: its allowlist (with the names given here), the
 * endpoints connect recorded, and the names nodes give themselves in their
 * records (claims, named in messages, never followed).
 */
export function localPeers(paths: HomePaths, allowList: PeerAllowList = PeerAllowList.fromFile(paths.allowedPeers)): LocalPeers {
  const registry = openRegistry(paths, allowList);
  const claims = registry.list().flatMap((p) => (p.name !== undefined ? [{ nodeId: p.nodeId, name: p.name }] : []));
  registry.close();
  return { allowed: allowList.entries(), known: new KnownPeersStore(paths.knownPeers).list(), claims };
}

/** The node id a person meant (names.ts); naming nothing known is a usage mistake. */
export function resolvePeer(text: string, peers: LocalPeers): string {
  try {
    return resolvePeerName(text, peers);
  } catch (err) {
    if (err instanceof McpE2eError && err.code === 'ERR_PEER_NOT_FOUND') throw new UsageError(err.message);
    throw err;
  }
}

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
  if (labelHasOption(name)) throw new UsageError('a name must not contain a word starting with command= (a per-peer command goes before the node id: edit the allowlist, see README)');
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
      // The entry keeps its command= option, if it has one: renaming changes the name only.
      return text.split(/\r?\n/).map((l) => (allowLineNodeId(l) === id ? formatAllowLine(id, { ...parseAllowLine(l, path)!, label }) : l)).join('\n');
    }
    outcome = 'added';
    const sep = text === '' || text.endsWith('\n') ? '' : '\n';
    return `${text}${sep}${line}\n`;
  });
  return outcome;
}

/** Remove a node id from an allowlist file (locked read-modify-write; other lines are kept as they are, even bad ones; its own bad lines go too). Returns false if it was not there. */
export function denyPeer(path: string, nodeId: string): boolean {
  const id = normalizeNodeId(nodeId);
  if (!id) throw new UsageError(`not a node id (64 hex digits): ${JSON.stringify(nodeId)}`);
  let removed = false;
  updateFileLocked(path, ALLOWLIST, (current) => {
    if (current === undefined) return undefined;
    const lines = current.toString('utf8').split(/\r?\n/);
    const kept = lines.filter((l) => allowLineNodeId(l) !== id);
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
      const id = fingerprintDigits(rest[0]) ? resolvePeer(rest[0], { allowed: [], known: peers.known ?? [] }) : rest[0];
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
      const registry = openRegistry(paths);
      const inRegistry = registry.forget(id);
      registry.close();
      const what = [...(endpoints.length ? [`the identity of ${endpoints.join(', ')}`] : []), ...(inRegistry ? [`node ${fingerprintOf(id)} (${paths.registry})`] : [])];
      out(what.length ? `forgot ${what.join(' and ')}` : `nothing is recorded of ${fingerprintOf(id)}`);
      return;
    }
    case 'add': {
      // A record (hex) as `mcp-e2e peers record` prints it on the peer, or a node id and its addresses.
      if (rest.length === 0) throw usage('add RECORD_HEX | NODE_ID URL...');
      const registry = openRegistry(paths);
      const id = normalizeNodeId(rest[0]!);
      let outcome;
      if (id) {
        if (rest.length < 2) throw usage('add NODE_ID URL... (ws:// or wss:// addresses)');
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
      out(`${outcome.change === 'new' ? 'added' : outcome.change === 'updated' ? 'updated' : 'already known:'} node ${outcome.nodeId} (fingerprint ${fingerprintOf(outcome.nodeId)})`);
      return;
    }
    case 'block':
    case 'unblock': {
      if (!rest[0] || rest.length > 1) throw usage(`${sub} PEER`);
      const id = resolvePeer(rest[0], localPeers(paths));
      const registry = openRegistry(paths);
      registry.setBlocked(id, sub === 'block');
      registry.close();
      out(`${sub === 'block' ? 'blocked' : 'unblocked'} node ${id}${sub === 'block' ? ': its records are dropped, it is never dialled, its connections are refused' : ''}`);
      return;
    }
    case 'record': {
      if (rest.length) throw usage('record');
      const registry = openRegistry(paths);
      const self = registry.selfNodeId ? registry.get(registry.selfNodeId) : undefined;
      if (!self?.record || self.recordExpired) throw new UsageError('no valid record of this node: `mcp-e2e serve --announce` makes one (and refreshes it while it runs)');
      out(json ? JSON.stringify({ ...self.record.toJSON(), record: self.record.toHex() }) : self.record.toHex());
      return;
    }
    case 'list':
    case undefined: {
      if (rest.length) throw usage('list');
      const allowList = PeerAllowList.fromFile(paths.allowedPeers);
      const allowed = allowList.entries();
      const known = new KnownPeersStore(paths.knownPeers).list();
      const peers = openRegistry(paths, allowList).list();
      const named = (id: string) => (nameOf(id, { allowed }) ? '  ' + safe(nameOf(id, { allowed })!) : '');
      if (json) {
        out(JSON.stringify({
          peers: peers.map(peerJson),
          allowed: allowed.map((p) => ({ node_id: p.nodeId, label: p.label, ...(p.command ? { command: p.command } : {}) })),
          known: known.map((k) => ({ endpoint: k.endpoint, node_id: k.nodeId, first_seen: k.firstSeen })),
        }));
        return;
      }
      out(`peer registry (${paths.registry}; NAME is what a node calls itself):`);
      if (peers.length === 0) out('  (none)');
      else for (const line of peersTable(peers)) out(`  ${line}`);
      out(`allowed peers (${paths.allowedPeers}):`);
      for (const p of allowed) out(`  ${p.nodeId}  ${fingerprintOf(p.nodeId)}${named(p.nodeId)}${p.command ? `  command=${safe(JSON.stringify(p.command))}` : ''}`);
      if (allowed.length === 0) out('  (none)');
      out(`known peers (${paths.knownPeers}):`);
      for (const k of known) out(`  ${safe(k.endpoint)}  ${k.nodeId}  ${fingerprintOf(k.nodeId)}${named(k.nodeId)}`);
      if (known.length === 0) out('  (none)');
      return;
    }
    default:
      throw new UsageError(`unknown peers command "${sub}"; use list, allow, deny, forget, add, block, unblock or record (see mcp-e2e peers --help)`);
  }
}
