/**
 * Real SDK Client and McpServer over the encrypted transport, real sockets on
 * 127.0.0.1: the whole MCP feature set in every framing/signature combination.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { NodeIdentity, type Framing } from '../../src/index.js';
import { connectClient, deferred, startServer, textOf, within, type ClientFixture, type ServerFixture } from './helpers.js';

const combos: Array<{ framing: Framing; signatures: boolean }> = [
  { framing: 'binary', signatures: true },
  { framing: 'binary', signatures: false },
  { framing: 'json', signatures: true },
  { framing: 'json', signatures: false },
];

for (const { framing, signatures } of combos) {
  describe(`MCP over mcp-e2e (${framing} framing, signatures ${signatures ? 'on' : 'off'})`, () => {
    let srv: ServerFixture;
    let cli: ClientFixture;
    const identity = NodeIdentity.generate();

    before(async () => {
      srv = await startServer({ allowedPeers: [identity.nodeId] });
      cli = await connectClient(srv.url, { identity, expectedPeer: srv.identity.nodeId, framings: [framing], signatures });
    });
    after(async () => {
      await cli.client.close();
      await srv.close();
    });

    test('the handshake negotiated what the client asked for and both sides know each other', () => {
      assert.deepEqual(cli.transport.negotiated, { framing, signatures });
      assert.equal(cli.transport.peer?.nodeId, srv.identity.nodeId);
      assert.equal(srv.transports.length, 1);
      assert.equal(srv.transports[0]!.peer?.nodeId, identity.nodeId);
      assert.equal(srv.transports[0]!.e2eSessionId, cli.transport.e2eSessionId);
      assert.equal(cli.transport.sessionId, undefined, 'the SDK client would skip initialize if sessionId were set');
    });

    test('initialize: server info and capabilities arrive', () => {
      assert.equal(cli.client.getServerVersion()?.name, 'mcp-e2e-test');
      assert.ok(cli.client.getServerCapabilities()?.tools);
      assert.ok(cli.transport.protocolVersion, 'setProtocolVersion was called');
    });

    test('tools/list and tools/call', async () => {
      const { tools } = await cli.client.listTools();
      assert.ok(tools.some((t) => t.name === 'echo'));
      const r = await cli.client.callTool({ name: 'echo', arguments: { message: 'hi there' } });
      assert.equal(textOf(r), 'Echo: hi there');
    });

    test('tool handlers see the caller identity in extra.authInfo, and no secret', async () => {
      const who = JSON.parse(textOf(await cli.client.callTool({ name: 'whoami', arguments: {} })));
      assert.equal(who.clientId, identity.nodeId);
      assert.equal(who.nodeId, identity.nodeId);
      assert.equal(who.token, '');
      assert.equal(who.sessionId, cli.transport.e2eSessionId);
    });

    test('resources: list, read, template', async () => {
      const { resources } = await cli.client.listResources();
      assert.ok(resources.some((r) => r.uri === 'test://hello'));
      const hello = await cli.client.readResource({ uri: 'test://hello' });
      assert.equal((hello.contents[0] as { text: string }).text, 'hello resource');
      const item = await cli.client.readResource({ uri: 'test://item/42' });
      assert.equal((item.contents[0] as { text: string }).text, 'item 42');
    });

    test('prompts: list and get', async () => {
      const { prompts } = await cli.client.listPrompts();
      assert.ok(prompts.some((p) => p.name === 'greet'));
      const p = await cli.client.getPrompt({ name: 'greet', arguments: { name: 'Ada' } });
      assert.deepEqual(p.messages[0]!.content, { type: 'text', text: 'Hello, Ada!' });
    });

    test('progress notifications reach the caller in order', async () => {
      const seen: number[] = [];
      const r = await cli.client.callTool({ name: 'progress', arguments: { steps: 5 } }, undefined, {
        onprogress: (p) => seen.push(p.progress),
      });
      assert.equal(textOf(r), 'done');
      assert.deepEqual(seen, [1, 2, 3, 4, 5]);
    });

    test('logging notifications', async () => {
      const got = deferred<unknown>();
      cli.client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => got.resolve(n.params.data));
      await cli.client.callTool({ name: 'log', arguments: { text: 'a log line' } });
      assert.equal(await within(got.promise, 5000, 'the log notification'), 'a log line');
    });

    test('cancellation reaches the server-side handler', async () => {
      const ac = new AbortController();
      const call = cli.client.callTool({ name: 'slow', arguments: {} }, undefined, { signal: ac.signal });
      await within(srv.probe.slowStarted.promise, 5000, 'the slow tool to start');
      ac.abort('test cancels');
      await assert.rejects(call);
      await within(srv.probe.cancelled.promise, 5000, 'the server to see the cancellation');
    });

    test('100 concurrent requests all answered correctly', async () => {
      const results = await Promise.all(
        Array.from({ length: 100 }, (_, i) => cli.client.callTool({ name: 'add', arguments: { a: i, b: 1000 } })),
      );
      results.forEach((r, i) => assert.equal(textOf(r), String(i + 1000)));
    });

    test('an 8 MB tool result arrives intact', async () => {
      const bytes = 8 * 1024 * 1024;
      const r = await cli.client.callTool({ name: 'big', arguments: { bytes } });
      const text = textOf(r);
      assert.equal(text.length, bytes);
      assert.ok(/^x+$/.test(text));
    });
  });
}
