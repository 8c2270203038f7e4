/**
 * Trust policies: which authenticated peers to accept. A handshake proves
 * that the peer holds the key behind its node id; a policy decides whether
 * that node id is welcome. Policies are synchronous and throw McpE2eError
 * `ERR_PEER_REJECTED` (unknown peer) or `ERR_PEER_KEY_CHANGED` (a pinned or
 * previously seen endpoint now presents another identity).
 */
import { isIP } from 'node:net';
import { McpE2eError } from '../errors.js';
import { readTrustedFile, updateFileLocked } from '../util/files.js';
import { assertKnownOptions, decodeVersionedPeers, hasExactKeys } from '../util/assert.js';
import { mappedIPv4 } from '../util/ip.js';
import { hasControlCharacters } from '../util/text.js';
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

/** Largest allowlist file read (bytes); a few thousand ids fit in a fraction of it. */
export const MAX_ALLOWLIST_FILE_BYTES = 1024 * 1024;

/**
 * One allowlist entry: the label (the name given here, possibly empty) and,
 * when the line has a `command=` option, the server command this peer gets
 * instead of the default one (argv, never run through a shell).
 */
export interface AllowListEntry {
  label: string;
  command?: readonly string[];
}

/** The line option that gives a peer its own server command (the authorized_keys `command=` idea). */
const COMMAND_OPTION = 'command=';
/** Most arguments a per-peer command may have (its program included). */
export const MAX_ALLOWLIST_COMMAND_ARGS = 256;
const bad = (where: string, why: string) => new McpE2eError('ERR_INVALID_NODE_ID', `${where}: ${why}`);
const COMMAND_EXAMPLE = 'command=["node","/srv/server.js","--read-only"] NODE_ID NAME';

/** True when some word of `label` starts with `command=` (an option put after the node id, where it would be a label). */
export function labelHasOption(label: string): boolean {
  return label.split(/\s+/).some((w) => w.startsWith(COMMAND_OPTION));
}

/**
 * The `command=` option at the start of `line` (leading whitespace already
 * trimmed): a JSON array (RFC 8259) of 1..MAX_ALLOWLIST_COMMAND_ARGS strings,
 * the first one (the program) not empty, none with a control character. The
 * array ends at the first `]` outside a string and is followed by whitespace.
 * @returns the argv and the rest of the line.
 */
