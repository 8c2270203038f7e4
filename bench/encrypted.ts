/**
 * The encrypted modes: echo server and client over the transports of
 * src/transport, measured at the transport level (send / onmessage with
 * JSON-RPC objects), without the MCP SDK's Client/Server on top.
 */
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { EncryptedWebSocketClientTransport } from '../src/transport/client.js';
import { EncryptedWebSocketServer } from '../src/transport/server.js';
import type { NodeIdentity } from '../src/identity/identity.js';
import type { Framing } from '../src/protocol.js';
import { ONE_ADDRESS_MANY_CLIENTS } from '../test/transport/helpers.js';
import { echoReply } from './payload.js';

export interface EncryptedEchoServer {
  port: number;
  close(): Promise<void>;
}

/**
 * An echo server of one mode: each connection's transport answers every
 * request with `echoReply`. `counters` is updated per connection and reply.
 * The server requires the mode's framing and, when signed, signatures; the
 * client asks for exactly that, and `connectEncrypted` checks what was negotiated.
 */
export async function startEncryptedEchoServer(
  identity: NodeIdentity,
  framing: Framing,
  signatures: boolean,
  counters: { connections: number; echoed: number },
): Promise<EncryptedEchoServer> {
  const server = new EncryptedWebSocketServer({
    identity,
    allowAnyPeer: true,
    signatures,
    framings: [framing],
    // Room for the 1,000-connection figures with connections of the previous
    // burst still closing, all from 127.0.0.1 with one identity; every
    // per-connection limit stays at its default.
    limits: { maxConnections: 4096, maxConnectionsPerAddress: 4096, maxConnectionsPerPeer: 4096, ...ONE_ADDRESS_MANY_CLIENTS },
    onConnection: async (transport) => {
      counters.connections++;
      transport.onclose = () => counters.connections--;
      transport.onerror = () => {};
      transport.onmessage = (msg) => {
        const reply = echoReply(msg);
        if (!reply) return;
        counters.echoed++;
        transport.send(reply).catch(() => {});
      };
      await transport.start();
    },
  });
  const address = await server.listen(0, '127.0.0.1');
  return { port: address.port, close: () => server.close() };
}

export interface EncryptedClientConnection {
  send(message: JSONRPCMessage): Promise<void>;
  close(): Promise<void>;
  onmessage: ((message: JSONRPCMessage) => void) | undefined;
}

/** Connect and handshake; resolves when MCP messages can flow (what "connection setup" times). */
export async function connectEncrypted(
  url: string,
  identity: NodeIdentity,
  serverNodeId: string,
  framing: Framing,
  signatures: boolean,
  onmessage: (message: JSONRPCMessage) => void,
): Promise<EncryptedWebSocketClientTransport> {
  const t = new EncryptedWebSocketClientTransport(url, {
    identity,
    expectedPeer: serverNodeId,
    signatures,
    framings: [framing],
    enableEncryption: true,
  });
  t.onmessage = onmessage;
  t.onerror = () => {};
  await t.start();
  const n = t.negotiated;
  if (!n || n.framing !== framing || n.signatures !== signatures) {
    await t.close();
    throw new Error(`negotiated ${JSON.stringify(n)}, expected framing ${framing} with signatures ${signatures}`);
  }
  return t;
}
