/**
 * Property-based fuzzing of the pure core (handshake codec and state machine,
 * envelopes, session.open): random and mutated input must only ever raise
 * McpE2eError with a stable code, never another exception, never accept.
 *
 * Fixed seed in CI. A longer run: FUZZ_RUNS=200000 FUZZ_SEED=<n> npm test
 * (or `npm run fuzz`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { McpE2eError, ERROR_CODES } from '../../src/errors.js';
import { Handshake } from '../../src/handshake/handshake.js';
import { decodeHandshakeMessage } from '../../src/handshake/messages.js';
import { decodeBinaryFrame, decodeJsonEnvelope } from '../../src/framing/envelope.js';
import { Session } from '../../src/session/session.js';
import { NodeIdentity } from '../../src/identity/identity.js';
import type { HandshakeResult } from '../../src/handshake/handshake.js';
import { handshakePair } from '../helpers/pair.js';
import { plaintextOf, sealRaw } from '../helpers/craft.js';
import { ContentType, DIRECTION } from '../../src/protocol.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 2000);
const SEED = Number(process.env.FUZZ_SEED ?? 20261126);
const params = { numRuns: RUNS, seed: SEED };

/** Counts every case run, for the report. */
export const fuzzCounts: Record<string, number> = {};

function onlyStableErrors(name: string, fn: () => unknown): boolean {
  fuzzCounts[name] = (fuzzCounts[name] ?? 0) + 1;
  try {
    fn();
  } catch (err) {
    if (err instanceof McpE2eError && ERROR_CODES.includes(err.code)) return true;
    throw err;
  }
  return true;
}

const alice = NodeIdentity.fromPrivateKey(Buffer.alloc(32, 1));
const bob = NodeIdentity.fromPrivateKey(Buffer.alloc(32, 2));
const fixedI = { ephemeralPrivateKey: Buffer.alloc(32, 3), random: Buffer.alloc(32, 4) };
const fixedR = { ephemeralPrivateKey: Buffer.alloc(32, 5), random: Buffer.alloc(32, 6) };
const modes = ['json', 'binary'] as const;
const pairs = Object.fromEntries(
  modes.map((f) => [f, handshakePair({ ...fixedI, framings: [f] }, { ...fixedR, framings: [f] }, { alice, bob })]),
) as Record<(typeof modes)[number], ReturnType<typeof handshakePair>>;
const fresh = (r: HandshakeResult, id: NodeIdentity) =>
  new Session({ ...r, sendKey: Buffer.from(r.sendKey), recvKey: Buffer.from(r.recvKey) }, id, { maxMessageBytes: 64 * 1024 });

/** JSON values, deep and wide, with the field names the codecs look for. */
const keyName = fc.constantFrom('type', 'version', 'step', 'public_key', 'random', 'options', 'identity_key', 'node_id', 'signature', 'mac', 'epoch', 'nonce', 'ciphertext', 'sender', 'framings', 'signatures', 'framing', '__proto__', 'constructor');
const jsonish = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constantFrom('key_exchange', 'encrypted', 'json', 'binary', 1, 2, 3, 0, -1, true, false, null, 'ab'.repeat(32), '00'.repeat(12), 2 ** 53),
    fc.string(),
    fc.double(),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(keyName, tie('value'), { maxKeys: 8 }),
  ),
})).value;

/** Mutations of a valid message: flip, insert, delete, truncate, splice garbage. */
function mutate(base: Buffer) {
  return fc.oneof(
    fc.record({ i: fc.nat(base.length - 1), bit: fc.nat(7) }).map(({ i, bit }) => {
      const b = Buffer.from(base);
      b[i] = b[i]! ^ (1 << bit);
      return b;
    }),
    fc.nat(base.length).map((n) => base.subarray(0, n)),
    fc.record({ i: fc.nat(base.length), junk: fc.uint8Array({ minLength: 1, maxLength: 40 }) }).map(({ i, junk }) => Buffer.concat([base.subarray(0, i), junk, base.subarray(i)])),
    fc.record({ i: fc.nat(base.length), n: fc.integer({ min: 1, max: 40 }) }).map(({ i, n }) => Buffer.concat([base.subarray(0, i), base.subarray(i + n)])),
    fc.uint8Array({ maxLength: 600 }).map((u) => Buffer.from(u)),
  );
}

test('handshake decoder: random JSON values and random strings raise only stable errors', () => {
  fc.assert(fc.property(jsonish, (v) => onlyStableErrors('handshake-json', () => decodeHandshakeMessage(JSON.stringify(v)))), params);
  fc.assert(fc.property(fc.string({ maxLength: 5000 }), (s) => onlyStableErrors('handshake-string', () => decodeHandshakeMessage(s))), params);
  fc.assert(fc.property(fc.anything(), (v) => onlyStableErrors('handshake-anything', () => decodeHandshakeMessage(v))), params);
});

test('handshake state machines: mutated messages of every step are refused, never accepted', () => {
  const [m1, m2, m3] = pairs.json.messages;
  const accepted: string[] = [];
  const run = (name: string, base: string, feed: (text: string) => boolean) =>
    fc.assert(
      fc.property(mutate(Buffer.from(base)), (bytes) => {
        const text = bytes.toString('latin1');
        if (text === base) return true;
        return onlyStableErrors(name, () => {
          if (feed(text)) accepted.push(`${name}: ${text.slice(0, 80)}`);
        });
      }),
      params,
    );
  run('hs-step1', m1, (t) => {
    const r = new Handshake('responder', bob, fixedR).receive(t).send!;
    const i = new Handshake('initiator', alice, { ...fixedI, framings: ['json'] });
    i.start();
    return Boolean(i.receive(r).result);
  });
  run('hs-step2', m2, (t) => {
    const i = new Handshake('initiator', alice, { ...fixedI, framings: ['json'] });
    i.start();
    return Boolean(i.receive(t).result);
  });
  run('hs-step3', m3, (t) => {
    const r = new Handshake('responder', bob, { ...fixedR, framings: ['json'] });
    r.receive(m1);
    return Boolean(r.receive(t).result);
  });
  // A mutation equal in meaning (e.g. re-ordered whitespace) could pass; none of ours may.
  assert.deepEqual(accepted, []);
});

