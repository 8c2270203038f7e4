/**
 * The optional SDK-level figure: a 1 KB `tools/call` round trip through the
 * MCP SDK's `Client` and `McpServer` (an `echo` tool), over our transports in
 * plaintext mode (plain MCP, subprotocol `mcp`) and encrypted modes. Shows
 * how much of an end-to-end MCP round trip our layer is once the SDK's own
 * work (request bookkeeping, schema validation of results) is included.
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { z } from 'zod';
import { EncryptedWebSocketClientTransport } from '../src/transport/client.js';
import { EncryptedWebSocketServer } from '../src/transport/server.js';
import type { NodeIdentity } from '../src/identity/identity.js';
import type { Framing } from '../src/protocol.js';
import { makeArguments } from './payload.js';
import { nowUs } from './stats.js';
import { ONE_ADDRESS_MANY_CLIENTS } from '../test/transport/helpers.js';

export interface SdkVariant {
  id: string;
  label: string;
  encrypted: boolean;
  framing?: Framing;
  signatures?: boolean;
}

export const SDK_VARIANTS: readonly SdkVariant[] = Object.freeze([
  { id: 'sdk-plaintext', label: 'SDK over plaintext (our transport, `mcp`)', encrypted: false },
  { id: 'sdk-e2e-json-signed', label: 'SDK over e2e JSON-hex + sig', encrypted: true, framing: 'json', signatures: true },
  { id: 'sdk-e2e-binary', label: 'SDK over e2e binary, no sig', encrypted: true, framing: 'binary', signatures: false },
] as SdkVariant[]);

/** One server for every variant: plaintext allowed, the client picks framing and signatures. */
export async function startSdkEchoServer(identity: NodeIdentity): Promise<{ port: number; close: () => Promise<void> }> {
  const server = new EncryptedWebSocketServer({
    identity,
    allowAnyPeer: true,
    allowPlaintext: true,
    signatures: false,
    framings: ['binary', 'json'],
    limits: { maxConnectionsPerPeer: 4096, ...ONE_ADDRESS_MANY_CLIENTS },
    onConnection: async (transport) => {
      const mcp = new McpServer({ name: 'mcp-e2e-bench', version: '1.0.0' });
      mcp.registerTool('echo', { description: 'echo', inputSchema: { text: z.string() } }, async ({ text }) => ({ content: [{ type: 'text', text }] }));
      await mcp.connect(transport);
    },
  });
  const address = await server.listen(0, '127.0.0.1');
  return { port: address.port, close: () => server.close() };
}

/** Connect an SDK Client, then time `count` sequential `tools/call` round trips of about `bytes`; µs samples. */
export async function sdkRoundTrips(port: number, variant: SdkVariant, identity: NodeIdentity, serverNodeId: string, bytes: number, count: number, warmup: number): Promise<number[]> {
  const transport = new EncryptedWebSocketClientTransport(`ws://127.0.0.1:${port}`, variant.encrypted
    ? { identity, expectedPeer: serverNodeId, signatures: variant.signatures!, framings: [variant.framing!] }
    : { enableEncryption: false });
  const client = new Client({ name: 'mcp-e2e-bench', version: '1.0.0' });
  await client.connect(transport);
  try {
    const args = makeArguments(bytes);
    for (let i = 0; i < warmup; i++) await client.callTool({ name: 'echo', arguments: args });
    const samples: number[] = [];
    for (let i = 0; i < count; i++) {
      const t0 = nowUs();
      await client.callTool({ name: 'echo', arguments: args });
      samples.push(nowUs() - t0);
    }
    return samples;
  } finally {
    await client.close();
  }
}
