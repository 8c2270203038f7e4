/**
 * `mcp-e2e serve -- COMMAND [ARGS...]`: listen for encrypted MCP connections
 * and, for each authenticated peer, spawn the stdio MCP server COMMAND and
 * relay JSON-RPC both ways. One child per connection: it ends when its
 * connection ends, and the connection ends when it exits.
 */
import { unwatchFile, watchFile } from 'node:fs';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { McpE2eError } from '../errors.js';
import { PeerAllowList } from '../identity/trust.js';
import { MeshNode } from '../mesh/node.js';
import { MdnsSource } from '../discovery/sources/mdns.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../protocol.js';
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

  const announce = values.announce ?? false;
  if (!announce && (values.name !== undefined || values['no-mdns'])) throw new UsageError('--name and --no-mdns go with --announce');
  // `--announce` is heard on the local network unless --no-mdns (PROTOCOL.md §13.11).
  const mdns = announce && !values['no-mdns'] ? new MdnsSource({ name: values.name, onWarning: (message, fields) => log.debug(message, fields) }) : undefined;

  let nextId = 1;
  const children = new Set<ChildServer>();
  const node = new MeshNode({
    identity,
    registry: { path: paths.registry },
    sources: mdns ? [mdns] : [],
    ...(announce ? { announce: values.name !== undefined ? { name: values.name } : {} } : {}),
    log: (level, message, fields) => log[level](message, fields),
    server: {
      host,
      port,
      ...(allowList ? { allowedPeers: allowList } : { allowAnyPeer: true }),
      allowPlaintext: values['allow-plaintext'] ?? false,
      onConnection: async (transport, peer) => {
        const clog = log.child({ conn: nextId++ });
        clog.info(peer ? `peer ${peer.fingerprint} connected` : 'plaintext client connected', peer ? { node_id: peer.nodeId } : {});
        const child = spawnChild(command, clog, (msg) => {
          transport.send(msg as JSONRPCMessage).catch((err: Error) => clog.debug('send to peer failed', { error: err.message }));
        }, DEFAULT_MAX_MESSAGE_BYTES);
        children.add(child);
        transport.onmessage = (msg) => child.send(msg);
        transport.onerror = (err) => clog.warn(err.message, err instanceof McpE2eError ? { code: err.code } : {});
        transport.onclose = () => {
          clog.info('connection closed; stopping its server process');
          void child.terminate();
        };
        void child.exited.then((how) => {
          children.delete(child);
          clog.info(`server process ${how}`);
          void transport.close();
        });
        // Messages flow to onmessage only once started (as McpServer.connect would do).
        await transport.start();
      },
      onError: (err, info) => {
        const code = err instanceof McpE2eError ? err.code : undefined;
        log.warn(`connection from ${info.remoteAddress ?? 'unknown'} refused: ${err.message}`, code ? { code } : {});
      },
    },
  });

  try {
    await node.start();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE') throw new UsageError(`port ${port} on ${host} is already in use; choose another with --port`);
    if (e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND') throw new UsageError(`cannot listen on ${host}: no such local address; use --host`);
    if (e.code === 'EACCES') throw new UsageError(`not allowed to listen on port ${port}; use a port above 1023`);
    throw err;
  }
  const address = node.address!;
  const url = `ws://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  log.info(`listening on ${url} as ${identity.fingerprint}`, { url, node_id: identity.nodeId });
  if (mdns) {
    log.info(`announced on the local network as "${mdns.instanceName}"`, { instance: mdns.instanceName, addresses: node.record?.addresses });
    if (address.address.startsWith('127.') || address.address === '::1') log.warn(`listening on ${address.address} only: announced to this machine alone; --host 0.0.0.0 to be found on the network`);
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
      // Closing the server closes every connection, which terminates every child.
      const force = setTimeout(() => {
        log.error(`connections did not close within ${SHUTDOWN_GRACE_MS} ms; killing their server processes`);
        killAllChildren();
        resolve(1);
      }, SHUTDOWN_GRACE_MS);
      force.unref();
      void node
        .stop()
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
