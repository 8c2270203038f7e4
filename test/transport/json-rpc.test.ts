/**
 * Our JSON-RPC check (src/transport/json-rpc.ts, PROTOCOL.md §6.7) against
 * the MCP SDKs it stands in for: the vectors of test/vectors/json-rpc.json,
 * and random JSON-ish values on which it must agree with "v1 or v2 accepts"
 * exactly, apart from the one documented extension (an error response with
 * `"id": null`); and that extension end to end: such a response from the
 * server reaches a v1 and a v2 SDK Client over a live session, which report
 * it and keep working. The SDKs are loaded here, in the test, never by src/.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { JSONRPCMessageSchema as v1 } from '@modelcontextprotocol/sdk/types.js';
import { JSONRPCMessageSchema as v2 } from '@modelcontextprotocol/core';
import { decodeJsonRpcMessage, isJsonRpcMessage, jsonRpcProblem } from '../../src/transport/json-rpc.js';
import { McpE2eError } from '../../src/errors.js';
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { Client as ClientV2 } from '@modelcontextprotocol/client';
import { EncryptedWebSocketClientTransport, NodeIdentity, type JSONRPCMessage } from '../../src/index.js';
import { startServer, textOf } from './helpers.js';

const vectors = JSON.parse(readFileSync(new URL('../../../test/vectors/json-rpc.json', import.meta.url), 'utf8'));
const sdkAccepts = (v: unknown) => v1.safeParse(v).success || v2.safeParse(v).success;
const isNullIdError = (v: unknown) =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && Object.hasOwn(v, 'id') && (v as { id: unknown }).id === null && Object.hasOwn(v, 'error');
const bytesOf = (c: { payload?: string; payload_hex?: string }) => (c.payload_hex !== undefined ? Buffer.from(c.payload_hex, 'hex') : Buffer.from(c.payload!, 'utf8'));

test('accepted vectors: we accept each, unchanged, and so does at least one SDK (but for the id-null error)', () => {
  for (const c of vectors.accepted) {
    const decoded = decodeJsonRpcMessage(bytesOf(c));
    assert.deepEqual(decoded, JSON.parse(c.payload), c.name);
    const value = JSON.parse(c.payload);
    if (isNullIdError(value)) assert.ok(!sdkAccepts(value), `${c.name}: an SDK now accepts it; drop the extension note`);
    else assert.ok(sdkAccepts(value), `${c.name}: neither SDK accepts it`);
  }
});

test('refused vectors: we refuse each with ERR_INVALID_MESSAGE, and neither SDK accepts it', () => {
  for (const c of vectors.refused) {
    assert.throws(() => decodeJsonRpcMessage(bytesOf(c)), (e: unknown) => e instanceof McpE2eError && e.code === 'ERR_INVALID_MESSAGE', c.name);
    let value: unknown;
    try {
      value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytesOf(c)));
    } catch {
      continue; // not UTF-8 JSON at all: nothing for a schema to accept
    }
    assert.ok(!sdkAccepts(value), `${c.name}: an SDK accepts it`);
  }
});

/** JSON-ish values close to JSON-RPC messages: the member names and value shapes the rules look at. */
const scalar = fc.oneof(
  fc.constantFrom('2.0', '1.0', '', 'ping', 0, -0, 1, -1, 1.5, 2 ** 53 - 1, 2 ** 53, -(2 ** 53), 1e300, true, false, null),
  fc.string({ maxLength: 4 }),
  fc.integer(),
  fc.double({ noNaN: true }),
);
const name = fc.constantFrom('jsonrpc', 'id', 'method', 'params', 'result', 'error', 'code', 'message', 'data', '_meta', 'progressToken', 'taskId', 'io.modelcontextprotocol/related-task', '__proto__', 'x');
const value = fc.letrec((tie) => ({
  v: fc.oneof({ depthSize: 'small', withCrossShrink: true }, scalar, fc.array(tie('v'), { maxLength: 2 }), fc.dictionary(name, tie('v'), { maxKeys: 4 })),
})).v;
/** Mostly right, sometimes wrong: the value a rule looks at. */
const often = <T>(good: fc.Arbitrary<T>) => fc.oneof({ weight: 4, arbitrary: good }, { weight: 1, arbitrary: value as fc.Arbitrary<unknown> });
const goodId = fc.oneof(fc.integer(), fc.string({ maxLength: 3 }), fc.constantFrom(2 ** 53 - 1, -0, 1e2));
const meta = fc.record(
  {
    progressToken: often(fc.oneof(fc.integer(), fc.string({ maxLength: 2 }))),
    'io.modelcontextprotocol/related-task': often(fc.record({ taskId: often(fc.string({ maxLength: 2 })), y: value }, { requiredKeys: [] })),
    z: value,
  },
  { requiredKeys: [] },
);
const params = often(fc.record({ _meta: often(meta), a: value }, { requiredKeys: [] }));
const messages = {
  request: fc.record({ jsonrpc: often(fc.constant('2.0')), id: often(goodId), method: often(fc.string({ maxLength: 3 })), params }, { requiredKeys: ['jsonrpc', 'id', 'method'] }),
  notification: fc.record({ jsonrpc: often(fc.constant('2.0')), method: often(fc.string({ maxLength: 3 })), params }, { requiredKeys: ['jsonrpc', 'method'] }),
  result: fc.record({ jsonrpc: often(fc.constant('2.0')), id: often(goodId), result: often(fc.record({ _meta: often(meta), a: value }, { requiredKeys: [] })) }, { requiredKeys: ['jsonrpc', 'result'] }),
  error: fc.record(
    {
      jsonrpc: often(fc.constant('2.0')),
      id: fc.oneof(goodId, fc.constant(null), value),
      error: often(fc.record({ code: often(fc.integer()), message: often(fc.string({ maxLength: 2 })), data: value, w: value }, { requiredKeys: ['code', 'message'] })),
    },
    { requiredKeys: ['jsonrpc', 'error'] },
  ),
};
/** A message of each kind, now and then with one extra member; then a JSON text round trip, which is what a receiver parses. */
const nearMessage = fc
  .tuple(fc.oneof(messages.request, messages.notification, messages.result, messages.error), fc.option(fc.tuple(name, value), { freq: 4 }))
  .map(([m, extra]) => (extra ? { ...m, [extra[0]]: extra[1] } : m))
  .map((o) => JSON.parse(JSON.stringify(o)) as unknown);

