import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Session } from '../../src/session/session.js';
import { ContentType, type Framing } from '../../src/protocol.js';
import type { HandshakeResult } from '../../src/handshake/handshake.js';
import type { NodeIdentity } from '../../src/identity/identity.js';
import { McpE2eError } from '../../src/errors.js';
import { handshakePair, sessionPair, throwsCode, flipBit, flipBitText } from '../helpers/pair.js';

const MODES: Array<{ framing: Framing; signatures: boolean }> = [
  { framing: 'json', signatures: true },
  { framing: 'json', signatures: false },
  { framing: 'binary', signatures: true },
  { framing: 'binary', signatures: false },
];
const modeName = (m: { framing: Framing; signatures: boolean }) => `${m.framing}${m.signatures ? '+sig' : ''}`;
const cfg = (m: { framing: Framing; signatures: boolean }) => ({ framings: [m.framing], signatures: m.signatures });

/** A session over a copy of the handshake keys, so one handshake can feed many sessions. */
function fresh(result: HandshakeResult, id: NodeIdentity, opts = {}): Session {
  return new Session({ ...result, sendKey: Buffer.from(result.sendKey), recvKey: Buffer.from(result.recvKey) }, id, opts);
}

const msg = (i: number) => JSON.stringify({ jsonrpc: '2.0', id: i, method: 'tools/call', params: { n: i, pad: 'x'.repeat(i % 50) } });

for (const mode of MODES) {
  test(`round trip both ways, ${modeName(mode)}, across key rotations`, () => {
    const { client, server } = sessionPair(cfg(mode), cfg(mode), { rekeyAfterRecords: 3 });
    assert.equal(client.framing, mode.framing);
    assert.equal(client.signatures, mode.signatures);
    for (let i = 0; i < 20; i++) {
      const f = client.seal(msg(i));
      assert.equal(typeof f === 'string', mode.framing === 'json');
      const [got] = server.open(f);
      assert.equal(got!.contentType, ContentType.MCP);
      assert.equal(got!.payload.toString('utf8'), msg(i));
      const back = server.seal(msg(1000 + i), ContentType.CONTROL);
      const [r] = client.open(back);
      assert.equal(r!.contentType, ContentType.CONTROL);
      assert.equal(r!.payload.toString(), msg(1000 + i));
    }
    // 20 frames, rotation every 3: epochs 0..6.
    assert.equal(client.sendEpoch, 6);
    assert.equal(server.recvEpoch, 6);
    assert.equal(server.sendEpoch, 6);
    assert.equal(client.recvEpoch, 6);
  });
}

test('the plaintext never appears in the frame (any framing)', () => {
  for (const mode of MODES) {
    const { client } = sessionPair(cfg(mode), cfg(mode));
    const secret = 'TOP-SECRET-' + 'q'.repeat(40);
    const f = client.seal(JSON.stringify({ secret }));
    const wire = typeof f === 'string' ? f : f.toString('latin1');
    assert.ok(!wire.includes('TOP-SECRET'), modeName(mode));
    assert.ok(!wire.includes(Buffer.from('TOP-SECRET').toString('hex')), modeName(mode));
  }
});

test('rotation by bytes and by time, without a round trip', () => {
  let now = 1_000;
  const { client, server } = sessionPair({}, {}, { rekeyAfterBytes: 1000, rekeyAfterMs: 60_000, now: () => now });
  server.open(client.seal('a'.repeat(600)));
  server.open(client.seal('b'.repeat(600))); // 1202 bytes would exceed 1000: rotate first
  assert.equal(client.sendEpoch, 1);
  assert.equal(server.recvEpoch, 1);
  now += 60_000;
  server.open(client.seal('c'));
  assert.equal(client.sendEpoch, 2);
  assert.equal(server.recvEpoch, 2);
  // Large payloads are fine across rotations.
  const big = 'z'.repeat(300_000);
  assert.equal(server.open(client.seal(big))[0]!.payload.length, big.length);
});

test('a replayed, reordered or dropped frame ends the session', () => {
  for (const mode of MODES) {
    const { client, server } = sessionPair(cfg(mode), cfg(mode));
    const f0 = client.seal(msg(0));
    const f1 = client.seal(msg(1));
    const f2 = client.seal(msg(2));
    server.open(f0);
    throwsCode(() => server.open(f0), 'ERR_FRAME_COUNTER'); // replay
    throwsCode(() => server.open(f1), 'ERR_SESSION_CLOSED'); // the failure ended the session
    const p = sessionPair(cfg(mode), cfg(mode));
    const g0 = p.client.seal(msg(0));
    const g1 = p.client.seal(msg(1));
    throwsCode(() => p.server.open(g1), 'ERR_FRAME_COUNTER'); // reordered / g0 dropped
    void g0;
    void f2;
  }
});