test('envelope decoders: random bytes and JSON raise only stable errors', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (u) => onlyStableErrors('binary-decode', () => decodeBinaryFrame(Buffer.from(u), 1000))), params);
  fc.assert(fc.property(jsonish, (v) => onlyStableErrors('json-decode', () => decodeJsonEnvelope(JSON.stringify(v) ?? '', 100_000))), params);
});

for (const framing of modes) {
  test(`session.open (${framing}): mutated and random frames are refused with stable codes; valid frames still open`, () => {
    const p = pairs[framing];
    const frame = fresh(p.initiator, alice).seal(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }));
    const base = typeof frame === 'string' ? Buffer.from(frame) : frame;
    fc.assert(
      fc.property(mutate(base), fc.boolean(), (bytes, asText) => {
        if (bytes.equals(base)) return true;
        const input = asText ? bytes.toString('latin1') : bytes;
        return onlyStableErrors(`open-${framing}`, () => {
          fresh(p.responder, bob).open(input);
          assert.fail('a mutated frame was accepted');
        });
      }),
      params,
    );
    assert.equal(fresh(p.responder, bob).open(frame)[0]!.payload.toString(), '{"jsonrpc":"2.0","id":1,"method":"ping"}');
  });
}

for (const framing of modes) {
  test(`session.open (${framing}): records of any structure, correctly sealed, open to exactly their entries or are refused with a record code`, () => {
    const p = pairs[framing];
    const sealer = { sessionId: p.initiator.sessionId, direction: DIRECTION.INITIATOR_TO_RESPONDER, framing, signatures: p.initiator.signatures, keys: [p.initiator.sendKey], signer: alice };
    const entry = fc.record({
      type: fc.oneof({ weight: 6, arbitrary: fc.constantFrom(ContentType.MCP, ContentType.CONTROL) }, { weight: 2, arbitrary: fc.constant(ContentType.CLOSE) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) }),
      payload: fc.oneof(fc.uint8Array({ maxLength: 60 }), fc.constantFrom('', 'ERR_PEER_REJECTED', 'err', '{"type":"x"}').map((t) => new TextEncoder().encode(t))),
    });
    // Well-formed lists, lists with one length lying, trailing bytes, and plain random bytes.
    const plaintext = fc.oneof(
      fc.array(entry, { minLength: 1, maxLength: 6 }).map((es) => plaintextOf(es.map((e) => ({ type: e.type, payload: Buffer.from(e.payload) })))),
      fc.tuple(fc.array(entry, { minLength: 1, maxLength: 4 }), fc.nat(), fc.integer({ min: -3, max: 3 })).map(([es, which, delta]) => {
        const b = plaintextOf(es.map((e) => ({ type: e.type, payload: Buffer.from(e.payload) })));
        let at = 0;
        for (let k = 0; k < which % es.length; k++) at += 5 + es[k]!.payload.length;
        b.writeUInt32BE(Math.max(0, b.readUInt32BE(at + 1) + delta), at + 1);
        return b;
      }),
      fc.tuple(fc.array(entry, { minLength: 1, maxLength: 4 }), fc.uint8Array({ minLength: 1, maxLength: 4 })).map(([es, tail]) => Buffer.concat([plaintextOf(es.map((e) => ({ type: e.type, payload: Buffer.from(e.payload) }))), Buffer.from(tail)])),
      fc.uint8Array({ minLength: 5, maxLength: 200 }).map((u) => Buffer.from(u)),
    );
    const RECORD_CODES = ['ERR_ENTRIES_MALFORMED', 'ERR_FRAME_CONTENT_TYPE', 'ERR_FRAME_TOO_LARGE'];
    fc.assert(
      fc.property(plaintext, (plain) => {
        fuzzCounts[`record-${framing}`] = (fuzzCounts[`record-${framing}`] ?? 0) + 1;
        const wire = sealRaw(sealer, 0, 0, plain);
        let opened;
        try {
          opened = fresh(p.responder, bob).open(framing === 'json' ? wire : Buffer.from(wire, 'hex'));
        } catch (err) {
          assert.ok(err instanceof McpE2eError && RECORD_CODES.includes(err.code), String(err));
          return true;
        }
        // Accepted: the entries are exactly the plaintext, CLOSE only last, and nothing else.
        assert.ok(plaintextOf(opened.map((e) => ({ type: e.contentType, payload: e.payload }))).equals(plain));
        assert.ok(opened.every((e, k) => e.contentType !== ContentType.CLOSE || k === opened.length - 1));
        return true;
      }),
      params,
    );
  });
}

test('fuzz case counts', () => {
  const total = Object.values(fuzzCounts).reduce((a, b) => a + b, 0);
  // Printed for the report: node --test shows diagnostics.
  process.stdout.write(`# fuzz cases: ${total} ${JSON.stringify(fuzzCounts)} (FUZZ_RUNS=${RUNS}, FUZZ_SEED=${SEED})\n`);
  assert.ok(total >= RUNS * 9, `only ${total} cases ran`);
});
