/**
 * Live-socket fuzzing: a real EncryptedWebSocketServer on 127.0.0.1, honest
 * SDK clients connected and calling tools the whole time, and a hostile raw
 * client sending random and mutated input before, during and after the
 * handshake (both framings, signed and not), plus raw WebSocket frames at
 * the TCP level. For every case:
 *
 * - the server ends the hostile connection itself (every case ends with a
 *   frame no state accepts, so even an input that happened to be valid is
 *   followed by a refusal), reports one stable McpE2eError code, and closes
 *   with the close code of that code (or the RFC 6455 code `ws` uses for a
 *   WebSocket-level violation: 1002, 1007, 1009);
 * - nothing refused reaches the MCP layer; nothing in the server's errors
 *   contains key material or the plaintext;
 * - the honest sessions never notice, and the server's bookkeeping and
 *   memory return to where they were.
 *
 * Fixed seed in CI; FUZZ_RUNS / FUZZ_SEED as in core-fuzz.test.ts
 * (`npm run fuzz` runs 100,000 core cases and 1/10 of that here per
 * property). FUZZ_SOCKET_RUNS overrides the per-property count.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { inspect } from 'node:util';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import fc from 'fast-check';
import type { WebSocket } from 'ws';
import { isJsonRpcMessage } from '../../src/transport/json-rpc.js';
import {
  CloseCode,
  ContentType,
  EncryptedWebSocketServer,
  ERROR_CODES,
  Handshake,
  McpE2eError,
  NodeIdentity,
  Session,
  SUBPROTOCOL_ENCRYPTED,
  type EncryptedWebSocketServerTransport,
  type ErrorCode,
  type Framing,
} from '../../src/index.js';
import { ONE_ADDRESS_MANY_CLIENTS, connectClient, makeMcpServer, textOf, within, type ClientFixture } from '../transport/helpers.js';
import { clientFrame, openRaw, rawTcp, upgradeRequest, type CloseEvent } from '../transport/raw-peers.js';
import { assertClean } from './scan.js';
import { plaintextOf, sealRaw } from '../helpers/craft.js';
import { DIRECTION } from '../../src/protocol.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 2000);
const SEED = Number(process.env.FUZZ_SEED ?? 20261126);
const SOCKET_RUNS = Number(process.env.FUZZ_SOCKET_RUNS ?? Math.max(25, Math.round(RUNS / 10)));
const params = { numRuns: SOCKET_RUNS, seed: SEED, endOnFailure: true, includeErrorInReport: true };

/** The server's message limit here: small, so "oversized" is cheap to send. */
const MAX_MESSAGE_BYTES = 64 * 1024;
const SERVER_SEED = Buffer.alloc(32, 0x5e);
const serverIdentity = NodeIdentity.fromPrivateKey(SERVER_SEED);

/** Counts for the report, per property and outcome. */
export const socketFuzzCounts: Record<string, number> = {};
const count = (name: string) => (socketFuzzCounts[name] = (socketFuzzCounts[name] ?? 0) + 1);

// ---------------------------------------------------------------- arbitraries

