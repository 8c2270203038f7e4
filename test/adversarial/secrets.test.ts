/**
 * Secrets stay secret: private keys, session keys and plaintext never appear
 * in logs or error messages, at any log level.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { allowPeer } from '../../src/cli/peers.js';
import { Session } from '../../src/session/session.js';
import { Handshake } from '../../src/handshake/handshake.js';
import { McpE2eError } from '../../src/errors.js';
import { CLI, DEMO_SERVER, makeHome, startServe } from '../cli/helpers.js';
import { handshakePair, flipBit, flipBitText } from '../helpers/pair.js';
import { assertClean } from './scan.js';


test('a verbose serve/connect run never prints private keys or message plaintext', async () => {
  const server = makeHome();
  const client = makeHome();
  allowPeer(join(server.home, 'allowed_peers'), client.identity.nodeId);
  const privateKey = (home: string) => Buffer.from(JSON.parse(readFileSync(join(home, 'identity.json'), 'utf8')).private_key, 'hex');
  const secrets = { serverKey: privateKey(server.home), clientKey: privateKey(client.home), marker: 'PLAINTEXT-MARKER-7f3a9c' };
  for (const json of [false, true]) {
    const serve = await startServe(['--home', server.home, '--verbose', ...(json ? [] : [])], [process.execPath, DEMO_SERVER]);
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
    assertClean(all, secrets);
  }
});

test('error messages and inspected errors of every handshake and session failure carry no key material', () => {
  const p = handshakePair({ framings: ['json'] }, { framings: ['json'] });
  const keys = { send: Buffer.from(p.initiator.sendKey), recv: Buffer.from(p.initiator.recvKey) };
  const texts: string[] = [];
  const collect = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      assert.ok(err instanceof McpE2eError);
      texts.push(err.message, String(err.stack), inspect(err, { depth: 5 }));
    }
  };
  const sender = new Session({ ...p.initiator, sendKey: Buffer.from(keys.send), recvKey: Buffer.from(keys.recv) }, p.alice);
  const frame = sender.seal('{"jsonrpc":"2.0","id":1,"method":"PLAINTEXT-MARKER"}') as string;
  for (let i = 0; i < frame.length; i += 3) {
    const rx = new Session({ ...p.responder, sendKey: Buffer.from(keys.recv), recvKey: Buffer.from(keys.send) }, p.bob);
    collect(() => rx.open(flipBitText(frame, i, i % 8)));
  }
  const [m1, m2, m3] = p.messages;
  for (let i = 0; i < m2.length; i += 5) {
    const h = new Handshake('initiator', p.alice);
    h.start();
    collect(() => h.receive(flipBitText(m2, i, i % 8)));
  }
  for (let i = 0; i < m3.length; i += 5) collect(() => new Handshake('responder', p.bob).receive(flipBit(Buffer.from(m1), i % m1.length, i % 8).toString()));
  assert.ok(texts.length > 300);
  assertClean(texts.join('\n'), { ...keys, marker: 'PLAINTEXT-MARKER' });
});
