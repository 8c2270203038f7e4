/**
 * Faults: a real server process killed in the middle of a session, and the
 * opt-in reconnection (exponential backoff with jitter, a brand-new
 * handshake every attempt, never a resumed key). No unhandled rejection
 * anywhere: every test watches the process's 'unhandledRejection' hook.
 */
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  backoffDelay,
  connectWithRetry,
  DEFAULT_RECONNECT,
  EncryptedWebSocketClientTransport,
  isRetryableError,
  McpE2eError,
  NodeIdentity,
} from '../../src/index.js';
import { codeOf, deferred, textOf, within } from './helpers.js';

const SERVER = fileURLToPath(new URL('./fixtures/server-process.js', import.meta.url));
const children = new Set<ChildProcess>();

/** Start the server process; resolves once it listens. */
async function startServerProcess(port = 0, seed = randomBytes(32)) {
  const proc = spawn(process.execPath, [SERVER, String(port), seed.toString('hex')], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, MCP_E2E_FIXTURE: 'server' },
  });
  children.add(proc);
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  void exited.then(() => children.delete(proc));
  const line = await within(
    new Promise<string>((resolve, reject) => {
      createInterface({ input: proc.stdout! }).once('line', resolve);
      void exited.then(() => reject(new Error('the server process exited before listening')));
    }),
    10_000,
    'the server process to listen',
  );
  const { port: bound, nodeId } = JSON.parse(line) as { port: number; nodeId: string };
  return { proc, port: bound, nodeId, seed, url: `ws://127.0.0.1:${bound}/mcp`, exited, kill: async () => (proc.kill('SIGKILL'), await exited) };
}

after(() => {
  for (const c of children) c.kill('SIGKILL');
});

let unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
beforeEach(() => {
  unhandled = [];
  process.on('unhandledRejection', onUnhandled);
});
afterEach(async () => {
  // Rejections surface on a later turn: give them one before looking.
  await new Promise((resolve) => setImmediate(resolve));
  process.off('unhandledRejection', onUnhandled);
  assert.deepEqual(unhandled.map(String), [], 'no unhandled rejection');
});

function sessionIdOf(result: unknown): string {
  return (JSON.parse(textOf(result)) as { sessionId: string }).sessionId;
}

describe('faults: the server process is killed mid-session', () => {
  test('SIGKILL: the client reports it promptly (onerror, then onclose once), the pending request fails, nothing is unhandled', async () => {
    const server = await startServerProcess();
    const transport = new EncryptedWebSocketClientTransport(server.url, { identity: NodeIdentity.generate(), expectedPeer: server.nodeId });
    const errors: Error[] = [];
    let closes = 0;
    const closed = deferred();
    transport.onerror = (e) => errors.push(e);
    transport.onclose = () => {
      closes++;
      closed.resolve();
    };
    const client = new Client({ name: 'fault-test', version: '1' });
    await client.connect(transport);
    assert.equal(textOf(await client.callTool({ name: 'add', arguments: { a: 1, b: 2 } })), '3');
    // A request in flight when the server dies.
    const pending = client.callTool({ name: 'slow', arguments: {} });
    const outcome = pending.then(
      () => 'resolved',
      (e: Error) => e.message,
    );
    const killedAt = Date.now();
    await server.kill();
    await within(closed.promise, 5000, 'the client to notice the dead server');
    assert.ok(Date.now() - killedAt < 2000, `noticed after ${Date.now() - killedAt} ms`);
    assert.match(await within(outcome, 5000, 'the pending request to fail'), /closed/i);
    assert.equal(closes, 1);
    // No sealed CLOSE came: the session was cut short.
    assert.deepEqual(errors.map(codeOf), ['ERR_SESSION_TRUNCATED']);
    assert.equal(transport.closed, true);
    await assert.rejects(transport.send({ jsonrpc: '2.0', method: 'notifications/x' }), { code: 'ERR_CONNECTION_CLOSED' });
    await client.close();
    assert.equal(closes, 1);
  });
});

