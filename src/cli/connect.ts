/**
 * `mcp-e2e connect URL`: a stdio MCP server for any MCP client (an IDE or
 * desktop app launches it as its server command) that relays every message
 * to an encrypted `serve` endpoint. stdout carries only protocol data.
 *
 * `mcp-e2e connect NODE_ID` (or the name given here to a peer, or its
 * fingerprint: src/identity/names.ts) finds the peer through the registry
 * and discovery (src/mesh/node.ts) and pins the handshake to that node id:
 * no URL, and no trust on first use.
 *
 * Whatever fails, the MCP client is told in the error that answers its
 * request (its `initialize`, typically): one line that says what failed and
 * what fixes it, as connect's log says it (desktop apps hide stderr).
 *
 * With `--reconnect`, a lost link is re-established with exponential backoff
 * and jitter (src/transport/reconnect.ts): every attempt is a new connection
 * and a new handshake, never a resumed session. The server on the other side
 * is then a new MCP session that has not been initialised, while our MCP
 * client believes it has: the relay replays the client's original
 * `initialize` request and `notifications/initialized`, swallows the
 * duplicate `initialize` response, and carries on. Requests in flight when
 * the link dropped get a JSON-RPC error response (the client must not wait
 * forever; whether the server carried them out is unknown), and responses
 * to requests the previous server made are dropped. Authentication and
 * trust failures end the relay as without `--reconnect`.
 *
 * Stdin EOF, SIGTERM and SIGINT (how MCP clients stop their servers) end
 * the session with the protocol's normal close (1000) and exit 0; after a
 * signal, at most STOP_GRACE_MS is spent on it.
 */
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { McpE2eError } from '../errors.js';
import { KnownPeersStore, PeerAllowList } from '../identity/trust.js';
import { fingerprintOf, type NodeIdentity } from '../identity/identity.js';
import { MdnsSource } from '../discovery/sources/mdns.js';
import { EncryptedWebSocketClientTransport } from '../transport/client.js';
import { MeshNode } from '../mesh/node.js';
import { connectWithRetry, isRetryableError } from '../transport/reconnect.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../protocol.js';
import type { Logger } from './log.js';
import { loadIdentity, type HomePaths } from './home.js';
import type { Values } from './commands.js';
import { DEFAULT_CONNECT_KEEPALIVE_MS } from './limits.js';
import { localPeers, resolvePeer } from './peers.js';
import { idKey, isRequest, isResponse, PacedSender, PendingRequests, relayError, writeLine, type Message } from './relay.js';
import { LineSplitter, parseJsonLine } from './stdio.js';
import { UsageError } from './usage.js';

/** Messages from stdin held while no link is ready (connecting or reconnecting). */
const MAX_HELD_MESSAGES = 256;
/** After SIGINT/SIGTERM, how long the link gets to close normally before connect leaves anyway (ms). */
const STOP_GRACE_MS = 2000;

/** A ws:// or wss:// URL as typed, or a one-line explanation. */
export function parseUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`not a URL: ${JSON.stringify(text)}; expected ws://HOST:PORT or wss://HOST:PORT`);
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new UsageError(`unsupported URL scheme ${url.protocol} in ${text}; use ws:// or wss://`);
  return url;
}

function parseKeepalive(value: string | undefined): number {
  if (value === undefined) return DEFAULT_CONNECT_KEEPALIVE_MS;
  const ms = Number(value);
  if (!/^\d+$/.test(value) || ms > 2 ** 31 - 1) throw new UsageError(`--keepalive expects milliseconds (0 disables), got ${JSON.stringify(value)}`);
  return ms;
}

/** The target of `connect`: a URL, or (anything without "://") a node id, a name given here or a known peer's fingerprint. */
const isUrlTarget = (target: string) => target.includes('://');