test('random values: we accept exactly what v1 or v2 of the SDK accepts, plus error responses with id null', () => {
  let accepted = 0;
  let total = 0;
  fc.assert(
    fc.property(fc.oneof({ weight: 4, arbitrary: nearMessage }, { weight: 1, arbitrary: value }), (v) => {
      total++;
      const ours = isJsonRpcMessage(v);
      const sdk = sdkAccepts(v);
      if (ours) accepted++;
      if (sdk) assert.ok(ours, `the SDK accepts, we refuse (${jsonRpcProblem(v)}): ${JSON.stringify(v)}`);
      else if (ours) assert.ok(isNullIdError(v), `we accept, no SDK does: ${JSON.stringify(v)}`);
    }),
    { numRuns: Number(process.env.FUZZ_RUNS ?? 3000), seed: Number(process.env.FUZZ_SEED ?? 20261201) },
  );
  process.stdout.write(`# json-rpc check: ${accepted} of ${total} random values accepted\n`);
  // The generator must reach both outcomes, or the comparison says little.
  assert.ok(accepted >= total / 20 && accepted < total / 2, `${accepted} of ${total} accepted`);
});

for (const sdk of ['v1', 'v2'] as const) {
  test(`over a live session, an error response with id null reaches the ${sdk} SDK's Client unchanged, which reports it and keeps working`, async () => {
    const server = await startServer();
    const transport = new EncryptedWebSocketClientTransport(server.url, { identity: NodeIdentity.generate(), expectedPeer: server.identity.nodeId });
    const transportErrors: Error[] = [];
    transport.onerror = (e) => transportErrors.push(e);
    const info = { name: 'mcp-e2e-test-client', version: '1.0.0' };
    // The v2 Client takes any object of the Transport shape; ours is typed against v1's.
    const client = sdk === 'v1' ? new ClientV1(info) : new ClientV2(info);
    const clientErrors: Error[] = [];
    client.onerror = (e) => clientErrors.push(e);
    try {
      await client.connect(transport as Parameters<ClientV2['connect']>[0] & Parameters<ClientV1['connect']>[0]);
      // What the transport hands to the SDK (which has set onmessage by now).
      const seen: unknown[] = [];
      const sdkOnMessage = transport.onmessage!;
      transport.onmessage = (m, extra) => {
        seen.push(m);
        sdkOnMessage(m, extra);
      };
      const nullIdError = { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } };
      await server.transports[0]!.send(nullIdError as unknown as JSONRPCMessage);
      const r = await client.callTool({ name: 'echo', arguments: { message: 'after' } });
      assert.equal(textOf(r), 'Echo: after');
      assert.deepEqual(seen[0], nullIdError, 'delivered unchanged, before the answer');
      // It answers no request: the SDK reports it as a message it cannot place, and carries on.
      assert.equal(clientErrors.length, 1, clientErrors.map((e) => e.message).join('; '));
      assert.match(clientErrors[0]!.message, /Unknown message type: .*"id":null/);
      assert.deepEqual(transportErrors, []);
      assert.equal(transport.closed, false);
      assert.equal(server.transports[0]!.closed, false);
    } finally {
      await client.close();
      await server.close();
    }
  });
}