describe('reconnect: connectWithRetry', () => {
  test('backoffDelay grows exponentially to the cap, jitter only shortens, options are checked', () => {
    const opts = { initialDelayMs: 100, maxDelayMs: 1000, multiplier: 2, jitter: 0 };
    assert.deepEqual([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, opts)), [100, 200, 400, 800, 1000, 1000]);
    for (let n = 1; n <= 8; n++) {
      const full = backoffDelay(n, { ...opts, jitter: 0 });
      assert.equal(backoffDelay(n, { ...opts, jitter: 0.5 }, () => 0), full);
      assert.equal(backoffDelay(n, { ...opts, jitter: 0.5 }, () => 0.999999), Math.round(full * 0.5000005));
      assert.equal(backoffDelay(n, { ...opts, jitter: 1 }, () => 0.5), Math.round(full / 2));
      const d = backoffDelay(n, { ...opts, jitter: 0.3 });
      assert.ok(d >= Math.floor(full * 0.7) && d <= full, `attempt ${n}: ${d}`);
    }
    assert.deepEqual(DEFAULT_RECONNECT, { initialDelayMs: 500, maxDelayMs: 30_000, multiplier: 2, maxAttempts: 10, jitter: 0.5 });
    assert.throws(() => backoffDelay(1, { jitter: 2 }), RangeError);
    assert.throws(() => backoffDelay(1, { initialDelayMs: -1 }), RangeError);
    assert.throws(() => backoffDelay(1, { initialDelayMs: 10, maxDelayMs: 5 }), RangeError);
    assert.throws(() => backoffDelay(1, { multiplier: 0.5 }), RangeError);
    assert.throws(() => backoffDelay(1, { maxAttempts: 0 }), RangeError);
    assert.throws(() => backoffDelay(1, { maxAttempts: '3' as unknown as number }), TypeError);
    assert.equal(isRetryableError(new McpE2eError('ERR_CONNECT_FAILED', 'x')), true);
    assert.equal(isRetryableError(new McpE2eError('ERR_PEER_KEY_CHANGED', 'x')), false);
    assert.equal(isRetryableError(new McpE2eError('ERR_HANDSHAKE_BAD_SIGNATURE', 'x')), false);
    assert.equal(isRetryableError(new TypeError('bug')), false);
  });

  test('the server restarts after a SIGKILL: retries with backoff, then a fresh handshake with a new session id and new keys', async () => {
    const seed = randomBytes(32);
    const first = await startServerProcess(0, seed);
    const identity = NodeIdentity.generate();
    const make = () => new EncryptedWebSocketClientTransport(first.url, { identity, expectedPeer: first.nodeId });
    const clientA = new Client({ name: 'reconnect-test', version: '1' });
    const a = await connectWithRetry(make, { start: (t) => clientA.connect(t) });
    const sessionA = sessionIdOf(await clientA.callTool({ name: 'whoami', arguments: {} }));
    assert.equal(sessionA, a.e2eSessionId);
    const lost = deferred();
    a.onclose = () => lost.resolve();
    await first.kill();
    await within(lost.promise, 5000, 'the loss of the first session');

    // Reconnect while nothing listens; the server comes back on the same port mid-way.
    const retries: Array<{ attempt: number; delayMs: number; code: string | undefined }> = [];
    let restarted: Awaited<ReturnType<typeof startServerProcess>> | undefined;
    const created: EncryptedWebSocketClientTransport[] = [];
    let clientB: Client | undefined;
    const b = await connectWithRetry(
      () => {
        const t = make();
        created.push(t);
        return t;
      },
      {
        // The SDK Client starts the transport itself: one fresh Client per attempt.
        start: async (t) => {
          clientB = new Client({ name: 'reconnect-test', version: '1' });
          await clientB.connect(t);
        },
        initialDelayMs: 50,
        maxDelayMs: 400,
        maxAttempts: 40,
        onRetry: (info) => {
          retries.push({ attempt: info.attempt, delayMs: info.delayMs, code: codeOf(info.error) });
          if (info.attempt === 2) void startServerProcess(first.port, seed).then((s) => (restarted = s));
        },
      },
    );
    try {
      assert.ok(retries.length >= 2, `retried ${retries.length} times`);
      assert.ok(retries.every((r) => r.code === 'ERR_CONNECT_FAILED'), JSON.stringify(retries));
      retries.forEach((r, i) => {
        const cap = Math.min(400, 50 * 2 ** i);
        assert.ok(r.delayMs <= cap && r.delayMs >= cap / 2, `delay ${r.delayMs} for attempt ${r.attempt}`);
      });
      assert.equal(created.length, retries.length + 1, 'one new transport per attempt');
      assert.equal(new Set(created).size, created.length);
      assert.equal(b, created.at(-1));
      // A new session: new id (it is derived with the keys from fresh ephemeral keys), same authenticated server.
      assert.notEqual(b.e2eSessionId, a.e2eSessionId);
      assert.equal(b.peer?.nodeId, first.nodeId);
      const sessionB = sessionIdOf(await clientB!.callTool({ name: 'whoami', arguments: {} }));
      assert.equal(sessionB, b.e2eSessionId);
      assert.notEqual(sessionB, sessionA);
      await clientB!.close();
      await clientA.close();
    } finally {
      await restarted?.kill();
    }
  });

  test('never retries a trust failure: a server with another key on the same port fails once with ERR_PEER_KEY_CHANGED', async () => {
    const honest = await startServerProcess();
    const port = honest.port;
    const expected = honest.nodeId;
    await honest.kill();
    const impostor = await startServerProcess(port);
    try {
      let attempts = 0;
      await assert.rejects(
        connectWithRetry(
          () => {
            attempts++;
            return new EncryptedWebSocketClientTransport(impostor.url, { identity: NodeIdentity.generate(), expectedPeer: expected });
          },
          { initialDelayMs: 10 },
        ),
        { code: 'ERR_PEER_KEY_CHANGED' },
      );
      assert.equal(attempts, 1);
    } finally {
      await impostor.kill();
    }
  });

  test('gives up after maxAttempts with the last error; an abort stops the waiting at once; a reused transport is refused', async () => {
    const url = 'ws://127.0.0.1:9/mcp'; // discard port: nothing listens
    const make = () => new EncryptedWebSocketClientTransport(url, { identity: NodeIdentity.generate(), allowAnyPeer: true });
    let attempts = 0;
    await assert.rejects(
      connectWithRetry(() => (attempts++, make()), { initialDelayMs: 1, maxDelayMs: 5, maxAttempts: 3 }),
      { code: 'ERR_CONNECT_FAILED' },
    );
    assert.equal(attempts, 3);

    const controller = new AbortController();
    const started = Date.now();
    const giving = connectWithRetry(make, { initialDelayMs: 60_000, maxDelayMs: 60_000, signal: controller.signal, onRetry: () => controller.abort(new Error('stop')) });
    await assert.rejects(giving, /stop/);
    assert.ok(Date.now() - started < 5000);

    const once = make();
    await assert.rejects(connectWithRetry(() => once, { initialDelayMs: 1 }), TypeError);
  });
});
