/**
 * The seed's client example (SEED.md, "Client-Side Usage") in TypeScript,
 * pinned to the server's node id (printed by seed-server).
 *
 *   node dist/examples/seed-client.js <SERVER_NODE_ID>
 */
import { EncryptedWebSocketTransport, NodeIdentity } from 'mcp-e2e';

// Create identity
const identity = NodeIdentity.generate();

// Create encrypted transport
const transport = new EncryptedWebSocketTransport('ws://localhost:8000', identity, {
  enableEncryption: true,
  expectedPeer: process.argv[2],
});

// Connect and establish encrypted session
await transport.connect();

// Send encrypted message
const message = '{"jsonrpc": "2.0", "id": 1, "method": "test"}';
await transport.send(message);

// Receive and decrypt message
const response = await transport.receive();
console.log(JSON.stringify(response));
await transport.close();