test('frames from another session, or the other direction, are refused', () => {
  const a = sessionPair();
  const b = sessionPair();
  throwsCode(() => b.server.open(a.client.seal(msg(0))), ['ERR_FRAME_DECRYPT', 'ERR_FRAME_SENDER']);
  // Reflection: the client's own frame sent back to it.
  const c = sessionPair();
  throwsCode(() => c.client.open(c.client.seal(msg(0))), ['ERR_FRAME_DECRYPT', 'ERR_FRAME_SENDER']);
});

test('every single-bit flip of a session frame is refused', () => {
  for (const mode of MODES) {
    const p = handshakePair(cfg(mode), cfg(mode));
    const sender = fresh(p.initiator, p.alice);
    const frame = sender.seal(msg(7));
    let n = 0;
    const len = typeof frame === 'string' ? Buffer.byteLength(frame) : frame.length;
    for (let i = 0; i < len; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const bad = typeof frame === 'string' ? flipBitText(frame, i, bit) : flipBit(frame, i, bit);
        const receiver = fresh(p.responder, p.bob);
        try {
          receiver.open(bad);
          assert.fail(`${modeName(mode)}: flip at ${i}/${bit} accepted`);
        } catch (err) {
          assert.ok(err instanceof McpE2eError, String(err));
          assert.match(err.code, /^ERR_FRAME_/);
        }
        n++;
      }
    }
    assert.equal(n, len * 8);
    // And the untouched frame opens.
    assert.equal(fresh(p.responder, p.bob).open(frame)[0]!.payload.toString(), msg(7));
  }
});

test('truncated frames and truncated GCM tags are refused', () => {
  const bin = handshakePair(cfg({ framing: 'binary', signatures: false }), cfg({ framing: 'binary', signatures: false }));
  const f = fresh(bin.initiator, bin.alice).seal(msg(1)) as Buffer;
  for (const cut of [1, 4, 12, 15, 16, 17, f.length - 14, f.length - 1]) {
    throwsCode(() => fresh(bin.responder, bin.bob).open(f.subarray(0, f.length - cut)), ['ERR_FRAME_DECRYPT', 'ERR_FRAME_MALFORMED']);
  }
  const js = handshakePair(cfg({ framing: 'json', signatures: true }), cfg({ framing: 'json', signatures: true }));
  const t = fresh(js.initiator, js.alice).seal(msg(1)) as string;
  const doc = JSON.parse(t);
  for (const cutBytes of [1, 4, 12, 16]) {
    const short = JSON.stringify({ ...doc, ciphertext: doc.ciphertext.slice(0, doc.ciphertext.length - 2 * cutBytes) });
    throwsCode(() => fresh(js.responder, js.bob).open(short), ['ERR_FRAME_DECRYPT', 'ERR_FRAME_SIGNATURE']);
  }
});