/** Counterexamples print buffers short (a failing 60 KB case must not flood the log). */
function short(b: Buffer): Buffer {
  Object.defineProperty(b, fc.toStringMethod, { value: () => `<${b.length} bytes ${b.subarray(0, 24).toString('hex')}${b.length > 24 ? '…' : ''}>` });
  return b;
}
const shortText = (s: string) => short(Buffer.from(s));
const bytes = (maxLength: number) => fc.uint8Array({ maxLength }).map((u) => short(Buffer.from(u)));
const keyName = fc.constantFrom('type', 'version', 'step', 'public_key', 'random', 'options', 'identity_key', 'node_id', 'signature', 'mac', 'epoch', 'nonce', 'ciphertext', 'sender', 'jsonrpc', 'id', 'method', 'params', 'result', 'error', '__proto__');
const jsonish = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constantFrom('key_exchange', 'encrypted', '2.0', 'ping', 'initialize', 'tools/call', 1, 2, 3, 0, -1, true, false, null, 'ab'.repeat(32), 2 ** 53),
    fc.string(),
    fc.double(),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(keyName, tie('value'), { maxKeys: 6 }),
  ),
})).value;
/** Deeply nested JSON of about `n` levels, arrays or objects. */
const deepJson = fc.record({ n: fc.integer({ min: 1, max: 30_000 }), obj: fc.boolean() }).map(({ n, obj }) => (obj ? '{"a":'.repeat(n) + '1' + '}'.repeat(n) : '['.repeat(n) + ']'.repeat(n)));
const hugeJson = fc.integer({ min: 1000, max: 300_000 }).map((n) => JSON.stringify({ jsonrpc: '2.0', method: 'notifications/x', params: { pad: 'x'.repeat(n) } }));
/** Byte sequences that are not UTF-8: lone continuation, overlong, surrogate, above U+10FFFF, truncated. */
const notUtf8 = fc
  .record({ bad: fc.constantFrom([0xff], [0x80], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82]), pos: fc.nat() })
  .map(({ bad, pos }) => {
    const text = Buffer.from('{"jsonrpc":"2.0","method":"notifications/x","params":{"s":"abc"}}');
    const at = pos % text.length;
    return short(Buffer.concat([text.subarray(0, at), Buffer.from(bad), text.subarray(at)]));
  });
/** A JSON-RPC request whose arguments are nested `depth` levels deep. */
const deepParams = fc.integer({ min: 100, max: 20_000 }).map((n) => `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"message":${'['.repeat(n)}${']'.repeat(n)}}}}`);

/** A mutation of a message, applied at run time to whatever the valid message is then. */
type Mutation =
  | { op: 'flip'; pos: number; bit: number }
  | { op: 'truncate'; keep: number }
  | { op: 'insert'; pos: number; junk: Buffer }
  | { op: 'delete'; pos: number; n: number }
  | { op: 'replace'; data: Buffer };
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), pos: fc.nat(), bit: fc.nat(7) }),
  fc.record({ op: fc.constant('flip' as const), pos: fc.nat(), bit: fc.nat(7) }),
  fc.record({ op: fc.constant('truncate' as const), keep: fc.nat() }),
  fc.record({ op: fc.constant('insert' as const), pos: fc.nat(), junk: bytes(40).filter((b) => b.length > 0) }),
  fc.record({ op: fc.constant('delete' as const), pos: fc.nat(), n: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ op: fc.constant('replace' as const), data: bytes(600) }),
);
function applyMutation(base: Buffer, m: Mutation): Buffer {
  const at = (pos: number, span = base.length) => (span === 0 ? 0 : pos % span);
  switch (m.op) {
    case 'flip': {
      const b = Buffer.from(base);
      const i = at(m.pos);
      b[i] = b[i]! ^ (1 << m.bit);
      return b;
    }
    case 'truncate':
      return base.subarray(0, at(m.keep));
    case 'insert': {
      const i = at(m.pos, base.length + 1);
      return Buffer.concat([base.subarray(0, i), m.junk, base.subarray(i)]);
    }
    case 'delete': {
      const i = at(m.pos);
      return Buffer.concat([base.subarray(0, i), base.subarray(i + m.n)]);
    }
    case 'replace':
      return m.data;
  }
}

/** One WebSocket message from the hostile client: its bytes and its kind. */
interface WsMessage {
  data: Buffer;
  binary: boolean;
  what: string;
}
const textMsg = (what: string) => (s: string | Buffer): WsMessage => ({ data: short(Buffer.from(s)), binary: false, what });
/** Messages that make sense in no handshake state. */
const garbageMessage: fc.Arbitrary<WsMessage> = fc.oneof(
  bytes(5000).map((data) => ({ data, binary: true, what: 'random-binary' })),
  bytes(5000).map((data) => ({ data, binary: false, what: 'random-text' })),
  jsonish.map((v) => textMsg('json-value')(JSON.stringify(v) ?? 'null')),
  deepJson.map(textMsg('deep-json')),
  hugeJson.map(textMsg('huge-json')),
  notUtf8.map(textMsg('not-utf8')),
);

