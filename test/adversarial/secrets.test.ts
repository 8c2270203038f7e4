/**
 * Secrets stay secret: private keys, session keys and plaintext never appear
 * in logs or error messages, at any log level.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { randomBytes } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { allowPeer } from '../../src/cli/peers.js';
import { Session } from '../../src/session/session.js';
import { Handshake } from '../../src/handshake/handshake.js';
import { McpE2eError } from '../../src/errors.js';
import { CLI, DEMO_SERVER, makeHome, startServe } from '../cli/helpers.js';
import { handshakePair, flipBitText } from '../helpers/pair.js';
import { LABEL } from '../../src/protocol.js';
import { handshakeSecrets, initiatorProof, sealStep3 } from '../helpers/craft.js';
import { assertClean } from './scan.js';


test('a verbose serve/connect run never prints private keys or message plaintext', async () => {
  const server = makeHome();
  const client = makeHome();
  allowPeer(join(server.home, 'allowed_peers'), client.identity.nodeId);
  const privateKey = (home: string) => Buffer.from(JSON.parse(readFileSync(join(home, 'identity.json'), 'utf8')).private_key, 'hex');
  const secrets = { serverKey: privateKey(server.home), clientKey: privateKey(client.home), marker: 'PLAINTEXT-MARKER-7f3a9c' };
  for (const json of [false, true]) {
    const serve = await startServe(['--home', server.home, '--verbose'], [process.execPath, DEMO_SERVER], { readable: !json });
    const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, 'connect', serve.url, '--home', client.home, '--verbose', ...(json ? ['--json'] : []), '--peer', server.identity.nodeId], stderr: 'pipe' });
    const connectLog: string[] = [];
    transport.stderr?.on('data', (c: Buffer) => connectLog.push(c.toString()));
    const c = new Client({ name: 'secrets', version: '1' });
    await c.connect(transport);
    const r = await c.callTool({ name: 'echo', arguments: { message: secrets.marker } });
    assert.match(JSON.stringify(r), new RegExp(secrets.marker), 'the marker did travel');
    await c.close();
    await serve.stop();
    const all = serve.log.join('\n') + connectLog.join('');
    assert.ok(all.length > 200, 'there was verbose output to scan');
    // Both formats really were produced (and so scanned).
    assert.equal(serve.log.every((l) => l.startsWith('{')), json, `serve log format, json=${json}`);
    assert.equal(connectLog.join('').trimStart().startsWith('{'), json, `connect log format, json=${json}`);
    assertClean(all, secrets);
  }
});

test('error messages and inspected errors of every handshake and session failure carry no key material', () => {
  // Fixed ephemeral keys and randoms, so that every fresh handshake below
  // repeats the genuine one up to the tampered message, and the test knows
  // every secret of it: both ephemeral private keys, dh, both finished keys,
  // both session keys.
  const fixedI = { ephemeralPrivateKey: randomBytes(32), random: randomBytes(32), framings: ['json' as const] };
  const fixedR = { ephemeralPrivateKey: randomBytes(32), random: randomBytes(32), framings: ['json' as const] };
  const p = handshakePair(fixedI, fixedR);
  const [m1, m2, m3] = p.messages;
  // Everything the handshake derives (PROTOCOL.md §5.2), rebuilt by the spec-level helpers.
  const hs = handshakeSecrets(m1, m2, fixedI.ephemeralPrivateKey, 'initiator');
  const keys = { send: Buffer.from(p.initiator.sendKey), recv: Buffer.from(p.initiator.recvKey) };
  const secrets = {
    ...keys,
    dh: hs.dh,
    finishedResponder: hs.finishedResponder,
    finishedInitiator: hs.finishedInitiator,
    step3Key: hs.step3Key,
    ephemeralInitiator: fixedI.ephemeralPrivateKey,
    ephemeralResponder: fixedR.ephemeralPrivateKey,
    marker: 'PLAINTEXT-MARKER',
  };
  const texts: string[] = [];
  const codes = new Set<string>();
  const collect = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      assert.ok(err instanceof McpE2eError);
      codes.add(err.code);
      texts.push(err.message, String(err.stack), inspect(err, { depth: 5 }));
    }
  };
  const sender = new Session({ ...p.initiator, sendKey: Buffer.from(keys.send), recvKey: Buffer.from(keys.recv) }, p.alice);
  const frame = sender.seal('{"jsonrpc":"2.0","id":1,"method":"PLAINTEXT-MARKER"}') as string;
  for (let i = 0; i < frame.length; i += 3) {
    const rx = new Session({ ...p.responder, sendKey: Buffer.from(keys.recv), recvKey: Buffer.from(keys.send) }, p.bob);
    collect(() => rx.open(flipBitText(frame, i, i % 8)));
  }
  // Step 2 tampered, seen by the initiator (which has computed dh by the signature and MAC checks).
  for (let i = 0; i < m2.length; i += 5) {
    const h = new Handshake('initiator', p.alice, fixedI);
    h.start();
    collect(() => h.receive(flipBitText(m2, i, i % 8)));
  }
  // Step 3 tampered, seen by a responder that is past step 1 (it holds dh and the handshake keys):
  // bit flips of the sealed step 3, and well sealed ones whose key, signature or MAC is wrong.
  const freshResponder = () => {
    const r = new Handshake('responder', p.bob, fixedR);
    assert.equal(r.receive(m1).send, m2, 'the responder repeats the genuine step 2');
    return r;
  };
  for (let i = 0; i < m3.length; i += 3) {
    const r = freshResponder();
    collect(() => r.receive(flipBitText(m3, i, i % 8)));
  }
  const { h3, mac } = initiatorProof(hs, p.alice.publicKey);
  const sig = p.alice.sign(LABEL.INITIATOR_SIGNATURE, h3);
  for (const plain of [
    Buffer.concat([Buffer.from('01' + '00'.repeat(31), 'hex'), sig, mac]),
    Buffer.concat([p.alice.publicKey, sig, Buffer.alloc(32)]),
    Buffer.concat([p.alice.publicKey, Buffer.alloc(64, 1), mac]),
  ]) {
    const r = freshResponder();
    collect(() => r.receive(sealStep3(hs, plain)));
  }
  assert.ok(texts.length > 300);
  for (const code of ['ERR_HANDSHAKE_BAD_MAC', 'ERR_HANDSHAKE_BAD_SIGNATURE', 'ERR_HANDSHAKE_BAD_KEY', 'ERR_FRAME_DECRYPT']) assert.ok(codes.has(code), `no ${code} among ${[...codes].join(', ')}`);
  assertClean(texts.join('\n'), secrets);
});