test('JSON envelope: sender, signature presence, epoch and frame kind are enforced', () => {
  const p = handshakePair(cfg({ framing: 'json', signatures: true }), cfg({ framing: 'json', signatures: true }));
  const f = fresh(p.initiator, p.alice).seal(msg(1)) as string;
  const d = JSON.parse(f);
  const open = (x: unknown) => () => fresh(p.responder, p.bob).open(x as string);
  throwsCode(open(JSON.stringify({ ...d, sender: p.bob.nodeId })), 'ERR_FRAME_SENDER');
  const { signature, ...unsigned } = d;
  void signature;
  throwsCode(open(JSON.stringify(unsigned)), 'ERR_FRAME_SIGNATURE');
  throwsCode(open(JSON.stringify({ ...d, epoch: 2 })), 'ERR_FRAME_EPOCH');
  throwsCode(open(JSON.stringify({ ...d, epoch: 1 })), 'ERR_FRAME_DECRYPT'); // right shape, wrong key
  throwsCode(open(Buffer.from(f)), 'ERR_FRAME_MALFORMED');
  throwsCode(open(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' })), 'ERR_FRAME_MALFORMED'); // injected plaintext
  throwsCode(open(JSON.stringify({ ...d, nonce: '01' + d.nonce.slice(2) })), 'ERR_FRAME_MALFORMED');
  throwsCode(open(JSON.stringify({ ...d, extra: true })), 'ERR_FRAME_MALFORMED');
  const q = handshakePair(cfg({ framing: 'json', signatures: false }), cfg({ framing: 'json', signatures: false }));
  const g = JSON.parse(fresh(q.initiator, q.alice).seal(msg(1)) as string);
  const { sender, ...head } = g;
  throwsCode(() => fresh(q.responder, q.bob).open(JSON.stringify({ ...head, signature: 'ab'.repeat(64), sender })), 'ERR_FRAME_SIGNATURE');
  // The canonical form only: the same members in another order, or with whitespace, are malformed.
  throwsCode(() => fresh(q.responder, q.bob).open(JSON.stringify({ sender, ...head })), 'ERR_FRAME_MALFORMED');
  throwsCode(() => fresh(q.responder, q.bob).open(JSON.stringify(g, null, 1)), 'ERR_FRAME_MALFORMED');
  throwsCode(() => fresh(q.responder, q.bob).open(JSON.stringify(g).replace('"epoch":0', '"epoch":0.0')), 'ERR_FRAME_MALFORMED');
});

test('binary framing: text frames and wrong flags are refused', () => {
  const p = handshakePair(cfg({ framing: 'binary', signatures: true }), cfg({ framing: 'binary', signatures: true }));
  const f = fresh(p.initiator, p.alice).seal(msg(1)) as Buffer;
  throwsCode(() => fresh(p.responder, p.bob).open(f.toString('latin1')), 'ERR_FRAME_MALFORMED');
  const unsignedFlag = Buffer.from(f);
  unsignedFlag[1] = 0;
  throwsCode(() => fresh(p.responder, p.bob).open(unsignedFlag), ['ERR_FRAME_SIGNATURE', 'ERR_FRAME_DECRYPT']);
  const badSig = Buffer.from(f);
  badSig[20] = badSig[20]! ^ 1;
  throwsCode(() => fresh(p.responder, p.bob).open(badSig), 'ERR_FRAME_SIGNATURE');
});

test('size limits are checked before decrypting, on both sides', () => {
  const { client, server } = sessionPair({}, {}, { maxMessageBytes: 1024 });
  assert.ok(server.open(client.seal('x'.repeat(1024))));
  throwsCode(() => client.seal('x'.repeat(1025)), 'ERR_FRAME_TOO_LARGE');
  // A peer with a larger limit sends more than we accept.
  const p = handshakePair();
  const big = fresh(p.initiator, p.alice, { maxMessageBytes: 4096 }).seal('y'.repeat(2048));
  throwsCode(() => fresh(p.responder, p.bob, { maxMessageBytes: 1024 }).open(big), 'ERR_FRAME_TOO_LARGE');
  const huge = Buffer.alloc(fresh(p.responder, p.bob, { maxMessageBytes: 1024 }).maxFrameBytes + 1);
  throwsCode(() => fresh(p.responder, p.bob, { maxMessageBytes: 1024 }).open(huge), 'ERR_FRAME_TOO_LARGE');
  assert.throws(() => fresh(p.responder, p.bob, { maxMessageBytes: 0 }), RangeError);
  assert.throws(() => fresh(p.responder, p.bob, { rekeyAfterRecords: 2 ** 24 + 1 }), RangeError);
});

test('a control message of up to 64 KiB passes whatever the message limit (it is the protocol\'s, not negotiated); one byte more does not', () => {
  const { client, server } = sessionPair({}, {}, { maxMessageBytes: 2048 });
  const control = (n: number) => JSON.stringify({ type: 'x-test', pad: 'p'.repeat(n - 26) });
  const largest = control(65_536);
  assert.equal(Buffer.byteLength(largest), 65_536);
  const [opened] = server.open(client.seal(largest, ContentType.CONTROL));
  assert.equal(opened!.contentType, ContentType.CONTROL);
  assert.equal(opened!.payload.length, 65_536);
  throwsCode(() => client.seal(control(65_537), ContentType.CONTROL), 'ERR_FRAME_TOO_LARGE');
  // MCP messages keep the node's own limit.
  throwsCode(() => client.seal('x'.repeat(2049)), 'ERR_FRAME_TOO_LARGE');
});

test('an unknown content type is refused, even when correctly encrypted', () => {
  const { client, server } = sessionPair();
  throwsCode(() => server.open(client.seal('{}', 0x07 as 1)), 'ERR_FRAME_CONTENT_TYPE');
});

test('a record of several messages: one frame, the entries in order, one signature; caps on count and size', () => {
  for (const mode of MODES) {
    const { client, server } = sessionPair(cfg(mode), cfg(mode));
    const entries = Array.from({ length: 40 }, (_, i) => ({ contentType: i % 5 === 0 ? ContentType.CONTROL : ContentType.MCP, payload: msg(i) }));
    const f = client.sealRecord(entries);
    const single = client.seal(msg(0));
    const got = server.open(f);
    assert.deepEqual(got.map((e) => [e.contentType, e.payload.toString()]), entries.map((e) => [e.contentType, e.payload]), modeName(mode));
    assert.equal(server.open(single).length, 1);
    // One signature per record, whatever it holds.
    if (mode.signatures && mode.framing === 'json') assert.equal((f as string).match(/"signature"/g)!.length, 1);
  }
  const { client } = sessionPair();
  assert.throws(() => client.sealRecord([]), RangeError);
  assert.throws(() => client.sealRecord(Array.from({ length: 257 }, () => ({ contentType: ContentType.MCP, payload: '{}' }))), RangeError);
  assert.throws(() => client.sealRecord([{ contentType: ContentType.MCP, payload: 'x'.repeat(40_000) }, { contentType: ContentType.MCP, payload: 'y'.repeat(30_000) }]), RangeError);
  // A lone message may be as large as the message limit.
  assert.ok(client.sealRecord([{ contentType: ContentType.MCP, payload: 'x'.repeat(100_000) }]));
  throwsCode(() => client.seal('{' + 'x'.repeat(64 * 1024) + '}', ContentType.CONTROL), 'ERR_FRAME_TOO_LARGE');
});

test('CLOSE: sealed last, orderly (empty) or with a code; nothing is sealed after it, nothing accepted after it', () => {
  for (const reason of [undefined, 'ERR_PEER_REJECTED'] as const) {
    const { client, server } = sessionPair();
    server.open(client.seal(msg(1)));
    const close = client.sealClose(reason);
    assert.equal(client.sendClosed, true);
    throwsCode(() => client.seal(msg(2)), 'ERR_SESSION_CLOSED');
    throwsCode(() => client.sealClose(), 'ERR_SESSION_CLOSED');
    const [entry] = server.open(close);
    assert.equal(entry!.contentType, ContentType.CLOSE);
    assert.equal(entry!.payload.toString(), reason ?? '');
    throwsCode(() => server.open(close), 'ERR_SESSION_CLOSED');
  }
});


test('close wipes the keys and later use fails', () => {
  const p = handshakePair();
  const s = new Session(p.initiator, p.alice);
  s.close();
  s.close();
  assert.ok(p.initiator.sendKey.every((b) => b === 0));
  assert.ok(p.initiator.recvKey.every((b) => b === 0));
  throwsCode(() => s.seal('x'), 'ERR_SESSION_CLOSED');
  throwsCode(() => s.open('x'), 'ERR_SESSION_CLOSED');
});

test('messages on both sides of the one-buffer limit (16 KiB) round trip, as strings and as bytes, and the caller\'s bytes are left alone', () => {
  for (const mode of MODES) {
    const { client, server } = sessionPair(cfg(mode), cfg(mode));
    for (const n of [0, 1, 16 * 1024 - 1, 16 * 1024, 16 * 1024 + 1, 200_000]) {
      const text = JSON.stringify({ pad: 'é'.repeat(Math.floor(n / 4)) + 'x'.repeat(n - Math.floor(n / 4)) });
      const type = text.length <= 60_000 ? ContentType.CONTROL : ContentType.MCP;
      const [got] = server.open(client.seal(text, type));
      assert.equal(got!.contentType, type);
      assert.equal(got!.payload.toString('utf8'), text, `${modeName(mode)} string of ${n}`);
      const bytes = Buffer.from(text, 'utf8');
      const copy = Buffer.from(bytes);
      const [back] = client.open(server.seal(bytes));
      assert.equal(back!.contentType, ContentType.MCP);
      assert.ok(back!.payload.equals(copy), `${modeName(mode)} bytes of ${n}`);
      assert.ok(bytes.equals(copy), 'seal must not modify the caller\'s buffer');
    }
  }
});
