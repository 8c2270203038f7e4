/**
 * `mcp-e2e serve -- COMMAND [ARGS...]`: listen for encrypted MCP connections
 * and, for each authenticated peer, spawn the stdio MCP server COMMAND and
 * relay JSON-RPC both ways. One child per connection: it ends when its
 * connection ends, and the connection ends when it exits.
 *
 * With `--announce` or `--bootstrap` the endpoint is a mesh node
 * (src/mesh/node.ts) that publishes its record and gossips (issue 13): any
 * authenticated peer may hold a session, and gossip decides by its own
 * membership policy; MCP stays the allowlist's decision, and a child starts
 * only with the first MCP message of an allowed peer (mesh sessions that
 * only gossip cost no process).
 */
import { unwatchFile, watchFile } from 'node:fs';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { McpE2eError } from '../errors.js';
import { PeerAllowList } from '../identity/trust.js';
import { EncryptedWebSocketServer } from '../transport/server.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../protocol.js';
import { MeshNode } from '../mesh/node.js';
import { createGossipSources } from '../discovery/sources/gossip.js';
import type { EncryptedWebSocketServerTransport } from '../transport/server-transport.js';
import type { PeerIdentity } from '../identity/identity.js';
import { killAllChildren, spawnChild, type ChildServer } from './child.js';
import type { HomePaths } from './home.js';
import type { Logger } from './log.js';
import { loadIdentity, type Values } from './main.js';
import { UsageError } from './usage.js';