export async function connectCommand(values: Values, target: string, paths: HomePaths, log: Logger): Promise<number> {
  if (isUrlTarget(target)) {
    if (values['no-mdns']) throw new UsageError('--no-mdns goes with a node id or name (a URL is dialled as it is)');
    return relay(values, parseUrl(target), undefined, paths, log);
  }
  if (values.plaintext) throw new UsageError('--plaintext needs a URL: connecting by node id is always encrypted and pinned');
  if (values['strict-peer']) throw new UsageError('--strict-peer is for a URL: connecting by node id is always pinned');
  const identity = loadIdentity(paths);
  const allowList = PeerAllowList.fromFile(paths.allowedPeers);
  let nodeId: string;
  try {
    nodeId = resolvePeer(target, localPeers(paths, allowList));
  } catch (err) {
    throw new UsageError(`not a URL (ws://HOST:PORT or wss://HOST:PORT), and ${(err as Error).message}`);
  }
  if (values.peer && resolvePeer(values.peer, localPeers(paths, allowList)) !== nodeId) throw new UsageError('--peer contradicts the node to connect to; give one');
  const mesh = new MeshNode({
    identity,
    registry: { path: paths.registry },
    allowList,
    client: { keepaliveIntervalMs: parseKeepalive(values.keepalive) },
    // The registry's addresses first, then an mDNS lookup on the local network (PROTOCOL.md §13.7, §13.11).
    sources: values['no-mdns'] ? [] : [new MdnsSource({ onWarning: (message, fields) => log.debug(message, fields) })],
    log: (level, msg, fields) => log[level](msg, fields),
  });
  await mesh.start();
  try {
    return await relay(values, undefined, { mesh, nodeId }, paths, log);
  } finally {
    await mesh.stop();
  }
}