// -------------------------------------------------------------------- fixture

interface ServerErrorRecord {
  error: Error;
  peer?: string;
}

let server: EncryptedWebSocketServer;
let url: string;
let port: number;
/** Errors the server reported since the last `forgetErrors()`; `errorCount()` counts all of them. */
const serverErrors: ServerErrorRecord[] = [];
let errorsForgotten = 0;
const errorCount = () => errorsForgotten + serverErrors.length;
/** Drop the test's own references to checked errors, so that the heap check measures the server. */
function forgetErrors(): void {
  errorsForgotten += serverErrors.length;
  serverErrors.length = 0;
}
let errorWaiters: Array<() => void> = [];
/** Messages the MCP layer saw on hostile connections, by the hostile client's node id. */
const deliveredToMcp = new Map<string, unknown[]>();
const honestIds = new Set<string>();
let honest: ClientFixture[] = [];
let honestCalls = 0;
let honestFailures: unknown[] = [];
let stopHonest = false;
let honestLoop: Promise<void>;
const fatal: unknown[] = [];
const onFatal = (e: unknown) => fatal.push(e);

function recordServerError(error: Error, peer?: string): void {
  serverErrors.push({ error, ...(peer ? { peer } : {}) });
  const waiters = errorWaiters;
  errorWaiters = [];
  for (const w of waiters) w();
}

/** Resolves once the server has reported more than `n` errors (bounded). */
async function serverErrorsBeyond(n: number): Promise<ServerErrorRecord[]> {
  const deadline = Date.now() + 5000;
  while (errorCount() <= n) {
    if (Date.now() > deadline) throw new Error('the server reported no error for a refused connection');
    await within(new Promise<void>((resolve) => errorWaiters.push(resolve)), 5000, 'a server error');
  }
  return serverErrors.slice(n - errorsForgotten);
}