function parseCommandOption(line: string, where: string): { command: string[]; rest: string } {
  const start = COMMAND_OPTION.length;
  if (line[start] !== '[') throw bad(where, `command= takes a JSON array of strings, run without a shell, e.g. ${COMMAND_EXAMPLE}`);
  // Only strings are allowed, so no nesting: the array ends at the first ] outside a string.
  let end = -1;
  let inString = false;
  for (let i = start + 1; i < line.length && end < 0; i++) {
    const c = line[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === ']') end = i;
  }
  if (end < 0) throw bad(where, 'the command= array does not end (no ] outside a string on this line)');
  let value: unknown;
  try {
    value = JSON.parse(line.slice(start, end + 1));
  } catch (err) {
    throw bad(where, `command= is not valid JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(value) || value.length === 0 || !value.every((a): a is string => typeof a === 'string')) {
    throw bad(where, `command= takes a non-empty array of strings, e.g. ${COMMAND_EXAMPLE}`);
  }
  if (value.length > MAX_ALLOWLIST_COMMAND_ARGS) throw bad(where, `command= has ${value.length} arguments, at most ${MAX_ALLOWLIST_COMMAND_ARGS} are allowed`);
  if (value[0] === '') throw bad(where, 'command= names no program (its first string is empty)');
  if (value.some(hasControlCharacters)) throw bad(where, 'command= contains a control character');
  const rest = line.slice(end + 1);
  if (!/^\s/.test(rest)) throw bad(where, `command=[...] must be followed by whitespace and the node id, e.g. ${COMMAND_EXAMPLE}`);
  return { command: value, rest };
}

/**
 * One allowlist line: `[command=JSON_ARRAY] NODE_ID [LABEL] [# comment]`, or
 * undefined for a blank or comment line. Strict: an option other than
 * `command=`, a second one, one after the node id, or a malformed array is
 * refused, never read as a label or skipped, so a line meant to restrict a
 * peer never gives it the default command instead.
 * @throws McpE2eError `ERR_INVALID_NODE_ID` naming `where` (file and line).
 */
export function parseAllowLine(raw: string, where: string): ({ nodeId: string } & AllowListEntry) | undefined {
  let line = raw.trimStart();
  let command: string[] | undefined;
  // The option comes first, before comments are cut: a # inside its strings is not a comment.
  if (line.startsWith(COMMAND_OPTION)) ({ command, rest: line } = parseCommandOption(line, where));
  line = line.replace(/#.*/, '').trim();
  if (!line) {
    if (command) throw bad(where, `command= must be followed by the node id it applies to, e.g. ${COMMAND_EXAMPLE}`);
    return undefined;
  }
  const [id, ...words] = line.split(/\s+/);
  const option = /^([A-Za-z][\w-]*)=/.exec(id!);
  if (option) {
    throw bad(where, option[1] === 'command' ? 'a second command= option (give one per line)' : `unknown option ${JSON.stringify(option[1] + '=')} (the only option is command=)`);
  }
  const nodeId = checkNodeId(id!, where);
  const label = words.join(' ');
  if (hasControlCharacters(label)) throw bad(where, 'the label contains a control character');
  if (labelHasOption(label)) throw bad(where, `options go before the node id: ${COMMAND_EXAMPLE}`);
  return { nodeId, label, ...(command ? { command } : {}) };
}

/** An allowlist line for `entry`, in the form `parseAllowLine` reads. */
export function formatAllowLine(nodeId: string, entry: AllowListEntry): string {
  return `${entry.command ? `${COMMAND_OPTION}${JSON.stringify(entry.command)} ` : ''}${nodeId}${entry.label ? ' ' + entry.label : ''}`;
}

/**
 * The node id an allowlist line is about, for editing the file (`peers
 * deny`): the parsed one, or for a line that does not parse, the first word
 * that is a node id (so that denying a peer also removes its broken lines).
 */
export function allowLineNodeId(raw: string): string | undefined {
  try {
    return parseAllowLine(raw, 'allowlist')?.nodeId;
  } catch {
    return raw.split(/\s+/).map(normalizeNodeId).find((id) => id !== undefined);
  }
}

/**
 * Every line of an allowlist that parses, the first line that does not, and
 * the node ids that a bad line names (the caller decides what a bad line
 * means: `parseAllowList` refuses the file, `PeerAllowList.reload` keeps only
 * removals).
 */
function parseAllowListLines(text: string, source: string): { ids: Map<string, AllowListEntry>; error: McpE2eError | undefined; tainted: Set<string> } {
  const ids = new Map<string, AllowListEntry>();
  const lineOf = new Map<string, number>();
  const tainted = new Set<string>();
  let error: McpE2eError | undefined;
  // Only the first bad line's error is reported: the others need no stack trace, whose capture
  // was most of the 2 s that 75,000 bad lines (1 MiB) took, on every reload of a running serve.
  const stackTraceLimit = Error.stackTraceLimit;
  try {
    parseLines();
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
  }
  return { ids, error, tainted };

  function parseLines(): void {
    text.split(/\r?\n/).forEach((raw, i) => {
      const where = `${source} line ${i + 1}`;
      try {
        const entry = parseAllowLine(raw, where);
        if (!entry) return;
        // Listed twice is fine (the last label wins), but not with two commands: which one would it get?
        const before = ids.get(entry.nodeId);
        if (before && JSON.stringify(before.command) !== JSON.stringify(entry.command)) {
          throw bad(where, `${fingerprintOf(entry.nodeId)} is already listed on line ${lineOf.get(entry.nodeId)} with another command; give each peer one line`);
        }
        ids.set(entry.nodeId, entry.command ? { label: entry.label, command: entry.command } : { label: entry.label });
        lineOf.set(entry.nodeId, i + 1);
      } catch (err) {
        error ??= err as McpE2eError;
        Error.stackTraceLimit = 0;
        // Every node id the bad line could mean, however it is glued to its neighbours.
        for (const m of raw.matchAll(/[0-9a-f]{64}/gi)) tainted.add(m[0].toLowerCase());
      }
    });
  }
}

/**
 * Parse an allowlist file: one node id per line; `#` starts a comment; text
 * after the node id (separated by whitespace) is a free-form label without
 * control characters. A line may start with `command=["PROGRAM","ARG",...]`
 * (a JSON array of strings, then whitespace): the server command this peer
 * gets (see `parseAllowLine`).
 * @returns node id → label (`parseAllowListEntries` gives the commands too).
 * @throws McpE2eError `ERR_INVALID_NODE_ID` naming the first bad line.
 */
export function parseAllowList(text: string, source = 'allowlist'): Map<string, string> {
  return new Map([...parseAllowListEntries(text, source)].map(([id, e]) => [id, e.label]));
}

/** `parseAllowList` with each entry's command. @throws as `parseAllowList`. */
export function parseAllowListEntries(text: string, source = 'allowlist'): Map<string, AllowListEntry> {
  const { ids, error } = parseAllowListLines(text, source);
  if (error) throw error;
  return ids;
}

/**
 * An allowlist of node ids; replaceable at run time (`set`, `reload`)
 * without a restart. Listeners (`onChange`) hear of every change: a server
 * uses that to close the connections of peers that were removed.
 */
export class PeerAllowList implements TrustPolicy {
  #ids = new Map<string, AllowListEntry>();
  readonly #listeners = new Set<() => void>();
  readonly path: string | undefined;

  constructor(entries: Iterable<string> = [], path?: string) {
    this.set(entries);
    this.path = path;
  }

  /**
   * Load from a file written in the `parseAllowList` format (a missing file
   * is an empty list), refusing a file other users could have written.
   * @throws McpE2eError `ERR_INVALID_NODE_ID` (a bad line), `ERR_FILE_PERMISSIONS`, `ERR_KEY_FILE_CORRUPT` (too large).
   */
  static fromFile(path: string): PeerAllowList {
    const list = new PeerAllowList([], path);
    list.reload();
    return list;
  }

  /**
   * Re-read the file this list came from. It fails closed: when the file
   * cannot be used (permissions, size, unreadable) the list becomes empty;
   * when some line is bad, only removals take effect (an id stays, as it
   * was, only if it was allowed before, still has a good line, no bad line
   * names it and its command is unchanged), additions wait until the file
   * is fixed. Either way the error is thrown afterwards, naming
   * the file (and the line).
   */
  reload(): void {
    if (!this.path) return;
    let text: string;
    try {
      text = readTrustedFile(this.path, MAX_ALLOWLIST_FILE_BYTES, 'allowlist')?.toString('utf8') ?? '';
    } catch (err) {
      this.#replace(new Map());
      throw err;
    }
    const { ids, error, tainted } = parseAllowListLines(text, this.path);
    if (!error) {
      this.#replace(ids);
      return;
    }
    // Fail closed: a peer stays as it was only if it was allowed, still has a good line, no bad
    // line names it, and its line gives it the same command (a dropped or conflicting command=
    // must never leave it on the default server command).
    const kept = new Map<string, AllowListEntry>();
    for (const [id, entry] of ids) {
      const before = this.#ids.get(id);
      if (before && !tainted.has(id) && JSON.stringify(before.command) === JSON.stringify(entry.command)) kept.set(id, before);
    }
    const removed = this.#ids.size - kept.size;
    this.#replace(kept);
    throw new McpE2eError(
      'ERR_INVALID_NODE_ID',
      `${error.message}; until the file is fixed no peer is added, and peers no longer listed are removed (${removed} removed, ${kept.size} still allowed)`,
      { cause: error },
    );
  }

  /** Replace the whole list. @throws McpE2eError `ERR_INVALID_NODE_ID` (nothing changes). */
  set(entries: Iterable<string>): void {
    const next = new Map<string, AllowListEntry>();
    for (const e of entries) next.set(checkNodeId(e, 'allowed peer'), { label: '' });
    this.#replace(next);
  }

  /**
   * Call `listener` after every change of the list.
   * @returns a function that removes the listener.
   */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  has(nodeId: string): boolean {
    return this.#ids.has(nodeId);
  }

  get size(): number {
    return this.#ids.size;
  }

  /** Each allowed node id with its label and, if the file gives it one, its own server command. */
  entries(): Array<{ nodeId: string; label: string; command?: readonly string[] }> {
    return [...this.#ids].map(([nodeId, e]) => ({ nodeId, ...e }));
  }

  /** The server command the file gives `nodeId` (its `command=` option), or undefined for the default one. */
  commandOf(nodeId: string): readonly string[] | undefined {
    return this.#ids.get(nodeId)?.command;
  }

  verify(peer: PeerIdentity): void {
    if (!this.#ids.has(peer.nodeId)) {
      throw new McpE2eError('ERR_PEER_REJECTED', `peer ${peer.fingerprint} (node id ${peer.nodeId}) is not on the allowlist`);
    }
  }

  #replace(next: Map<string, AllowListEntry>): void {
    this.#ids = next;
    for (const listener of this.#listeners) {
      try {
        listener();
      } catch {
        // One failing listener must not keep the others from hearing of the change.
      }
    }
  }
}

/**
 * The key of trust on first use for an endpoint `host:port`, so that one
 * address spelled several ways is one first use: the host as the WHATWG URL
 * parser writes it (lowercase, IPv4 in dotted decimal whatever the input
 * form, IPv6 compressed in brackets), an IPv4-mapped IPv6 address as its
 * IPv4 address, a host name without its trailing dot; the port in decimal.
 * Names are not resolved: `localhost` and `127.0.0.1` are two endpoints, as
 * in ssh's known_hosts (a name and an address are different claims).
 * @returns undefined when `text` is not `host:port` (or has control characters).
 */
export function normalizeEndpoint(text: string): string | undefined {
  if (hasControlCharacters(text) || /\s/.test(text)) return undefined;
  const m = /^(.+):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return undefined;
  let url: URL;
  try {
    url = new URL(`ws://${m[1]}/`);
  } catch {
    return undefined;
  }
  if (url.username || url.password || url.port || url.pathname !== '/' || url.search || url.hash) return undefined;
  let host = url.hostname;
  if (host.startsWith('[')) host = mappedIPv4(host.slice(1, -1)) ?? host;
  else if (host.endsWith('.') && !isIP(host.slice(0, -1))) host = host.slice(0, -1);
  if (!host) return undefined;
  return `${host}:${port}`;
}

interface KnownPeer {
  node_id: string;
  first_seen: string;
}

/** Options of `KnownPeersStore`. */
export interface KnownPeersOptions {
  /**
   * Refuse an endpoint with no recorded identity (`ERR_PEER_REJECTED`)
   * instead of recording the first one seen: only endpoints recorded
   * before (or by `remember`) are accepted. Default false.
   */
  strict?: boolean;
  /** Called after the identity of a new endpoint was recorded (the first use), e.g. to tell a person which fingerprint was trusted. What it throws is ignored. */
  onFirstUse?: (endpoint: string, peer: PeerIdentity) => void;
}

const KNOWN_PEERS_OPTION_NAMES = { strict: true, onFirstUse: true } as const satisfies Record<keyof KnownPeersOptions, true>;

const KNOWN_PEERS_VERSION = 1;
const MAX_KNOWN_PEERS_FILE_BYTES = 4 * 1024 * 1024;
const KNOWN_PEERS = 'known peers file';

/**
 * Known peers with trust on first use, keyed by endpoint (`host:port`,
 * normalised by `normalizeEndpoint`), as ssh's known_hosts: the first
 * identity seen at an endpoint is recorded; a different one later is refused
 * loudly with `ERR_PEER_KEY_CHANGED`.
 *
 * The file is the only state: every lookup reads it, and every change locks
 * it, re-reads it, changes one entry and writes it atomically
 * (`updateFileLocked`), so several processes sharing a home (an MCP host
 * starting several `connect`s) keep each other's first uses, and a running
 * process never undoes a `peers forget`. The file and its directory must
 * not be writable by other users (ssh's StrictModes).
 */
export class KnownPeersStore implements TrustPolicy {
  readonly path: string;
  readonly #options: KnownPeersOptions;

  /**
   * @throws McpE2eError `ERR_KEY_FILE_CORRUPT`, `ERR_FILE_PERMISSIONS` (checked at once, so a bad file is reported before any connection).
   * @throws TypeError for an unknown option.
   */
  constructor(path: string, options: KnownPeersOptions = {}) {
    assertKnownOptions(options, KNOWN_PEERS_OPTION_NAMES, 'KnownPeersStore');
    this.path = path;
    this.#options = options;
    this.#read();
  }

  #parse(bytes: Buffer | undefined): Record<string, KnownPeer> {
    if (bytes === undefined) return {};
    const corrupt = (why: string) => new McpE2eError('ERR_KEY_FILE_CORRUPT', `known peers file ${this.path} is corrupt: ${why}`);
    const peers = decodeVersionedPeers(bytes.toString('utf8'), KNOWN_PEERS_VERSION, corrupt);
    const out: Record<string, KnownPeer> = Object.create(null) as Record<string, KnownPeer>;
    for (const [endpoint, entry] of Object.entries(peers)) {
      const key = normalizeEndpoint(endpoint);
      if (!key || !hasExactKeys(entry, ['node_id', 'first_seen']) || !isNodeId(entry.node_id) || typeof entry.first_seen !== 'string' || hasControlCharacters(entry.first_seen)) {
        throw corrupt(`bad entry for ${JSON.stringify(endpoint.slice(0, 100))}`);
      }
      if (out[key] && out[key].node_id !== entry.node_id) throw corrupt(`two entries for ${key} with different node ids`);
      out[key] ??= { node_id: entry.node_id, first_seen: entry.first_seen };
    }
    return out;
  }

  #read(): Record<string, KnownPeer> {
    return this.#parse(readTrustedFile(this.path, MAX_KNOWN_PEERS_FILE_BYTES, KNOWN_PEERS));
  }

  /** Lock, re-read, let `edit` change the entries (return false to leave the file alone), write. */
  #update(edit: (peers: Record<string, KnownPeer>) => boolean): void {
    updateFileLocked(this.path, { what: KNOWN_PEERS, maxBytes: MAX_KNOWN_PEERS_FILE_BYTES }, (current) => {
      const peers = this.#parse(current);
      if (!edit(peers)) return undefined;
      return JSON.stringify({ version: KNOWN_PEERS_VERSION, peers: { ...peers } }, null, 2) + '\n';
    });
  }

  #key(endpoint: string): string {
    const key = normalizeEndpoint(endpoint);
    if (!key) throw new McpE2eError('ERR_PEER_REJECTED', `not an endpoint (host:port): ${JSON.stringify(endpoint.slice(0, 100))}`);
    return key;
  }

  /** The node id recorded for `endpoint`, if any. */
  get(endpoint: string): string | undefined {
    const key = normalizeEndpoint(endpoint);
    return key === undefined ? undefined : this.#read()[key]?.node_id;
  }

  list(): Array<{ endpoint: string; nodeId: string; firstSeen: string }> {
    return Object.entries(this.#read()).map(([endpoint, p]) => ({ endpoint, nodeId: p.node_id, firstSeen: p.first_seen }));
  }

  /** Record (or replace) the identity of an endpoint. */
  remember(endpoint: string, nodeId: string): void {
    const key = this.#key(endpoint);
    const node_id = checkNodeId(nodeId, 'known peer');
    this.#update((peers) => {
      peers[key] = { node_id, first_seen: new Date().toISOString() };
      return true;
    });
  }

  /** Forget an endpoint; returns whether it was known. */
  forget(endpoint: string): boolean {
    const key = normalizeEndpoint(endpoint);
    if (key === undefined) return false;
    let known = false;
    this.#update((peers) => {
      known = peers[key] !== undefined;
      delete peers[key];
      return known;
    });
    return known;
  }

  verify(peer: PeerIdentity, context: TrustContext = {}): void {
    const endpoint = context.endpoint;
    if (!endpoint) throw new McpE2eError('ERR_PEER_REJECTED', 'trust on first use needs the endpoint the peer was reached at');
    const key = this.#key(endpoint);
    let known = this.#read()[key]?.node_id;
    if (known === undefined) {
      if (this.#options.strict) {
        throw new McpE2eError('ERR_PEER_REJECTED', `no identity is recorded for ${key}, and unknown servers are refused (strict); it presented ${peer.fingerprint} (node id ${peer.nodeId})`);
      }
      // First use, decided under the lock: another process may have recorded this endpoint meanwhile.
      this.#update((peers) => {
        known = peers[key]?.node_id;
        if (known !== undefined) return false;
        peers[key] = { node_id: peer.nodeId, first_seen: new Date().toISOString() };
        return true;
      });
      if (known === undefined) {
        try {
          this.#options.onFirstUse?.(key, peer);
        } catch {
          // A listener's failure must not turn a recorded first use into a refusal.
        }
        return;
      }
    }
    if (known !== peer.nodeId) {
      throw new McpE2eError(
        'ERR_PEER_KEY_CHANGED',
        `WARNING: the identity of ${key} has changed! Known ${fingerprintOf(known)}, now presented ${peer.fingerprint} ` +
          `(node id ${peer.nodeId}). This may be an attack. If the change is expected, forget the old identity ` +
          `(mcp-e2e peers forget ${key}) and connect again.`,
      );
    }
  }
}
