/**
 * `mcp-e2e connect URL`: a stdio MCP server for any MCP client (an IDE or
 * desktop app launches it as its server command) that relays every message
 * to an encrypted `serve` endpoint. stdout carries only protocol data.
 */
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { McpE2eError } from '../errors.js';
import { KnownPeersStore } from '../identity/trust.js';
import { EncryptedWebSocketClientTransport } from '../transport/client.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../protocol.js';
import type { HomePaths } from './home.js';
import type { Logger } from './log.js';
import { loadIdentity, type Values } from './main.js';
import { LineSplitter, parseJsonLine } from './stdio.js';
import { UsageError } from './usage.js';

/** Messages from stdin held while the connection is being set up. */
const MAX_EARLY_MESSAGES = 256;

function parseUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`not a URL: ${JSON.stringify(text)}; expected ws://HOST:PORT or wss://HOST:PORT`);
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new UsageError(`unsupported URL scheme ${url.protocol} in ${text}; use ws:// or wss://`);
  return url;
}

export async function connectCommand(values: Values, urlText: string, paths: HomePaths, log: Logger): Promise<number> {
  const url = parseUrl(urlText);
  const plaintext = values.plaintext ?? false;
  if (plaintext && values.peer) throw new UsageError('--peer has no meaning with --plaintext (nothing is authenticated)');
  const transport = plaintext
    ? new EncryptedWebSocketClientTransport(url, { enableEncryption: false })
    : new EncryptedWebSocketClientTransport(url, {
        identity: loadIdentity(paths),
        ...(values.peer ? { expectedPeer: values.peer } : { trust: new KnownPeersStore(paths.knownPeers) }),
      });
  if (plaintext) log.warn('--plaintext: messages travel unencrypted and the server is not authenticated');

  let ready = false;
  let stdinEnded = false;
  const early: JSONRPCMessage[] = [];
  const send = (msg: JSONRPCMessage) => {
    transport.send(msg).catch((err: Error) => log.debug('send failed', { error: err.message }));
  };
  const lines = new LineSplitter(
    DEFAULT_MAX_MESSAGE_BYTES,
    (line) => {
      const msg = parseJsonLine(line);
      if (!msg) return log.warn('stdin: a line that is not a JSON object was dropped');
      if (ready) send(msg as JSONRPCMessage);
      else if (early.length < MAX_EARLY_MESSAGES) early.push(msg as JSONRPCMessage);
      else log.warn('stdin: too many messages before the connection was ready; dropped one');
    },
    (bytes) => log.warn(`stdin: a message of more than ${DEFAULT_MAX_MESSAGE_BYTES} bytes was dropped`, { bytes }),
  );

  return new Promise<number>((resolve) => {
    let failed = false;
    let reported: Error | undefined;
    const report = (err: Error) => {
      failed = true;
      if (err === reported) return; // start() rejects with the error onerror already showed
      reported = err;
      log.error(describe(err, url), err instanceof McpE2eError ? { code: err.code } : {});
    };
    transport.onmessage = (msg) => {
      process.stdout.write(JSON.stringify(msg) + '\n');
    };
    transport.onerror = report;
    transport.onclose = () => {
      if (ready) log.info('connection closed');
      // Our MCP client may keep stdin open: stop reading so the process can end.
      process.stdin.destroy();
      // Let stdout drain, then leave.
      // A failed start() settles after onclose and decides the exit code there.
      if (!ready) return;
      // Success only when our MCP client ended the session and nothing failed.
      process.stdout.write('', () => resolve(stdinEnded && !failed ? 0 : 1));
    };
    process.stdin.on('data', (c: Buffer) => lines.push(c));
    process.stdin.on('end', () => {
      stdinEnded = true;
      log.debug('stdin closed; closing the connection');
      // Before the connection is ready, the early messages go out first.
      if (ready) void transport.close();
    });
    transport.start().then(
      () => {
        ready = true;
        const peer = transport.peer;
        log.info(peer ? `connected to ${url.host} as ${peer.fingerprint}` : `connected to ${url.host} (plaintext)`, peer ? { node_id: peer.nodeId } : {});
        for (const m of early.splice(0)) send(m);
        if (stdinEnded) void transport.close();
      },
      (err: Error) => {
        report(err);
        resolve(1);
      },
    );
  });
}

/** One line that says what went wrong and what to do. */
function describe(err: Error, url: URL): string {
  if (!(err instanceof McpE2eError)) return err.message;
  switch (err.code) {
    case 'ERR_PEER_REJECTED':
      return `the server at ${url.host} refused our identity: ask its operator to run \`mcp-e2e peers allow <our node id>\` (see \`mcp-e2e id\`)`;
    case 'ERR_CONNECT_FAILED':
      return `${err.message}; is \`mcp-e2e serve\` running at ${url.host}?`;
    default:
      return err.message;
  }
}