function gc(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

async function settle(): Promise<void> {
  // Sockets the server dropped emit 'close' on later turns.
  const deadline = Date.now() + 5000;
  while (server.pendingHandshakes > 0 || server.connections.length !== honest.length || (server.connectionsPerAddress.get('127.0.0.1') ?? 0) !== honest.length) {
    if (Date.now() > deadline) {
      throw new Error(`server did not settle: ${server.pendingHandshakes} pending, ${server.connections.length} connections, ${JSON.stringify([...server.connectionsPerAddress])}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

let heapBefore = 0;

before(async () => {
  process.on('uncaughtException', onFatal);
  process.on('unhandledRejection', onFatal);
  server = new EncryptedWebSocketServer({
    identity: serverIdentity,
    allowAnyPeer: true,
    limits: { maxMessageBytes: MAX_MESSAGE_BYTES, upgradeTimeoutMs: 2000, handshakeTimeoutMs: 2000, ...ONE_ADDRESS_MANY_CLIENTS },
    onConnection: async (t: EncryptedWebSocketServerTransport, peer) => {
      const id = peer!.nodeId;
      if (!honestIds.has(id)) {
        const seen: unknown[] = [];
        deliveredToMcp.set(id, seen);
        t.onmessage = (m) => seen.push(m); // chained by McpServer.connect below
      }
      t.onerror = (e) => recordServerError(e, id);
      await makeMcpServer().connect(t);
    },
    onError: (e) => recordServerError(e),
  });
  const addr = await server.listen(0, '127.0.0.1');
  port = addr.port;
  url = `ws://127.0.0.1:${port}/mcp`;
  const configs: Array<{ framings: Framing[]; signatures: boolean }> = [
    { framings: ['binary'], signatures: false },
    { framings: ['json'], signatures: true },
    { framings: ['binary'], signatures: true },
  ];
  honest = await Promise.all(
    configs.map(async (c) => {
      const identity = NodeIdentity.generate();
      honestIds.add(identity.nodeId);
      return connectClient(url, { identity, expectedPeer: serverIdentity.nodeId, maxMessageBytes: MAX_MESSAGE_BYTES, ...c });
    }),
  );
  // Honest traffic the whole time the fuzzer runs.
  honestLoop = (async () => {
    for (let i = 0; !stopHonest; i++) {
      const c = honest[i % honest.length]!;
      try {
        const r = await within(c.client.callTool({ name: 'echo', arguments: { message: `honest ${i}` } }), 10_000, 'an honest call');
        if (textOf(r) !== `Echo: honest ${i}`) honestFailures.push(new Error(`wrong answer ${textOf(r)}`));
        honestCalls++;
      } catch (err) {
        honestFailures.push(err);
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  gc();
  heapBefore = process.memoryUsage().heapUsed;
});

after(async () => {
  stopHonest = true;
  await honestLoop;
  await Promise.all(honest.map((c) => c.client.close()));
  await server.close();
  process.off('uncaughtException', onFatal);
  process.off('unhandledRejection', onFatal);
});

// ------------------------------------------------------------- case checking

/** The terminator: one 1-byte binary frame, refused in every handshake state and by both framings. */
const TERMINATOR = Buffer.from([0x00]);

/** The close code a peer may see for a server-reported code: its own, or the RFC 6455 code of a ws-level violation. */
function closeMatches(close: CloseEvent, code: ErrorCode): boolean {
  const expected = new McpE2eError(code, '').closeCode;
  if (close.reason === code) return close.code === expected;
  // ws closes protocol violations itself, with RFC 6455 codes and its own reason.
  if (code === 'ERR_FRAME_TOO_LARGE') return close.code === CloseCode.MESSAGE_TOO_BIG || close.code === CloseCode.POLICY_VIOLATION;
  if (code === 'ERR_INVALID_MESSAGE') return close.code === 1007;
  if (code === 'ERR_FRAME_MALFORMED') return close.code === 1002;
  return false;
}

/**
 * After a hostile connection closed: the server reported a stable
 * McpE2eError for it whose close code is the one the peer saw (a case may
 * also report a non-fatal error first, e.g. a malformed control message),
 * and nothing it reported contains a secret.
 */
async function checkRefusal(mark: number, close: CloseEvent | undefined, secrets: Record<string, Buffer | string>, name: string): Promise<ErrorCode> {
  const hasFrame = close !== undefined && close.code !== 1006;
  const matching = (list: ServerErrorRecord[]) => list.find((r) => r.error instanceof McpE2eError && (!hasFrame || closeMatches(close, r.error.code)));
  let reported = await serverErrorsBeyond(mark);
  const deadline = Date.now() + 5000;
  while (!matching(reported) && Date.now() < deadline) reported = await serverErrorsBeyond(mark + reported.length);
  for (const r of reported) {
    assert.ok(r.error instanceof McpE2eError, `${name}: the server reported a non-McpE2eError: ${inspect(r.error)}`);
    assert.ok(ERROR_CODES.includes(r.error.code), `${name}: unknown code ${r.error.code}`);
    const text = [r.error.message, String(r.error.stack), inspect(r.error, { depth: 4 }), close?.reason ?? ''].join('\n');
    assertClean(text, secrets);
  }
  const closing = matching(reported);
  assert.ok(closing, `${name}: closed ${close?.code} ${JSON.stringify(close?.reason)} after ${reported.map((r) => (r.error as McpE2eError).code)}`);
  const code = (closing.error as McpE2eError).code;
  count(`${name}:${code}`);
  forgetErrors();
  return code;
}

/**
 * After a valid sealed CLOSE from the hostile client: the server closed with
 * 1000, reporting the reason as the peer's (authenticated) when there is one;
 * the records behind the CLOSE were never read.
 */
async function checkPeerClose(mark: number, close: CloseEvent | undefined, reason: string, secrets: Record<string, Buffer | string>): Promise<string> {
  assert.equal(close?.code, 1000, `after CLOSE the server closed with ${close?.code} ${close?.reason}`);
  if (reason !== '') {
    const [r] = await serverErrorsBeyond(mark);
    assert.ok(r!.error instanceof McpE2eError && r!.error.fromPeer, `the server reported ${inspect(r!.error)}`);
    assert.equal(r!.error.code, ERROR_CODES.includes(reason as ErrorCode) ? reason : 'ERR_CONNECTION_CLOSED');
    assertClean(r!.error.message, secrets);
  }
  const label = `post-close:${reason === '' ? 'orderly' : 'with-reason'}`;
  count(label);
  forgetErrors();
  return label;
}

/** Open a raw ws, send the messages and the terminator, and wait for the server to close it. */
async function hostileWs(send: (ws: WebSocket) => Promise<void> | void): Promise<CloseEvent> {
  const ws = await openRaw(url, [SUBPROTOCOL_ENCRYPTED], { maxPayload: 1024 * 1024 });
  const closed = within(
    once(ws, 'close').then(([code, reason]) => ({ code: code as number, reason: (reason as Buffer).toString('utf8') })),
    10_000,
    'the server to close the hostile connection',
  );
  await send(ws);
  if (ws.readyState === ws.OPEN) ws.send(TERMINATOR, { binary: true });
  return closed;
}

function assertHealthy(): void {
  assert.deepEqual(fatal.map(String), [], 'no uncaught exception or unhandled rejection');
  assert.deepEqual(honestFailures.map(String), [], 'honest sessions unaffected');
}

// ----------------------------------------------------------------- properties

describe('socket fuzz: hostile input against a live server with honest clients', () => {
  test('before the handshake: random, mutated, deep, huge and non-UTF-8 messages', async () => {
    const step1 = Buffer.from(new Handshake('initiator', NodeIdentity.generate(), { framings: ['binary', 'json'] }).start());
    const message = fc.oneof(garbageMessage, mutation.map((m) => textMsg('mutated-step1')(applyMutation(step1, m))));
    await fc.assert(
      fc.asyncProperty(fc.array(message, { minLength: 1, maxLength: 3 }), async (msgs) => {
        const mark = errorCount();
        const close = await hostileWs((ws) => {
          for (const m of msgs) ws.send(m.data, { binary: m.binary });
        });
        await checkRefusal(mark, close, { serverKey: SERVER_SEED }, 'pre');
      }),
      params,
    );
    await settle();
    assertHealthy();
  });

  test('during the handshake: a valid step 1, then a mutated step 3 or garbage', async () => {
    const attack = fc.oneof(
      { weight: 3, arbitrary: mutation.map((m) => ({ kind: 'mutated-step3' as const, m })) },
      { weight: 1, arbitrary: garbageMessage.map((g) => ({ kind: 'garbage' as const, g })) },
      { weight: 1, arbitrary: fc.constant({ kind: 'step1-again' as const }) },
    );
    await fc.assert(
      fc.asyncProperty(attack, fc.constantFrom<Framing[]>(['binary'], ['json'], ['binary', 'json']), fc.boolean(), async (a, framings, signatures) => {
        // A fresh identity per case: what its MCP layer saw belongs to this case alone.
        const seed = randomBytes(32);
        const me = NodeIdentity.fromPrivateKey(seed);
        const hs = new Handshake('initiator', me, { framings, signatures });
        const mark = errorCount();
        const close = await hostileWs(async (ws) => {
          const step2 = once(ws, 'message');
          const m1 = hs.start();
          ws.send(m1);
          const [data] = await within(step2, 5000, 'step 2');
          const step = hs.receive((data as Buffer).toString('utf8'));
          if (a.kind === 'mutated-step3') ws.send(applyMutation(Buffer.from(step.send!), a.m), { binary: false });
          else if (a.kind === 'garbage') ws.send(a.g.data, { binary: a.g.binary });
          else ws.send(m1);
        });
        await checkRefusal(mark, close, { serverKey: SERVER_SEED, clientKey: seed }, `mid-${a.kind}`);
        // Whatever was accepted as step 3, nothing reached the MCP layer.
        assert.deepEqual(deliveredToMcp.get(me.nodeId) ?? [], []);
        deliveredToMcp.delete(me.nodeId);
      }),
      params,
    );
    await settle();
    assertHealthy();
  });

  test('after the handshake (json and binary framing, signed or not): mutated, random, truncated, oversized, wrong-kind, replayed frames and invalid sealed payloads', async () => {
    const MARKER = 'PLAINTEXT-MARKER-51c0';
    const note = (i: number) => `{"jsonrpc":"2.0","method":"notifications/fuzz","params":{"i":${i},"m":"${MARKER}"}}`;
    const attack = fc.oneof(
      mutation.map((m) => ({ kind: 'mutated' as const, m })),
      fc.record({ kind: fc.constant('random' as const), data: bytes(3000), asText: fc.boolean() }),
      fc.record({ kind: fc.constant('truncated' as const), keep: fc.nat() }),
      fc.record({ kind: fc.constant('oversized' as const), extra: fc.integer({ min: 1, max: 200_000 }) }),
      fc.constant({ kind: 'wrong-kind' as const }),
      fc.constant({ kind: 'replay' as const }),
      fc.constant({ kind: 'reorder' as const }),
      fc.record({
        kind: fc.constant('sealed' as const),
        payload: fc.oneof(notUtf8, deepJson.map(shortText), deepParams.map(shortText), jsonish.map((v) => shortText(JSON.stringify(v) ?? 'null')), bytes(2000)),
      }),
      fc.record({ kind: fc.constant('sealed-control' as const), payload: bytes(500) }),
      // A correctly sealed record of any structure (lying lengths, unknown types, CLOSE not last, trailing bytes).
      fc.record({
        kind: fc.constant('raw-record' as const),
        entries: fc.array(fc.record({ type: fc.oneof(fc.constantFrom(1, 2, 3), fc.integer({ min: 0, max: 255 })), payload: fc.oneof(bytes(80), fc.constant(short(Buffer.from('{"type":"x-fuzz"}')))) }), { minLength: 1, maxLength: 5 }),
        lie: fc.option(fc.tuple(fc.nat(), fc.integer({ min: -4, max: 4 })), { nil: undefined }),
        tail: fc.option(bytes(4), { nil: undefined }),
      }),
      // The sealed CLOSE (orderly, with a code, or with a reason that is not one), then more records.
      fc.record({ kind: fc.constant('close' as const), reason: fc.constantFrom('', 'ERR_IDLE_TIMEOUT', 'ERR_PEER_REJECTED', 'not a code', 'X'.repeat(65)), after: fc.integer({ min: 0, max: 2 }) }),
    );
    await fc.assert(
      fc.asyncProperty(attack, fc.constantFrom<Framing>('binary', 'json'), fc.boolean(), fc.integer({ min: 0, max: 2 }), async (a, framing, signatures, prefix) => {
        // A fresh identity per case: what its MCP layer saw belongs to this case alone.
        const seed = randomBytes(32);
        const me = NodeIdentity.fromPrivateKey(seed);
        const hs = new Handshake('initiator', me, { framings: [framing], signatures });
        const mark = errorCount();
        const secrets: Record<string, Buffer | string> = { serverKey: SERVER_SEED, clientKey: seed, marker: MARKER };
        let delivered = prefix;
        const close = await hostileWs(async (ws) => {
          const step2 = once(ws, 'message');
          ws.send(hs.start());
          const [data] = await within(step2, 5000, 'step 2');
          const step = hs.receive((data as Buffer).toString('utf8'));
          const result = step.result!;
          secrets.sendKey = Buffer.from(result.sendKey);
          secrets.recvKey = Buffer.from(result.recvKey);
          ws.send(step.send!);
          // Our own limit is larger than the server's, so we can seal what it must refuse.
          const sendKey = Buffer.from(result.sendKey);
          const session = new Session(result, me, { maxMessageBytes: 1024 * 1024 });
          const raw = (counter: number, plain: Buffer) => {
            const w = sealRaw({ sessionId: result.sessionId, direction: DIRECTION.INITIATOR_TO_RESPONDER, framing, signatures: result.signatures, keys: [sendKey], signer: me }, 0, counter, plain);
            return framing === 'json' ? w : Buffer.from(w, 'hex');
          };
          const sent: Array<string | Buffer> = [];
          const sendFrame = (f: string | Buffer, binary = typeof f !== 'string') => ws.send(f, { binary });
          for (let i = 0; i < prefix; i++) {
            const f = session.seal(note(i));
            sent.push(f);
            sendFrame(f);
          }
          const next = () => session.seal(note(prefix));
          const asBytes = (f: string | Buffer) => (typeof f === 'string' ? Buffer.from(f) : f);
          switch (a.kind) {
            case 'mutated': {
              const f = next();
              const mutated = applyMutation(asBytes(f), a.m);
              sendFrame(mutated, framing === 'binary');
              break;
            }
            case 'random':
              sendFrame(a.data, !a.asText);
              break;
            case 'truncated': {
              const f = asBytes(next());
              sendFrame(f.subarray(0, a.keep % f.length), framing === 'binary');
              break;
            }
            case 'oversized':
              sendFrame(session.seal(`{"jsonrpc":"2.0","method":"notifications/big","params":{"p":"${'o'.repeat(MAX_MESSAGE_BYTES + a.extra)}"}}`));
              break;
            case 'wrong-kind': {
              const f = next();
              sendFrame(asBytes(f), framing !== 'binary');
              break;
            }
            case 'replay':
              // With no frame sent yet, replay the last handshake message into the session.
              sendFrame(sent.at(-1) ?? step.send!, sent.length > 0 && framing === 'binary');
              break;
            case 'reorder': {
              const first = next();
              const second = session.seal(note(prefix + 1));
              sendFrame(second);
              sendFrame(first);
              break;
            }
            case 'sealed': {
              let valid = false;
              try {
                valid = isJsonRpcMessage(JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(a.payload)));
              } catch {
                valid = false;
              }
              if (valid && a.payload.length <= MAX_MESSAGE_BYTES) delivered++;
              sendFrame(session.seal(a.payload));
              break;
            }
            case 'sealed-control':
              sendFrame(session.seal(a.payload, ContentType.CONTROL));
              break;
            case 'raw-record': {
              const plain = plaintextOf(a.entries.map((e) => ({ type: e.type, payload: e.payload })));
              if (a.lie) {
                let at = 0;
                for (let k = 0; k < a.lie[0] % a.entries.length; k++) at += 5 + a.entries[k]!.payload.length;
                plain.writeUInt32BE(Math.max(0, plain.readUInt32BE(at + 1) + a.lie[1]), at + 1);
              }
              // Every MCP entry could at most be delivered.
              delivered += a.entries.filter((e) => e.type === ContentType.MCP).length;
              sendFrame(raw(prefix, a.tail ? Buffer.concat([plain, a.tail]) : plain));
              break;
            }
            case 'close': {
              const reason = Buffer.from(a.reason, 'latin1');
              sendFrame(raw(prefix, plaintextOf([{ type: ContentType.CLOSE, payload: reason }])));
              for (let k = 1; k <= a.after; k++) sendFrame(raw(prefix + k, plaintextOf([{ type: ContentType.MCP, payload: Buffer.from(note(prefix + k)) }])));
              break;
            }
          }
        });
        // After a valid CLOSE the server reports the peer's reason (or nothing, for an orderly one) and closes with 1000.
        const validClose = a.kind === 'close' && /^(|[A-Z][A-Z0-9_]{0,63})$/.test(a.reason);
        const code = validClose ? await checkPeerClose(mark, close, a.reason, secrets) : await checkRefusal(mark, close, secrets, `post-${a.kind}`);
        // Only the valid prefix (and a sealed payload that is a real JSON-RPC message) reached the MCP layer.
        const seen = deliveredToMcp.get(me.nodeId) ?? [];
        assert.ok(seen.length <= delivered, `${a.kind}: the MCP layer saw ${seen.length} messages, at most ${delivered} were valid (${code})`);
        for (const m of seen) assert.notEqual((m as { method?: string }).method, 'notifications/big');
        deliveredToMcp.delete(me.nodeId);
      }),
      params,
    );
    await settle();
    assertHealthy();
  });

  test('raw WebSocket frames over TCP after the upgrade: bad opcodes, reserved bits, unmasked, huge declared lengths, fragments', async () => {
    const frame = fc.oneof(
      fc.record({
        opcode: fc.integer({ min: 0, max: 15 }),
        fin: fc.boolean(),
        rsv: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 7 })),
        mask: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
        payload: bytes(300),
        declared: fc.option(fc.constantFrom(126n, 4097n, 65535n, 65536n, 2n ** 32n, 2n ** 53n, 2n ** 63n - 1n), { nil: undefined }),
      }).map((f) => short(clientFrame(f.opcode, f.payload, { fin: f.fin, rsv: f.rsv, mask: f.mask, ...(f.declared !== undefined ? { declaredLength: f.declared } : {}) }))),
      bytes(200),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(frame, { minLength: 1, maxLength: 3 }), async (frames) => {
        const mark = errorCount();
        const peer = await rawTcp(port);
        peer.socket.write(upgradeRequest());
        peer.socket.write(Buffer.concat([...frames, clientFrame(0x2, TERMINATOR)]));
        // EOF: whatever state the server's parser is in, it must end the connection now.
        peer.socket.end();
        const { close } = await within(peer.closed, 10_000, 'the server to drop the raw peer');
        await checkRefusal(mark, close, { serverKey: SERVER_SEED }, 'raw');
      }),
      params,
    );
    await settle();
    assertHealthy();
  });

  test('afterwards: honest sessions worked throughout, the server holds nothing of the hostile peers, memory is back', async () => {
    await settle();
    assertHealthy();
    assert.ok(honestCalls > 10, `only ${honestCalls} honest calls completed`);
    for (const c of honest) assert.equal(textOf(await c.client.callTool({ name: 'add', arguments: { a: 20, b: 22 } })), '42');
    gc();
    const growth = process.memoryUsage().heapUsed - heapBefore;
    const total = Object.values(socketFuzzCounts).reduce((a, b) => a + b, 0);
    process.stdout.write(`# socket fuzz cases: ${total} (FUZZ_SOCKET_RUNS=${SOCKET_RUNS} per property, FUZZ_SEED=${SEED}); honest calls ${honestCalls}; heap growth ${(growth / 1024 / 1024).toFixed(1)} MB\n`);
    process.stdout.write(`# socket fuzz outcomes: ${JSON.stringify(Object.fromEntries(Object.entries(socketFuzzCounts).sort()))}\n`);
    assert.ok(total >= SOCKET_RUNS * 4, `only ${total} cases ran`);
    assert.ok(growth < 16 * 1024 * 1024, `heap grew by ${growth} bytes over ${total} hostile connections`);
  });
});