/** Relay stdio to a link made to `url`, or to `byId.nodeId` through the mesh node. */
async function relay(values: Values, url: URL | undefined, byId: { mesh: MeshNode; nodeId: string } | undefined, paths: HomePaths, log: Logger): Promise<number> {
  const where = url ? url.host : `node ${fingerprintOf(byId!.nodeId)}`;
  const plaintext = values.plaintext ?? false;
  const reconnect = values.reconnect ?? false;
  if (plaintext && values.peer) throw new UsageError('--peer has no meaning with --plaintext (nothing is authenticated)');
  if (plaintext && values['strict-peer']) throw new UsageError('--strict-peer has no meaning with --plaintext (nothing is authenticated)');
  const keepaliveIntervalMs = parseKeepalive(values.keepalive);
  const identity = plaintext ? undefined : loadIdentity(paths);
  // A name or fingerprint selects a peer known here; the pin is always its full node id.
  const expectedPeer = values.peer === undefined || byId ? undefined : resolvePeer(values.peer, localPeers(paths));
  const strict = values['strict-peer'] ?? false;
  const trust =
    plaintext || expectedPeer || byId
      ? undefined
      : new KnownPeersStore(paths.knownPeers, {
          strict,
          onFirstUse: (endpoint, peer) =>
            log.warn(`first connection to ${endpoint}: its identity is now recorded in ${paths.knownPeers}: ${peer.nodeId} (fingerprint ${peer.fingerprint}); compare the fingerprint with what the server's operator reads from \`mcp-e2e id\``, { node_id: peer.nodeId }),
        });
  const newTransport = () =>
    identity
      ? new EncryptedWebSocketClientTransport(url!, { identity, keepaliveIntervalMs, ...(expectedPeer ? { expectedPeer } : { trust: trust! }) })
      : new EncryptedWebSocketClientTransport(url!, { enableEncryption: false, keepaliveIntervalMs });
  const why = (err: Error) => describe(err, where, url, identity, strict);
  if (plaintext) log.warn('--plaintext: messages travel unencrypted and the server is not authenticated');

  /** The current link, once started. */
  let link: EncryptedWebSocketClientTransport | undefined;
  /** How many links have been established (the first is 1). */
  let generation = 0;
  /** A link has been lost at least once: answers to the old server's requests may still come. */
  let lostLink = false;
  /** Messages flow to `link` only when ready; otherwise they are held. */
  let ready = false;
  /** Our MCP client ended the session (stdin EOF), or we were told to stop (SIGINT/SIGTERM). */
  let ended = false;
  let finished = false;
  const held: Message[] = [];
  /** The client's `initialize` request and `notifications/initialized`, replayed after a reconnection. */
  let initialize: Message | undefined;
  let initialized: Message | undefined;
  /** Requests of the client sent on the current link and not yet answered. */
  const inFlight = new PendingRequests();
  /** Requests of the server on the current link that the client has not answered yet. */
  const serverRequests = new Set<string>();
  /** The replayed `initialize` whose response the client must not see. */
  let swallow: { key: string; done: () => void } | undefined;

  const write = (msg: unknown) => void process.stdout.write(JSON.stringify(msg) + '\n');
  // What the MCP client shows its user: the one line that says what failed and what fixes it.
  const answerLost = (id: unknown, reason: string) => write(relayError(id, `mcp-e2e: ${reason}`));

  // Host → server: stdin is paused while the link's sends wait; a send that
  // fails all the same ends the link (its requests are then answered as lost).
  const toServer = new PacedSender(process.stdin, (err, t) => {
    if (t.closed) return log.debug('send failed: the connection is closed', { error: err.message });
    log.error(`a message could not be sent to the server, closing the connection: ${err.message}`, err instanceof McpE2eError ? { code: err.code } : {});
    void t.close();
  });
  const send = (t: EncryptedWebSocketClientTransport, msg: Message) => {
    inFlight.sent(msg);
    toServer.send(t, msg);
  };

  const hold = (msg: Message) => {
    if (held.length < MAX_HELD_MESSAGES) return void held.push(msg);
    if (isRequest(msg)) answerLost(msg.id, 'too many messages while not connected to the server; request dropped');
    log.warn('stdin: too many messages while not connected; dropped one');
  };

  const fromClient = (msg: Message) => {
    if (msg.method === 'initialize' && isRequest(msg) && !initialize) initialize = msg;
    if (msg.method === 'notifications/initialized' && !initialized) initialized = msg;
    if (isResponse(msg) && lostLink && !serverRequests.has(idKey(msg))) {
      // An answer to a request of a server we are no longer connected to.
      log.debug('dropped a response to a request of a previous connection', { id: msg.id as string | number });
      return;
    }
    if (isResponse(msg)) serverRequests.delete(idKey(msg));
    if (ready && link) send(link, msg);
    else hold(msg);
  };

  const lines = new LineSplitter(
    DEFAULT_MAX_MESSAGE_BYTES,
    (line) => {
      const msg = parseJsonLine(line);
      if (!msg) return log.warn('stdin: a line that is not a JSON object was dropped');
      fromClient(msg);
    },
    (bytes) => log.warn(`stdin: a message of more than ${DEFAULT_MAX_MESSAGE_BYTES} bytes was dropped`, { bytes }),
  );

  return new Promise<number>((resolve) => {
    /** The current link reported a failure: the exit code is 1 even if our client then ends the session. */
    let failed = false;
    /** End the relay; every request still unanswered gets `reason` (what failed, and what fixes it). */
    const finish = (exitCode: number, reason = 'the connection to the server closed before the response arrived') => {
      if (finished) return;
      finished = true;
      // Our MCP client may keep stdin open: stop reading so the process can end.
      process.stdin.destroy();
      for (const id of inFlight.take()) answerLost(id, reason);
      for (const m of held.splice(0)) if (isRequest(m)) answerLost(m.id, reason);
      // Let stdout drain, then leave.
      process.stdout.write('', () => resolve(exitCode));
    };

    /** Wire a new transport's callbacks; events of an older link are ignored. */
    const wire = (t: EncryptedWebSocketClientTransport) => {
      let linkError: Error | undefined;
      t.onmessage = (raw) => {
        if (t !== link) return;
        const msg = raw as unknown as Message;
        if (isResponse(msg)) {
          if (swallow && idKey(msg) === swallow.key) {
            swallow.done();
            if ('error' in msg) log.warn('the new server refused the replayed initialize', { error: JSON.stringify(msg.error) });
            return;
          }
          inFlight.answered(msg);
        } else if (isRequest(msg)) serverRequests.add(idKey(msg));
        // Server → host: while stdout is full, the link is not read.
        writeLine(process.stdout, msg, t);
      };
      t.onerror = (err) => {
        const fields = err instanceof McpE2eError ? { code: err.code } : {};
        // A failed attempt is reported once, by whoever gives up on it.
        if (t !== link) return log.debug(why(err), fields);
        linkError ??= err;
        failed = true;
        log.error(why(err), fields);
      };
      t.onclose = () => {
        // Attempts that never became the link end in establish().
        if (t !== link) return;
        log.info('connection closed');
        ready = false;
        if (finished) return;
        if (!reconnect || ended || (linkError && !isRetryableError(linkError))) {
          // Success only when our MCP client ended the session and nothing failed.
          finish(ended && !failed ? 0 : 1, linkError ? why(linkError) : undefined);
          return;
        }
        for (const id of inFlight.take()) answerLost(id, 'the connection to the server was lost before the response arrived; the request may or may not have been carried out');
        serverRequests.clear();
        swallow?.done();
        swallow = undefined;
        failed = false;
        lostLink = true;
        log.warn('connection lost; reconnecting');
        void establish();
      };
    };

    /** One link: a new transport (by URL, or through the mesh node's addresses for the node id), wired and started. */
    const openLink = async (): Promise<EncryptedWebSocketClientTransport> => {
      if (byId) {
        return byId.mesh.connect(byId.nodeId, {
          start: async (fresh) => {
            wire(fresh);
            await fresh.start();
          },
        });
      }
      const fresh = newTransport();
      wire(fresh);
      await fresh.start();
      return fresh;
    };
    const establish = async (): Promise<void> => {
      let t: EncryptedWebSocketClientTransport;
      try {
        if (reconnect) {
          // Each attempt is a new link (a new transport, a new handshake), as connectWithRetry requires.
          const attempt = () => {
            const a = { link: undefined as EncryptedWebSocketClientTransport | undefined, start: async () => void (a.link = await openLink()), close: async () => a.link?.close() };
            return a;
          };
          t = (await connectWithRetry(attempt, {
            onRetry: ({ attempt: n, delayMs, error }) => log.info(`attempt ${n} failed: ${(error as Error).message}; next in ${delayMs} ms`),
          })).link!;
        } else {
          t = await openLink();
        }
      } catch (err) {
        const e = err as Error;
        const reason = why(e);
        log.error(reason, e instanceof McpE2eError ? { code: e.code } : {});
        finish(1, reason);
        return;
      }
      if (finished) {
        await t.close();
        return;
      }
      link = t;
      generation++;
      const peer = t.peer;
      log.info(peer ? `connected to ${t.url.host} as ${peer.fingerprint}` : `connected to ${t.url.host} (plaintext)`, {
        ...(peer ? { node_id: peer.nodeId, session: t.e2eSessionId } : {}),
        ...(generation > 1 ? { reconnection: generation - 1 } : {}),
      });
      if (generation > 1 && initialize) {
        // The new server has a new, uninitialised MCP session: initialise it as our client did.
        const replayed = new Promise<void>((done) => (swallow = { key: idKey(initialize!), done }));
        t.send(initialize as JSONRPCMessage).catch(() => {});
        await replayed;
        swallow = undefined;
        if (t !== link || t.closed) return;
        if (initialized) t.send(initialized as JSONRPCMessage).catch(() => {});
        log.info('MCP session re-initialised on the new connection');
      }
      ready = true;
      for (const m of held.splice(0)) send(t, m);
      if (ended) void t.close();
    };

    process.stdin.on('data', (c: Buffer) => lines.push(c));
    process.stdin.on('end', () => {
      if (ended) return;
      ended = true;
      log.debug('stdin closed; closing the connection');
      // Before the connection is ready, the held messages go out first.
      // Otherwise the link being established closes once the held messages are out.
      if (ready && link) void link.close();
    });
    // An app shutting down sends SIGTERM (a terminal, SIGINT): close with the
    // protocol's close (1000), so the server sees a normal end, not 1006.
    const stop = (signal: NodeJS.Signals) => {
      log.info(`${signal}: closing the connection`);
      ended = true;
      const force = setTimeout(() => {
        if (finished) return;
        log.warn(`the connection did not close within ${STOP_GRACE_MS} ms of ${signal}; leaving`);
        finish(0, `mcp-e2e connect was stopped (${signal})`);
      }, STOP_GRACE_MS);
      force.unref();
      // Nothing is established yet (connecting, or between reconnections): nothing to close.
      if (ready && link) void link.close();
      else finish(0, `mcp-e2e connect was stopped (${signal})`);
    };
    // Once: a second signal ends the process at once, as Node's default does.
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    void establish();
  });
}

