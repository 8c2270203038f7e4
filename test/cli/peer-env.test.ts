/**
 * What `serve` tells the server it runs about the caller: the caller's node
 * id, fingerprint and the name given to it here, in the environment of the
 * server process of its connection. Real processes throughout: `serve`
 * around a stdio MCP server (test/cli/fixtures/env-server.ts), SDK clients
 * whose server command is `mcp-e2e connect`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { allowPeer } from '../../src/cli/peers.js';
import { CLI, ROOT, makeHome, startServe } from './helpers.js';

/** A stdio MCP server whose tool `caller` returns its MCP_E2E_* variables and its arguments. */
export const ENV_SERVER = join(ROOT, 'dist/test/cli/fixtures/env-server.js');

/** Call `caller` through `mcp-e2e connect URL --home HOME --peer SERVER_ID`, as an MCP client app would. */
export async function callerSeenBy(url: string, home: string, serverNodeId: string): Promise<{ env: Record<string, string>; argv: string[]; path: boolean }> {
  const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, 'connect', url, '--home', home, '--peer', serverNodeId], stderr: 'pipe' });
  const stderr: string[] = [];
  transport.stderr?.on('data', (c: Buffer) => stderr.push(c.toString()));
  const client = new Client({ name: 'peer-env-test', version: '1.0.0' });
  try {
    await client.connect(transport);
    const result = (await client.callTool({ name: 'caller' })) as { content: Array<{ type: string; text: string }> };
    return JSON.parse(result.content[0]!.text);
  } catch (err) {
    throw new Error(`${(err as Error).message}; connect said: ${stderr.join('')}`);
  } finally {
    await client.close();
  }
}

test('the server process learns who is calling: MCP_E2E_PEER_ID, _FINGERPRINT and the name given here (also with --clean-env), nothing inherited', async () => {
  const server = makeHome();
  const alice = makeHome();
  const bob = makeHome();
  allowPeer(join(server.home, 'allowed_peers'), alice.identity.nodeId, 'alice');
  allowPeer(join(server.home, 'allowed_peers'), bob.identity.nodeId);
  // serve's own environment claims to be someone: none of it may reach the child.
  const spoof = { MCP_E2E_PEER_ID: 'f'.repeat(64), MCP_E2E_PEER_NAME: 'mallory', MCP_E2E_PEER_FINGERPRINT: 'ffff-ffff-ffff-ffff-ffff' };
  for (const extra of [[], ['--clean-env']]) {
    const serve = await startServe(['--home', server.home, ...extra], [process.execPath, ENV_SERVER], { env: spoof });
    try {
      const a = await callerSeenBy(serve.url, alice.home, server.identity.nodeId);
      assert.deepEqual(a.env, { MCP_E2E_PEER_ID: alice.identity.nodeId, MCP_E2E_PEER_FINGERPRINT: alice.identity.fingerprint, MCP_E2E_PEER_NAME: 'alice' }, `serve ${extra.join(' ')}`);
      assert.ok(a.path, 'the child still has its PATH');
      // No name given here: no MCP_E2E_PEER_NAME at all (not an empty one, not the spoofed one).
      const b = await callerSeenBy(serve.url, bob.home, server.identity.nodeId);
      assert.deepEqual(b.env, { MCP_E2E_PEER_ID: bob.identity.nodeId, MCP_E2E_PEER_FINGERPRINT: bob.identity.fingerprint }, `serve ${extra.join(' ')}`);
    } finally {
      await serve.stop();
    }
  }
});