export const DEFAULT_PORT = 8765;
/** How long `serve` waits for connections and children to end after SIGINT/SIGTERM (ms). */
const SHUTDOWN_GRACE_MS = 5000;

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
  const host = values.host ?? '127.0.0.1';
  const identity = loadIdentity(paths);
  const allowPath = values.allow ?? paths.allowedPeers;
  const allowList = values['allow-any-peer'] ? undefined : PeerAllowList.fromFile(allowPath);
  if (allowList && allowList.size === 0) {
    log.warn(`no peer is allowed yet: add one with \`mcp-e2e peers allow NODE_ID\` (${allowPath} is re-read when it changes)`);
  }
  if (values['allow-any-peer']) log.warn('--allow-any-peer: every client that completes the handshake is accepted');
  if (values['allow-plaintext']) log.warn('--allow-plaintext: plain MCP clients are accepted without encryption or authentication');

  let nextId = 1;
  const children = new Set<ChildServer>();
  const mesh = values.announce === true || (values.bootstrap?.length ?? 0) > 0;
  /** One connection: a child for it (at once, or in mesh mode with the first MCP message of an allowed peer). */
  const onConnection = async (transport: EncryptedWebSocketServerTransport, peer: PeerIdentity | undefined) => {
    const clog = log.child({ conn: nextId++ });
    clog.info(peer ? `peer ${peer.fingerprint} connected` : 'plaintext client connected', peer ? { node_id: peer.nodeId } : {});
    let child: ChildServer | undefined;
    const startChild = () => {
      const c = spawnChild(command, clog, (msg) => {
        transport.send(msg as JSONRPCMessage).catch((err: Error) => clog.debug('send to peer failed', { error: err.message }));
      }, DEFAULT_MAX_MESSAGE_BYTES);
      children.add(c);
      void c.exited.then((how) => {
        children.delete(c);
        clog.info(`server process ${how}`);
        void transport.close();
      });
      return c;
    };
    if (!mesh) child = startChild();
    transport.onmessage = (msg) => {
      if (!child) {
        if (allowList && peer && !allowList.has(peer.nodeId)) {
          clog.warn(`peer ${peer.fingerprint} is not on the allowlist: MCP refused (mesh sessions are not MCP access)`, { node_id: peer.nodeId, code: 'ERR_PEER_REJECTED' });
          void transport.close();
          return;
        }
        child = startChild();
      }
      child.send(msg);
    };
    transport.onerror = (err) => clog.warn(err.message, err instanceof McpE2eError ? { code: err.code } : {});
    transport.onclose = () => {
      clog.info(child ? 'connection closed; stopping its server process' : 'connection closed');
      void child?.terminate();
    };
    // Messages flow to onmessage only once started (as McpServer.connect would do).
    await transport.start();
  };
  const onError = (err: Error, info: { remoteAddress?: string | undefined }) => {
    const code = err instanceof McpE2eError ? err.code : undefined;
    log.warn(`connection from ${info.remoteAddress ?? 'unknown'} refused: ${err.message}`, code ? { code } : {});
  };
  const common = { identity, allowPlaintext: values['allow-plaintext'] ?? false, onConnection, onError };
  const server = mesh ? undefined : new EncryptedWebSocketServer({ ...common, ...(allowList ? { allowedPeers: allowList } : { allowAnyPeer: true }) });
  let sources;
  try {
    sources = mesh ? createGossipSources({ ...gossipOptions(values), identity }) : undefined;
  } catch (err) {
    throw new UsageError(`--bootstrap: ${(err as Error).message}`);
  }
  const node = sources
    ? new MeshNode({
        identity,
        registry: { path: paths.peers },
        ...(allowList ? { allowList } : {}),
        announce: values.announce ? { ...(values.name ? { name: values.name } : {}) } : false,
        server: { ...common, allowAnyPeer: true, port, host },
        sources: [sources.bootstrap, sources.gossip],
        log: (level, message, fields) => log[level](message, fields),
      })
    : undefined;

  let address;
  try {
    if (node) {
      await node.start();
      address = node.address!;
    } else address = await server!.listen(port, host);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE') throw new UsageError(`port ${port} on ${host} is already in use; choose another with --port`);
    if (e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND') throw new UsageError(`cannot listen on ${host}: no such local address; use --host`);
    if (e.code === 'EACCES') throw new UsageError(`not allowed to listen on port ${port}; use a port above 1023`);
    throw err;
  }
  const url = `ws://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  log.info(`listening on ${url} as ${identity.fingerprint}`, { url, node_id: identity.nodeId });
  let status: NodeJS.Timeout | undefined;
  if (node && sources) {
    log.info(`mesh node: ${values.announce ? 'announcing' : 'not announcing'}, ${sources.bootstrap.entries.length} bootstrap peer(s), gossip with ${values['open-mesh'] ? 'every authenticated peer (open mesh)' : 'allowed and bootstrap peers'}`);
    const every = parseSeconds(values['status-interval'], 60, '--status-interval');
    status = setInterval(() => log.info(statusLine(node, sources.gossip), statusFields(node, sources.gossip)), every * 1000);
    status.unref();
  }

  if (allowList) {
    // The allowlist is re-read when the file changes and on SIGHUP, without a restart.
    const reload = () => {
      try {
        allowList.reload();
        log.info(`allowlist reloaded: ${allowList.size} peer(s)`);
      } catch (err) {
        log.error(`allowlist not reloaded, the previous one stays in force: ${(err as Error).message}`);
      }
    };
    watchFile(allowPath, { interval: 1000 }, reload);
    process.on('SIGHUP', reload);
  }

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info(`${signal}: shutting down`);
      unwatchFile(allowPath);
      clearInterval(status);
      // Closing the server closes every connection, which terminates every child.
      const force = setTimeout(() => {
        log.error(`connections did not close within ${SHUTDOWN_GRACE_MS} ms; killing their server processes`);
        killAllChildren();
        resolve(1);
      }, SHUTDOWN_GRACE_MS);
      force.unref();
      void (node ? node.stop() : server!.close())
        .then(() => Promise.all([...children].map((c) => c.terminate())))
        .then(() => {
          clearTimeout(force);
          resolve(0);
        });
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
    // Last resort: never leave a child behind, whatever path ends this process.
    process.on('exit', killAllChildren);
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

function statusFields(node: MeshNode, gossip: ReturnType<typeof createGossipSources>['gossip']): Record<string, unknown> {
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

function statusLine(node: MeshNode, gossip: ReturnType<typeof createGossipSources>['gossip']): string {
  const f = statusFields(node, gossip);
  return `mesh: ${f.mesh_sessions} session(s), gossip with ${f.gossip_peers}, ${f.records} record(s); messages ${f.messages_in} in / ${f.messages_out} out; records ${f.records_accepted} accepted / ${f.records_refused} refused; ${f.exchanges} exchange(s); ${f.cutoffs} cut off`;
}
