/** Fixtures of the message-API tests: a message server on 127.0.0.1:0 that records its errors, handlers, and a stall detector. */
import {
  EncryptedMessageServer,
  NodeIdentity,
  type ConnectionInfo,
  type EncryptedMessageServerOptions,
  type JSONRPCMessage,
  type MessageHandler,
} from '../../src/index.js';
import { codeOf, within } from '../transport/helpers.js';

export interface MessageServerFixture {
  server: EncryptedMessageServer;
  identity: NodeIdentity | undefined;
  url: string;
  /** What the server reported through onError. */
  errors: Array<{ error: Error; info: ConnectionInfo }>;
  /** Resolves with the first reported error with `code` (waiting for it, at most 5 s). */
  errorWithCode: (code: string) => Promise<{ error: Error; info: ConnectionInfo }>;
  stop: () => Promise<void>;
}

/**
 * Start an EncryptedMessageServer on 127.0.0.1:0. Encrypted servers accept
 * any authenticated client unless `allowedPeers` or `trust` is given.
 */
export async function startMessageServer(
  messageHandler: MessageHandler,
  options: Partial<EncryptedMessageServerOptions> = {},
  identity: NodeIdentity | undefined = NodeIdentity.generate(),
): Promise<MessageServerFixture> {
  const errors: MessageServerFixture['errors'] = [];
  const wake: Array<() => void> = [];
  const anyPeer = options.enableEncryption !== false && options.allowedPeers === undefined && options.trust === undefined;
  const server = new EncryptedMessageServer(identity, {
    ...(anyPeer ? { allowAnyPeer: true } : {}),
    onError: (error, info) => {
      errors.push({ error, info });
      for (const w of wake.splice(0)) w();
    },
    ...options,
    messageHandler,
  });
  const { port } = await server.start('127.0.0.1', 0);
  const errorWithCode = (code: string) =>
    within(
      new Promise<{ error: Error; info: ConnectionInfo }>((resolve) => {
        const check = () => {
          const found = errors.find((e) => codeOf(e.error) === code);
          if (found) resolve(found);
          else wake.push(check);
        };
        check();
      }),
      5000,
      `a server error ${code}`,
    );
  return { server, identity, url: `ws://127.0.0.1:${port}/`, errors, errorWithCode, stop: () => server.stop() };
}

/** Answers every request with its method, params and the caller's node id (null in plaintext); ignores the rest. */
export const echoHandler: MessageHandler = (message, peer) => {
  if (!('method' in message && 'id' in message)) return undefined;
  return { jsonrpc: '2.0', id: message.id, result: { method: message.method, params: message.params ?? null, peer: peer?.nodeId ?? null } };
};

/** A JSON-RPC request. */
export function request(id: number | string, method: string, params?: Record<string, unknown>): JSONRPCMessage {
  return { jsonrpc: '2.0', id, method, ...(params ? { params } : {}) };
}

/** The `result` of a response (fails the test for anything else). */
export function resultOf(message: JSONRPCMessage): Record<string, unknown> {
  if (!('result' in message)) throw new Error(`expected a result, got ${JSON.stringify(message)}`);
  return message.result;
}

/** The `params` of a request or notification (fails the test for anything else). */
export function paramsOf(message: JSONRPCMessage): Record<string, unknown> {
  if (!('params' in message) || typeof message.params !== 'object' || message.params === null) throw new Error(`expected params, got ${JSON.stringify(message)}`);
  return message.params as Record<string, unknown>;
}

/**
 * Resolves once `read()` has not changed for `quietMs` (something stopped
 * making progress), with its value. Rejects after `deadlineMs`. For
 * backpressure tests: a stall is the absence of events, so it takes time.
 */
export async function stalled(read: () => number, quietMs = 300, deadlineMs = 20_000): Promise<number> {
  const end = Date.now() + deadlineMs;
  let last = read();
  let since = Date.now();
  while (Date.now() < end) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    const now = read();
    if (now !== last) {
      last = now;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) {
      return now;
    }
  }
  throw new Error(`no stall within ${deadlineMs} ms (value ${last})`);
}
