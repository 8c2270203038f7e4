/**
 * Shared fixtures of the transport tests: a feature-rich McpServer factory,
 * a server/client pair on 127.0.0.1 with port 0, and event helpers (no sleeps
 * as synchronisation: every wait is on an event, bounded by a timeout that
 * fails the test).
 */
import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { z } from 'zod';
import {
  EncryptedWebSocketClientTransport,
  EncryptedWebSocketServer,
  NodeIdentity,
  peerFromAuthInfo,
  type EncryptedWebSocketClientTransportOptions,
  type EncryptedWebSocketServerOptions,
  type EncryptedWebSocketServerTransport,
  type PeerIdentity,
} from '../../src/index.js';

/** Reject after `ms` so a missing event fails the test instead of hanging it. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A promise plus its resolver. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Server-side observations of the test tools. */
export interface ToolProbe {
  /** Resolved with the request id when the `slow` tool sees its abort signal. */
  cancelled: ReturnType<typeof deferred<string>>;
  /** Resolved when `slow` has started. */
  slowStarted: ReturnType<typeof deferred<void>>;
}

/** An McpServer exercising tools, resources, prompts, progress, logging and cancellation. */
export function makeMcpServer(probe?: ToolProbe): McpServer {
  const server = new McpServer({ name: 'mcp-e2e-test', version: '1.0.0' }, { capabilities: { logging: {} } });
  server.registerTool('echo', { description: 'echo', inputSchema: { message: z.string() } }, async ({ message }) => ({
    content: [{ type: 'text', text: `Echo: ${message}` }],
  }));
  server.registerTool('add', { inputSchema: { a: z.number(), b: z.number() } }, async ({ a, b }) => ({
    content: [{ type: 'text', text: String(a + b) }],
  }));
  server.registerTool('whoami', {}, async (extra) => {
    const peer = peerFromAuthInfo(extra.authInfo);
    return {
      content: [{ type: 'text', text: JSON.stringify({ clientId: extra.authInfo?.clientId ?? null, nodeId: peer?.nodeId ?? null, token: extra.authInfo?.token ?? null, sessionId: extra.sessionId ?? null }) }],
    };
  });
  server.registerTool('big', { inputSchema: { bytes: z.number().int() } }, async ({ bytes }) => ({
    content: [{ type: 'text', text: 'x'.repeat(bytes) }],
  }));
  server.registerTool('progress', { inputSchema: { steps: z.number().int() } }, async ({ steps }, extra) => {
    const token = extra._meta?.progressToken;
    for (let i = 1; i <= steps; i++) {
      if (token !== undefined) await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: i, total: steps } });
    }
    return { content: [{ type: 'text', text: 'done' }] };
  });
  server.registerTool('log', { inputSchema: { text: z.string() } }, async ({ text }, extra) => {
    await extra.sendNotification({ method: 'notifications/message', params: { level: 'info', logger: 'test', data: text } });
    return { content: [{ type: 'text', text: 'logged' }] };
  });
  server.registerTool('slow', {}, async (extra) => {
    probe?.slowStarted.resolve();
    await new Promise<void>((resolve) => {
      if (extra.signal.aborted) resolve();
      extra.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    probe?.cancelled.resolve(String(extra.requestId));
    return { content: [{ type: 'text', text: 'cancelled' }] };
  });
  server.registerResource('hello', 'test://hello', { mimeType: 'text/plain' }, async (uri) => ({
    contents: [{ uri: uri.href, text: 'hello resource' }],
  }));
  server.registerResource('item', new ResourceTemplate('test://item/{id}', { list: undefined }), {}, async (uri, vars) => ({
    contents: [{ uri: uri.href, text: `item ${String(vars.id)}` }],
  }));
  server.registerPrompt('greet', { argsSchema: { name: z.string() } }, ({ name }) => ({
    messages: [{ role: 'user', content: { type: 'text', text: `Hello, ${name}!` } }],
  }));
  return server;
}

/**
 * Admission limits for test servers that stand for many clients behind one
 * address (127.0.0.1): fuzzing, tampering and benchmarks open hundreds of
 * connections a second from it, which the per-address handshake rate would
 * refuse.
 */
export const ONE_ADDRESS_MANY_CLIENTS = Object.freeze({ handshakeRatePerAddress: 2 ** 24, handshakeBurstPerAddress: 2 ** 24, maxPendingHandshakesPerAddress: 2 ** 24 });

export interface ServerFixture {
  server: EncryptedWebSocketServer;
  identity: NodeIdentity;
  url: string;
  port: number;
  /** Errors the server reported through onError. */
  errors: Error[];
  /** Resolves with the oldest server onError not yet taken (waiting for one if need be). */
  nextError: () => Promise<Error>;
  /** Resolves with the first server error with `code` at position `from` or later in `errors` (waiting for it if need be). */
  errorWithCode: (code: string, from?: number) => Promise<Error>;
  /** Server-side transports as they connect. */
  transports: EncryptedWebSocketServerTransport[];
  probe: ToolProbe;
  close: () => Promise<void>;
}

export function newProbe(): ToolProbe {
  return { cancelled: deferred<string>(), slowStarted: deferred<void>() };
}

/** Start an EncryptedWebSocketServer on 127.0.0.1:0 that runs `makeMcpServer()` per connection. */
export async function startServer(
  options: Partial<EncryptedWebSocketServerOptions> & { identity?: NodeIdentity } = {},
): Promise<ServerFixture> {
  const identity = options.identity ?? NodeIdentity.generate();
  const errors: Error[] = [];
  const waiters: Array<(e: Error) => void> = [];
  const transports: EncryptedWebSocketServerTransport[] = [];
  const probe = newProbe();
  let consumed = 0;
  const codeWaiters: Array<{ code: string; resolve: (e: Error) => void }> = [];
  const server = new EncryptedWebSocketServer({
    allowAnyPeer: options.allowedPeers === undefined && options.trust === undefined ? true : undefined,
    onConnection: async (transport: EncryptedWebSocketServerTransport, _peer: PeerIdentity | undefined) => {
      transports.push(transport);
      await makeMcpServer(probe).connect(transport);
    },
    onError: (err) => {
      errors.push(err);
      const waiter = waiters.shift();
      if (waiter) waiter(errors[consumed++]!);
      for (const w of codeWaiters) if (codeOf(err) === w.code || describeCode(err) === w.code) w.resolve(err);
    },
    ...options,
    identity,
  });
  const addr = await server.listen(0, '127.0.0.1');
  return {
    server,
    identity,
    url: `ws://127.0.0.1:${addr.port}/mcp`,
    port: addr.port,
    errors,
    nextError: () =>
      consumed < errors.length
        ? Promise.resolve(errors[consumed++]!)
        : within(new Promise<Error>((resolve) => waiters.push(resolve)), 5000, 'a server error'),
    errorWithCode: (code, from = 0) => {
      const found = errors.slice(from).find((e) => codeOf(e) === code || describeCode(e) === code);
      if (found) return Promise.resolve(found);
      return within(new Promise<Error>((resolve) => codeWaiters.push({ code, resolve })), 5000, `a server error ${code}`);
    },
    transports,
    probe,
    close: () => server.close(),
  };
}

export interface ClientFixture {
  client: Client;
  transport: EncryptedWebSocketClientTransport;
  errors: Error[];
  closed: Promise<void>;
}

/** Connect an SDK Client over our client transport. */
export async function connectClient(url: string, options: EncryptedWebSocketClientTransportOptions): Promise<ClientFixture> {
  const transport = new EncryptedWebSocketClientTransport(url, options);
  const errors: Error[] = [];
  const closed = deferred();
  transport.onerror = (e) => errors.push(e);
  transport.onclose = () => closed.resolve();
  const client = new Client({ name: 'mcp-e2e-test-client', version: '1.0.0' });
  await client.connect(transport);
  return { client, transport, errors, closed: closed.promise };
}

/** Text of the first content item of a tool result. */
export function textOf(result: unknown): string {
  const content = (result as { content?: Array<{ type: string; text?: string }> }).content;
  const first = content?.[0];
  if (!first || first.type !== 'text' || typeof first.text !== 'string') throw new Error('tool result has no text content');
  return first.text;
}

/** The error code of an McpE2eError-like value. */
export function codeOf(err: unknown): string | undefined {
  return (err as { code?: string } | undefined)?.code;
}

/**
 * The code, and what the peer claimed in an unauthenticated close frame if
 * anything: `ERR_CONNECTION_CLOSED (peer: ERR_SUBPROTOCOL)`; a reason from the
 * peer's sealed CLOSE is marked `ERR_PEER_REJECTED (sealed by peer)`.
 */
export function describeCode(err: unknown): string | undefined {
  const e = err as { code?: string; peerCode?: string; fromPeer?: boolean } | undefined;
  if (e?.code === undefined) return undefined;
  return e.peerCode ? `${e.code} (peer: ${e.peerCode})` : e.fromPeer ? `${e.code} (sealed by peer)` : e.code;
}
