/**
 * `mcp-e2e serve -- COMMAND [ARGS...]`: listen for encrypted MCP connections
 * and, for each authenticated peer, spawn the stdio MCP server COMMAND and
 * relay JSON-RPC both ways. One child per connection: it ends when its
 * connection ends, and the connection ends when it exits.
 *
 * The server runs inside a mesh node (src/mesh/node.ts): every authenticated
 * peer is recorded in the peer registry as verified, and sessions carry the
 * nodes' records. With `--announce`, this node makes and refreshes its own
 * signed record (its listening URLs or `--public-url`s, `--name`).
 */
import { existsSync, statSync, unwatchFile, watchFile, type Stats } from 'node:fs';
import { McpE2eError } from '../errors.js';
import { PeerAllowList } from '../identity/trust.js';
import { MeshNode, type MeshServerOptions } from '../mesh/node.js';
import { createGossipSources, type GossipSource } from '../discovery/sources/gossip.js';
import { isRecordAddress } from '../discovery/record.js';
import { MdnsSource } from '../discovery/sources/mdns.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../protocol.js';
import { DEFAULT_MAX_CONNECTIONS_PER_PEER } from '../transport/limits.js';
import { nameOf } from '../identity/names.js';
import { fingerprintOf } from '../identity/identity.js';
import { childEnvironment, commandProblem, killAllChildren, peerEnvironment, stopWatchdog, type ChildServer } from './child.js';
import { loadIdentity, type HomePaths } from './home.js';
import type { Values } from './commands.js';
import { summarizing, type Logger } from './log.js';
import { ALLOWLIST_POLL_MS, DEFAULT_SERVE_MAX_CONNECTIONS, REFUSAL_LOG_INTERVAL_MS, REFUSALS_LOGGED_PER_INTERVAL } from './limits.js';
import { markServeRunning } from './running.js';
import { serveConnection } from './serve-connection.js';
import { UsageError } from './usage.js';

export const DEFAULT_PORT = 8765;
/** How long `serve` waits for connections and children to end after SIGINT/SIGTERM (ms). */
const SHUTDOWN_GRACE_MS = 5000;
/** How often the identity file is checked for a replacement (ms); only a warning depends on it. */
const IDENTITY_POLL_MS = 2000;

function parseCount(value: string | undefined, fallback: number, flag: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 2 ** 24) throw new UsageError(`${flag} expects a number 1..${2 ** 24}, got ${JSON.stringify(value)}`);
  return n;
}

/** `--host`: an address or name without a port (`0.0.0.0:8765` is a common slip). */
function parseHost(value: string | undefined): string {
  if (value === undefined) return '127.0.0.1';
  const withPort = /^(\[[^\]]*\]|[^:]*):(\d+)$/.exec(value);
  if (withPort) throw new UsageError(`--host takes an address without a port: use --host ${withPort[1]!.replace(/^\[(.*)\]$/, '$1')} --port ${withPort[2]}`);
  return value.replace(/^\[(.*)\]$/, '$1');
}

function parsePort(value: string | undefined): number {
  if (value === undefined) return DEFAULT_PORT;
  const port = Number(value);
  if (!/^\d+$/.test(value) || port > 65535) throw new UsageError(`--port expects a number 0..65535, got ${JSON.stringify(value)}`);
  return port;
}

