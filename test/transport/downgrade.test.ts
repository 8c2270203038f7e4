/**
 * An active attacker between client and server (a WebSocket relay) tries to
 * downgrade or tamper: strip or swap the subprotocol, inject plaintext
 * frames, alter handshake messages, alter or replay session frames. Every
 * attempt must be refused, with the right error code, on the side that
 * detects it, and never fall back to plaintext.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  EncryptedWebSocketClientTransport,
  NodeIdentity,
  SUBPROTOCOL_ENCRYPTED,
  SUBPROTOCOL_PLAINTEXT,
  type Framing,
} from '../../src/index.js';
import { codeOf, connectClient, deferred, describeCode, startServer, textOf, within, type ServerFixture } from './helpers.js';
import { editJson, flipHex, startRelay, textFrame, type Frame, type RelayOptions } from './relay.js';

const INITIALIZE = JSON.stringify({
  jsonrpc: '2.0',
  id: 0,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'mallory', version: '1' } },
});

describe('downgrade and tamper through a relay', () => {
  let srv: ServerFixture;
  let plainOk: ServerFixture;
  const identity = NodeIdentity.generate();

  before(async () => {
    srv = await startServer({ allowedPeers: [identity.nodeId] });
    plainOk = await startServer({ allowedPeers: [identity.nodeId], allowPlaintext: true });
  });
  after(async () => {
    await srv.close();
    await plainOk.close();
  });

  /** Run a client through a relay; `start()`'s outcome and every error the client reported. */
  async function attempt(relay: Omit<RelayOptions, 'upstream'>, opts: { server?: ServerFixture; framings?: Framing[]; signatures?: boolean } = {}) {
    const server = opts.server ?? srv;
    const mark = server.errors.length;
    const r = await startRelay({ upstream: server.url, ...relay });
    const t = new EncryptedWebSocketClientTransport(r.url, {
      identity,
      expectedPeer: server.identity.nodeId,
      framings: opts.framings ?? ['binary', 'json'],
      signatures: opts.signatures ?? true,
    });
    const errors: Error[] = [];
    const closed = deferred();
    t.onerror = (e) => errors.push(e);
    t.onclose = () => closed.resolve();
    const client = new Client({ name: 'victim', version: '1' });
    const outcome = await client.connect(t).then(
      () => undefined,
      (e: unknown) => e,
    );
    await within(closed.promise, 5000, 'the client transport to close');
    await r.close();
    // Wait for the server to report `code` for this attempt (it may come after the client has closed).
    const serverError = (code: string) => server.errorWithCode(code, mark).then(describeCode);
    return { outcome, codes: errors.map(describeCode), transport: t, serverError };
  }

  test('control: a relay that changes nothing carries a working session', async () => {
    const r = await startRelay({ upstream: srv.url });
    try {
      const c = await connectClient(r.url, { identity, expectedPeer: srv.identity.nodeId });
      assert.equal(textOf(await c.client.callTool({ name: 'add', arguments: { a: 40, b: 2 } })), '42');
      await c.client.close();
    } finally {
      await r.close();
    }
  });

  test('answering the client with the plaintext subprotocol: ERR_SUBPROTOCOL', async () => {
    const { outcome, codes } = await attempt({ answer: () => SUBPROTOCOL_PLAINTEXT });
    assert.equal(codeOf(outcome), 'ERR_SUBPROTOCOL');
    assert.deepEqual(codes, ['ERR_SUBPROTOCOL']);
  });

  test('answering the client with no subprotocol at all: ERR_SUBPROTOCOL', async () => {
    const { outcome } = await attempt({ answer: () => false });
    assert.equal(codeOf(outcome), 'ERR_SUBPROTOCOL');
  });

  test('stripping the offer upstream (asking the server for plaintext): server closes 1008 ERR_PLAINTEXT_REFUSED, which the client reports as an unauthenticated claim', async () => {
    const { outcome, serverError } = await attempt({ upstreamProtocols: () => [SUBPROTOCOL_PLAINTEXT], answer: () => SUBPROTOCOL_ENCRYPTED });
    assert.equal(describeCode(outcome), 'ERR_CONNECTION_CLOSED (peer: ERR_PLAINTEXT_REFUSED)', String(outcome));
    assert.equal(await serverError('ERR_PLAINTEXT_REFUSED'), 'ERR_PLAINTEXT_REFUSED');
  });

  test('removing the subprotocol upstream: ERR_SUBPROTOCOL on both sides', async () => {
    const { outcome, serverError } = await attempt({ upstreamProtocols: () => [], answer: () => SUBPROTOCOL_ENCRYPTED });
    assert.equal(describeCode(outcome), 'ERR_CONNECTION_CLOSED (peer: ERR_SUBPROTOCOL)', String(outcome));
    assert.equal(await serverError('ERR_SUBPROTOCOL'), 'ERR_SUBPROTOCOL');
  });

  test('downgrading to a server that allows plaintext: the client still never speaks plaintext', async () => {
    const { outcome } = await attempt(
      { upstreamProtocols: () => [SUBPROTOCOL_PLAINTEXT], answer: () => SUBPROTOCOL_ENCRYPTED },
      { server: plainOk },
    );
    // The server reads the handshake message as (invalid) plain MCP and closes.
    assert.equal(describeCode(outcome), 'ERR_CONNECTION_CLOSED (peer: ERR_INVALID_MESSAGE)');
  });

  test('a plaintext frame injected before the handshake: ERR_HANDSHAKE_MALFORMED', async () => {
    const { outcome, serverError } = await attempt({ toServer: (f, i) => (i === 0 ? [textFrame(INITIALIZE), f] : [f]) });
    assert.equal(describeCode(outcome), 'ERR_CONNECTION_CLOSED (peer: ERR_HANDSHAKE_MALFORMED)');
    assert.equal(await serverError('ERR_HANDSHAKE_MALFORMED'), 'ERR_HANDSHAKE_MALFORMED');
  });

  test('a plaintext frame injected toward the server inside the session: ERR_FRAME_MALFORMED', async () => {
    const { outcome, codes } = await attempt({ toServer: (f, i) => (i === 1 ? [f, textFrame(INITIALIZE)] : [f]) });
    assert.ok(outcome, 'connect failed');
    assert.ok(codes.includes('ERR_FRAME_MALFORMED (sealed by peer)'), `client saw ${codes}`);
  });

  test('a plaintext frame injected toward the client inside the session: ERR_FRAME_MALFORMED', async () => {
    const response = JSON.stringify({ jsonrpc: '2.0', id: 0, result: { protocolVersion: '2025-06-18', capabilities: {}, serverInfo: { name: 'mallory', version: '1' } } });
    const { outcome, codes } = await attempt({ toClient: (f, i) => (i === 1 ? [textFrame(response)] : [f]) });
    assert.ok(outcome, 'connect failed');
    assert.deepEqual(codes, ['ERR_FRAME_MALFORMED']);
  });

  test('a plaintext frame in a JSON-framed session is refused as well', async () => {
    const { codes } = await attempt({ toServer: (f, i) => (i === 1 ? [f, textFrame(INITIALIZE)] : [f]) }, { framings: ['json'] });
    assert.ok(codes.includes('ERR_FRAME_MALFORMED (sealed by peer)'), `client saw ${codes}`);
  });

  test("altering the server's signature (step 2): ERR_HANDSHAKE_BAD_SIGNATURE on both sides", async () => {
    const { outcome, serverError } = await attempt({
      toClient: (f, i) => (i === 0 ? [editJson(f, (d) => (d.signature = flipHex(d.signature as string, 10)))] : [f]),
    });
    assert.equal(codeOf(outcome), 'ERR_HANDSHAKE_BAD_SIGNATURE');
    const claim = 'ERR_CONNECTION_CLOSED (peer: ERR_HANDSHAKE_BAD_SIGNATURE)';
    assert.equal(await serverError(claim), claim);
  });

  test("swapping the server's ephemeral key (step 2): refused", async () => {
    const other = NodeIdentity.generate(); // any valid-looking 32-byte key
    const { outcome } = await attempt({
      toClient: (f, i) => (i === 0 ? [editJson(f, (d) => (d.public_key = other.publicKey.toString('hex')))] : [f]),
    });
    // Another shared secret: the finished MAC (checked before the signature) fails.
    assert.ok(['ERR_HANDSHAKE_BAD_MAC', 'ERR_HANDSHAKE_LOW_ORDER_KEY'].includes(codeOf(outcome)!), `got ${codeOf(outcome)}`);
  });

  test('stripping signatures from the offer (step 1): ERR_HANDSHAKE_OPTIONS', async () => {
    const { outcome } = await attempt({
      toServer: (f, i) => (i === 0 ? [editJson(f, (d) => ((d.options as { signatures: boolean }).signatures = false))] : [f]),
    });
    assert.equal(codeOf(outcome), 'ERR_HANDSHAKE_OPTIONS');
  });

  test('narrowing the offered framings (step 1): the transcript no longer matches, ERR_HANDSHAKE_BAD_MAC', async () => {
    const { outcome } = await attempt({
      toServer: (f, i) => (i === 0 ? [editJson(f, (d) => ((d.options as { framings: string[] }).framings = ['json']))] : [f]),
    });
    assert.equal(codeOf(outcome), 'ERR_HANDSHAKE_BAD_MAC');
  });

  test('stripping a later version from the offer (step 1): the transcript no longer matches, ERR_HANDSHAKE_BAD_MAC', async () => {
    const { outcome } = await attempt({
      toServer: (f, i) => (i === 0 ? [editJson(f, (d) => (d.versions = [2, 1]))] : [f]),
    });
    // [2, 1] is well formed (version 1 exists, retired): the responder answers, the initiator's transcript differs.
    assert.equal(codeOf(outcome), 'ERR_HANDSHAKE_BAD_MAC');
  });

  test("altering the client's sealed step 3: the server refuses with ERR_HANDSHAKE_BAD_MAC; the client, whose session had started, sees it cut short", async () => {
    const { outcome, codes, serverError } = await attempt({
      toServer: (f, i) => (i === 1 ? [editJson(f, (d) => (d.ciphertext = flipHex(d.ciphertext as string, 3)))] : [f]),
    });
    assert.ok(outcome, 'connect failed');
    assert.deepEqual(codes, ['ERR_SESSION_TRUNCATED (peer: ERR_HANDSHAKE_BAD_MAC)']);
    assert.equal(await serverError('ERR_HANDSHAKE_BAD_MAC'), 'ERR_HANDSHAKE_BAD_MAC');
  });

  test('a flipped bit in a session frame: ERR_FRAME_DECRYPT', async () => {
    const flip = (f: Frame): Frame => {
      const data = Buffer.from(f.data);
      data[data.length - 1]! ^= 1;
      return { data, isBinary: f.isBinary };
    };
    const { outcome, codes } = await attempt({ toServer: (f, i) => (i === 2 ? [flip(f)] : [f]) }, { framings: ['binary'] });
    assert.ok(outcome, 'connect failed');
    // The server detected it and said so in its sealed CLOSE: the client learns it authenticated.
    assert.deepEqual(codes, ['ERR_FRAME_DECRYPT (sealed by peer)']);
  });

  test('a replayed session frame: ERR_FRAME_COUNTER', async () => {
    const { outcome, codes } = await attempt({ toServer: (f, i) => (i === 2 ? [f, f] : [f]) });
    // The first copy is the genuine initialize; the copy is refused before any answer can matter.
    void outcome;
    assert.deepEqual(codes, ['ERR_FRAME_COUNTER (sealed by peer)']);
  });

  test('a dropped session frame: the next one is refused with ERR_FRAME_COUNTER', async () => {
    const r = await startRelay({ upstream: srv.url, toServer: (f, i) => (i === 2 ? [] : [f]) });
    try {
      const t = new EncryptedWebSocketClientTransport(r.url, { identity, expectedPeer: srv.identity.nodeId });
      const errors: Error[] = [];
      const closed = deferred();
      t.onerror = (e) => errors.push(e);
      t.onclose = () => closed.resolve();
      await t.start();
      await t.send({ jsonrpc: '2.0', method: 'notifications/one' }); // dropped by the relay
      // In another turn, so that it travels in a record of its own.
      await new Promise((resolve) => setImmediate(resolve));
      await t.send({ jsonrpc: '2.0', method: 'notifications/two' });
      await within(closed.promise, 5000, 'the client transport to close');
      assert.deepEqual(errors.map(describeCode), ['ERR_FRAME_COUNTER (sealed by peer)']);
    } finally {
      await r.close();
    }
  });
});