/**
 * One line that says what went wrong and what fixes it, for connect's log
 * and for the MCP client (which shows it to its user in the error answering
 * its request). `where` names the server (`host:port`, or a node), `url` is
 * the URL connected to, if any; `strict` is --strict-peer. What the server
 * says is believed only when it came in its sealed CLOSE (`fromPeer`).
 */
function describe(err: Error, where: string, url: URL | undefined, identity: NodeIdentity | undefined, strict: boolean): string {
  if (!(err instanceof McpE2eError)) return err.message;
  switch (err.code) {
    case 'ERR_PEER_REJECTED':
      // Ours: --strict-peer refused an endpoint with no recorded identity.
      if (!err.fromPeer && strict && url) return `${err.message}: check it with \`mcp-e2e scan ${url.href.replace(/\/$/, '')}\`, then connect with --peer NODE_ID`;
      // Only the server's sealed CLOSE says for certain that it refused us; our own trust policy refusing the server says ERR_PEER_REJECTED too.
      if (!err.fromPeer || !identity) return err.message;
      return `the server at ${where} refused our identity: ask its operator to run \`mcp-e2e peers allow ${identity.nodeId}\``;
    case 'ERR_CONNECT_FAILED':
      return `${err.message}; is \`mcp-e2e serve\` running at ${where}?`;
    case 'ERR_SUBPROTOCOL':
      // Encrypting, we found no mcp-e2e endpoint at the URL (src/transport/client.ts says which kind of answer).
      return identity && url ? `${err.message}; use --plaintext if you mean it` : err.message;
    default:
      return err.message;
  }
}