export async function serveCommand(values: Values, command: string[], paths: HomePaths, log: Logger): Promise<number> {
  if (command.length === 0) throw new UsageError('serve needs the stdio MCP server to run after --, e.g. mcp-e2e serve -- node server.js');
  if (values['allow-any-peer'] && values.allow) throw new UsageError('--allow and --allow-any-peer contradict each other; give one');
  const port = parsePort(values.port);
  const host = parseHost(values.host);
  const identity = loadIdentity(paths);
  // The default allowlist may not exist yet (nobody allowed); a file named on the command line must.
  if (values.allow !== undefined && !existsSync(values.allow)) {
    throw new UsageError(`--allow ${values.allow}: no such file (create it with one node id per line, or leave --allow out to use ${paths.allowedPeers})`);
  }
  const allowPath = values.allow ?? paths.allowedPeers;
  // Taken before the file is read: an edit made while serve starts, before the
  // file is watched, is a change seen once the watch begins (see below).
  const loadedStat = fileStamp(allowPath);
  const allowList = values['allow-any-peer'] ? undefined : PeerAllowList.fromFile(allowPath);
  if (values['allow-any-peer'] && existsSync(allowPath)) {
    // --allow-any-peer does not read the allowlist: a peer it restricts with command= would get the default server.
    const restricted = PeerAllowList.fromFile(allowPath).entries().filter((e) => e.command);
    if (restricted.length) {
      throw new UsageError(`--allow-any-peer would give the default server command to the ${restricted.length} peer(s) that ${allowPath} restricts with command= (${restricted.map((e) => e.label || fingerprintOf(e.nodeId)).join(', ')}); serve them with the allowlist instead, or remove their command= lines`);
    }
  }
  if (!values.announce && (values.name !== undefined || values['public-url'] !== undefined)) throw new UsageError('--name and --public-url describe the record of --announce; add --announce');
  for (const u of values['public-url'] ?? []) {
    if (!isRecordAddress(u)) throw new UsageError(`--public-url ${JSON.stringify(u)} is not an address a record can carry: ws:// or wss://, lowercase host, no query or fragment`);
  }

  if (!values.announce && values['no-mdns']) throw new UsageError('--no-mdns goes with --announce');
  // `--announce` is heard on the local network unless --no-mdns (PROTOCOL.md §13.11).
  const mdns = values.announce && !values['no-mdns'] ? new MdnsSource({ name: values.name, onWarning: (message, fields) => log.debug(message, fields) }) : undefined;

  let nextId = 1;
  const children = new Set<ChildServer>();
  /** Sessions of peers whose server process was started, with the command it runs (closed when the allowlist changes it). */
  const running = new Set<{ nodeId: string; command: readonly string[]; close: () => void; log: Logger }>();
  // Gossip (issue 13): with --bootstrap, or --announce, records are gossiped. Then any authenticated
  // peer may hold a session (gossip has its own membership policy) while MCP stays the allowlist's,
  // checked at every MCP message, and a server process starts with the first MCP message only
  // (a session that only gossips costs no process).
  const gossiping = values.announce === true || (values.bootstrap?.length ?? 0) > 0;
  let sources;
  try {
    sources = gossiping ? createGossipSources({ ...gossipOptions(values), identity }) : undefined;
  } catch (err) {
    throw new UsageError(`--bootstrap: ${(err as Error).message}`);
  }
  const ours = values['pass-env']?.find((name) => name.toUpperCase().startsWith('MCP_E2E_'));
  if (ours !== undefined) throw new UsageError(`--pass-env ${ours}: mcp-e2e's own variables never reach the server process (it gets MCP_E2E_PEER_* from serve, saying who is calling)`);
  const env = childEnvironment(process.env, { clean: values['clean-env'] ?? false, pass: values['pass-env'] ?? [] });
  // A server that cannot start would only fail each connection later, where its operator does not look.
  const problem = commandProblem(command[0]!, env);
  if (problem) throw new UsageError(`cannot run the MCP server ${JSON.stringify(command[0])}: ${problem}`);
  const peerProblems = allowList ? peerCommandProblems(allowList, env) : [];
  if (peerProblems.length) throw new UsageError(peerProblems[0]!);
  // A stranger can make us refuse connections at will: a few lines per interval, then a summary.
  const refusal = summarizing(log, { burst: REFUSALS_LOGGED_PER_INTERVAL, intervalMs: REFUSAL_LOG_INTERVAL_MS, what: 'connections refused' });
  const server: MeshServerOptions = {
    port,
    host,
    ...(allowList && !gossiping ? { allowedPeers: allowList } : { allowAnyPeer: true }),
    allowPlaintext: values['allow-plaintext'] ?? false,
    allowedOrigins: values['allow-origin'] ?? [],
    limits: {
      maxConnections: parseCount(values['max-connections'], DEFAULT_SERVE_MAX_CONNECTIONS, '--max-connections'),
      maxConnectionsPerPeer: parseCount(values['max-connections-per-peer'], DEFAULT_MAX_CONNECTIONS_PER_PEER, '--max-connections-per-peer'),
    },
    onConnection: async (transport, peer) => {
      const clog = log.child({ conn: nextId++ });
      const nameHere = () => (peer && allowList ? nameOf(peer.nodeId, { allowed: allowList.entries() }) : undefined);
      const name = nameHere();
      clog.info(peer ? `peer ${name ? `${JSON.stringify(name)} (${peer.fingerprint})` : peer.fingerprint} connected` : 'plaintext client connected', peer ? { node_id: peer.nodeId } : {});
      await serveConnection(transport, peer, {
        launch: () => {
          // The allowlist's command= for this peer, as authorized_keys' command=, else the one after --.
          const own = peer ? allowList?.commandOf(peer.nodeId) : undefined;
          if (own) clog.info(`starting the server command ${allowPath} gives this peer (${JSON.stringify(own[0])}), not the one after --`);
          if (peer) {
            const session = { nodeId: peer.nodeId, command: own ?? command, close: () => void transport.close(), log: clog };
            running.add(session);
            void transport.whenClosed().then(() => running.delete(session));
          }
          // Who is calling, for the server to decide what this caller may do (one process per connection).
          return { command: own ?? command, env: { ...env, ...peerEnvironment(peer, nameHere()) } };
        },
        maxLineBytes: DEFAULT_MAX_MESSAGE_BYTES,
        shareStderr: values['share-stderr'] ?? false,
        log: clog,
        track: (child, gone) => void (gone ? children.delete(child) : children.add(child)),
        lazy: gossiping,
        refuse: () =>
          gossiping && allowList && peer && !allowList.has(peer.nodeId) ? `peer ${peer.fingerprint} is not on the allowlist: MCP refused (a mesh session is not MCP access)` : undefined,
      });
    },
    onError: (err, info) => {
      const code = err instanceof McpE2eError ? err.code : undefined;
      if (info.peer && code === 'ERR_PEER_REJECTED') {
        // Revocation of a live session (the allowlist changed): always logged.
        log.warn(`connection of ${info.peer.fingerprint} closed: ${err.message}`, { code, node_id: info.peer.nodeId });
        return;
      }
      refusal('warn', `connection from ${info.remoteAddress ?? 'unknown'} refused: ${err.message}`, code ? { code } : {});
    },
  };
  const announce = values.announce ? { ...(values.name !== undefined ? { name: values.name } : {}), ...(values['public-url'] ? { publicUrls: values['public-url'] } : {}) } : false;
  let mesh: MeshNode;
  try {
    mesh = new MeshNode({
      identity,
      server,
      announce,
      registry: { path: paths.registry },
      ...(allowList ? { allowList } : {}),
      sources: [...(sources ? [sources.bootstrap, sources.gossip] : []), ...(mdns ? [mdns] : [])],
      log: (level, msg, fields) => log[level](msg, fields),
    });
  } catch (err) {
    if (err instanceof RangeError) throw new UsageError(`cannot announce that: ${err.message.replace(/"(name|addresses)"/, (_, f: string) => (f === 'name' ? '--name' : '--public-url'))}`);
    throw err;
  }

  try {
    await mesh.start();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE') throw new UsageError(`port ${port} on ${host} is already in use; choose another with --port`);
    if (e.code === 'EADDRNOTAVAIL') throw new UsageError(`cannot listen on ${host}: not an address of this machine; give --host one of its addresses, or 0.0.0.0 (::) for all`);
    if (e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN') throw new UsageError(`cannot listen on ${host}: no such host name; give --host an address of this machine, or 0.0.0.0 (::) for all`);
    if (e.code === 'EACCES') throw new UsageError(`not allowed to listen on port ${port}; use a port above 1023`);
    throw err;
  }
  const address = mesh.address!;
  const url = `ws://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  log.info(`listening on ${url} as node ${identity.nodeId}; clients pin it with: mcp-e2e connect ws://HOST:${address.port} --peer ${identity.nodeId}`, { url, node_id: identity.nodeId });
  if (allowList && allowList.size === 0) {
    log.warn(`no peer is allowed yet: add one with \`mcp-e2e peers allow NODE_ID\` (${allowPath} is re-read when it changes)`);
  }
  if (values['allow-any-peer']) log.warn('--allow-any-peer: every client that completes the handshake is accepted');
  if (values['allow-plaintext']) log.warn('--allow-plaintext: plain MCP clients are accepted without encryption or authentication');
  markServeRunning(paths.home, url);
  // keygen --force refuses while we run; anything else that replaces the key file is worth a warning.
  watchFile(paths.identity, { interval: IDENTITY_POLL_MS }, (now, before) => {
    if (now.mtimeMs === before.mtimeMs && now.ino === before.ino) return;
    log.warn(`${paths.identity} changed; this serve goes on as node ${identity.nodeId} until it is restarted`);
  });
  const record = mesh.record;
  if (values.announce && record) {
    log.info(`announcing ${record.name !== undefined ? JSON.stringify(record.name) + ' ' : ''}at ${record.addresses.join(' ') || '(no address)'}`, { addresses: record.addresses, seq: record.seq });
  }

  let status: NodeJS.Timeout | undefined;
  if (sources) {
    log.info(`gossip: ${sources.bootstrap.entries.length} bootstrap peer(s), with ${values['open-mesh'] ? 'every authenticated peer (open mesh)' : 'allowed and bootstrap peers'}`);
    const every = parseSeconds(values['status-interval'], 60, '--status-interval');
    const gossip = sources.gossip;
    status = setInterval(() => log.info(statusLine(mesh, gossip), statusFields(mesh, gossip)), every * 1000);
    status.unref();
  if (mdns) {
    log.info(`announced on the local network as "${mdns.instanceName}"`, { instance: mdns.instanceName, addresses: mesh.record?.addresses });
    if (address.address.startsWith('127.') || address.address === '::1') log.warn(`listening on ${address.address} only: announced to this machine alone; --host 0.0.0.0 to be found on the network`);
  }
  }

  if (allowList) {
    // The allowlist is re-read when the file changes and on SIGHUP, without a
    // restart; the server closes the sessions of peers no longer on it.
    const reload = () => {
      try {
        allowList.reload();
        log.info(`allowlist reloaded: ${allowList.size} peer(s)`);
      } catch (err) {
        // reload() failed closed (removals applied, nothing added); the message names the file and line.
        log.error(`allowlist not fully reloaded: ${(err as Error).message}`, err instanceof McpE2eError ? { code: err.code } : {});
      }
      // Such a peer's connections would each fail at start: say so now, where the operator looks.
      for (const p of peerCommandProblems(allowList, env)) log.error(p);
    };
    // watchFile also calls back once for a file that does not exist (both
    // stats zero); only a real change is a reason to reload and say so.
    watchFile(allowPath, { interval: ALLOWLIST_POLL_MS }, (now, before) => {
      if (stampOf(now) !== stampOf(before)) reload();
    });
    process.on('SIGHUP', reload);
    // A peer whose command= was added, changed or dropped must not go on with the
    // process its old line gave it (a restriction added for a connected peer would
    // otherwise wait for its next connection): its session ends, and the next one
    // starts what the file says now. Peers removed from the list are closed by the
    // server itself (ERR_PEER_REJECTED), except in a mesh, where the server admits
    // every peer for gossip and MCP is refused per message: there, a removed peer's
    // session is closed here, or its server process would go on answering it.
    allowList.onChange(() => {
      for (const s of running) {
        const now = allowList.has(s.nodeId) ? (allowList.commandOf(s.nodeId) ?? command) : undefined;
        if (now && JSON.stringify(now) === JSON.stringify(s.command)) continue;
        if (!now && !gossiping) continue;
        running.delete(s);
        s.log.warn(
          now
            ? `the server command ${allowPath} gives this peer changed; closing its session (its next connection starts ${JSON.stringify(now[0])})`
            : `this peer is no longer on ${allowPath}; closing its session and its server process`,
          { node_id: s.nodeId },
        );
        s.close();
      }
    });
    // Last, once the listener above hears it: an edit made while serve started.
    if (fileStamp(allowPath) !== loadedStat) reload();
  }

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info(`${signal}: shutting down`);
      unwatchFile(allowPath);
      unwatchFile(paths.identity);
      clearInterval(status);
      // Closing the server closes every connection, which terminates every child.
      const force = setTimeout(() => {
        log.error(`connections did not close within ${SHUTDOWN_GRACE_MS} ms; killing their server processes`);
        killAllChildren();
        resolve(1);
      }, SHUTDOWN_GRACE_MS);
      force.unref();
      void mesh
        .stop()
        .then(() => Promise.all([...children].map((c) => c.terminate())))
        .then(() => {
          clearTimeout(force);
          stopWatchdog();
          resolve(0);
        });
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
    // Last resort: never leave a child behind, whatever path ends this process.
    process.on('exit', killAllChildren);
  });
}

