/** Shared test helpers: run a full handshake in memory and build both sessions. */
import assert from 'node:assert/strict';
import { NodeIdentity } from '../../src/identity/identity.js';
import { Handshake, type HandshakeConfig, type HandshakeResult } from '../../src/handshake/handshake.js';
import { Session, type SessionOptions } from '../../src/session/session.js';
import { McpE2eError, type ErrorCode } from '../../src/errors.js';

export interface Pair {
  alice: NodeIdentity;
  bob: NodeIdentity;
  initiator: HandshakeResult;
  responder: HandshakeResult;
  messages: [string, string, string];
}

/** Run the three handshake messages between two fresh (or given) identities. */
export function handshakePair(
  initConfig: HandshakeConfig = {},
  respConfig: HandshakeConfig = {},
  ids: { alice?: NodeIdentity; bob?: NodeIdentity } = {},
): Pair {
  const alice = ids.alice ?? NodeIdentity.generate();
  const bob = ids.bob ?? NodeIdentity.generate();
  const i = new Handshake('initiator', alice, initConfig);
  const r = new Handshake('responder', bob, respConfig);
  const m1 = i.start();
  const m2 = r.receive(m1).send!;
  const step = i.receive(m2);
  const m3 = step.send!;
  const done = r.receive(m3);
  assert.ok(step.result && done.result);
  return { alice, bob, initiator: step.result, responder: done.result, messages: [m1, m2, m3] };
}

export function sessionPair(initConfig: HandshakeConfig = {}, respConfig: HandshakeConfig = {}, opts: SessionOptions = {}) {
  const p = handshakePair(initConfig, respConfig);
  return { ...p, client: new Session(p.initiator, p.alice, opts), server: new Session(p.responder, p.bob, opts) };
}

/** Assert that fn throws McpE2eError with the given code (or one of the codes). */
export function throwsCode(fn: () => unknown, code: ErrorCode | ErrorCode[]): McpE2eError {
  const codes = Array.isArray(code) ? code : [code];
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof McpE2eError, `expected McpE2eError, got ${String(err)}`);
    assert.ok(codes.includes(err.code), `expected ${codes.join('|')}, got ${err.code}: ${err.message}`);
    return err;
  }
  assert.fail(`expected ${codes.join('|')}, but nothing was thrown`);
}

/** Flip bit `bit` of byte `index` of a string's UTF-8 bytes, returned as a (possibly invalid) string. */
export function flipBitText(text: string, index: number, bit: number): string {
  const b = Buffer.from(text, 'utf8');
  b[index] = b[index]! ^ (1 << bit);
  return b.toString('latin1');
}

export function flipBit(buf: Buffer, index: number, bit: number): Buffer {
  const b = Buffer.from(buf);
  b[index] = b[index]! ^ (1 << bit);
  return b;
}