/** What tells one version of a file from another: its modification time, inode and size. */
function stampOf(st: Stats): string {
  return `${st.mtimeMs} ${st.ino} ${st.size}`;
}

/** The stamp of the file at `path` now, or "none". */
function fileStamp(path: string): string {
  const st = statSync(path, { throwIfNoEntry: false });
  return st ? stampOf(st) : 'none';
}

/** Why the per-peer commands of `allowList` (its `command=` options) cannot be run, one line each. */
function peerCommandProblems(allowList: PeerAllowList, env: NodeJS.ProcessEnv): string[] {
  return allowList.entries().flatMap(({ nodeId, label, command }) => {
    const problem = command && commandProblem(command[0]!, env);
    return problem ? [`cannot run the MCP server ${JSON.stringify(command[0])} that ${allowList.path} gives ${label ? JSON.stringify(label) : fingerprintOf(nodeId)}: ${problem}`] : [];
  });
}

/** Seconds from an option, a positive number. */
function parseSeconds(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!(n > 0) || !Number.isFinite(n)) throw new UsageError(`${name} expects a number of seconds above 0, got ${JSON.stringify(value)}`);
  return n;
}

/** The gossip options of `serve`: bootstrap entries, membership, and intervals (shortened in tests). */
function gossipOptions(values: Values) {
  const ms = (v: string | undefined, name: string) => (v === undefined ? undefined : Math.round(parseSeconds(v, 0, name) * 1000));
  const round = ms(values['gossip-interval'], '--gossip-interval');
  const antiEntropy = ms(values['anti-entropy-interval'], '--anti-entropy-interval');
  const target = values['mesh-target'] === undefined ? undefined : Number(values['mesh-target']);
  if (target !== undefined && !(Number.isInteger(target) && target >= 0 && target <= 64)) throw new UsageError(`--mesh-target expects 0..64, got ${JSON.stringify(values['mesh-target'])}`);
  return {
    bootstrap: values.bootstrap ?? [],
    trustOnFirstUse: values['bootstrap-tofu'] ?? false,
    open: values['open-mesh'] ?? false,
    ...(target !== undefined ? { target } : {}),
    gossip: { ...(round ? { gossipIntervalMs: round } : {}), ...(antiEntropy ? { antiEntropyIntervalMs: antiEntropy } : {}) },
  };
}

function statusFields(node: MeshNode, gossip: GossipSource): Record<string, unknown> {
  const s = gossip.status();
  const c = s?.counters;
  return {
    mesh_sessions: node.sessions.length,
    gossip_peers: s?.peers.length ?? 0,
    records: s?.records ?? 0,
    messages_in: c?.messagesIn ?? 0,
    messages_out: c?.messagesOut ?? 0,
    records_accepted: c?.recordsAccepted ?? 0,
    records_refused: c?.recordsRefused ?? 0,
    exchanges: c?.exchangesCompleted ?? 0,
    cutoffs: c?.cutoffs ?? 0,
  };
}

function statusLine(node: MeshNode, gossip: GossipSource): string {
  const f = statusFields(node, gossip);
  return `mesh: ${f.mesh_sessions} session(s), gossip with ${f.gossip_peers}, ${f.records} record(s); messages ${f.messages_in} in / ${f.messages_out} out; records ${f.records_accepted} accepted / ${f.records_refused} refused; ${f.exchanges} exchange(s); ${f.cutoffs} cut off`;
}
