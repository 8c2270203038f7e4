/**
 * The seed's plaintext mode (SEED.md, "Plaintext Mode (Backward Compatible)")
 * in TypeScript: plain MCP over WebSocket, to a peer that does not speak
 * mcp-e2e, for example server-everything behind supergateway:
 *
 *   npx supergateway --stdio "npx -y @modelcontextprotocol/server-everything" --outputTransport ws --port 8000
 *   node dist/examples/seed-plaintext-client.js
 */
import { EncryptedWebSocketTransport, NodeIdentity } from 'mcp-e2e';

const identity = NodeIdentity.generate();

// Disable encryption for testing or compatibility
const transport = new EncryptedWebSocketTransport('ws://localhost:8000/message', identity, {
  enableEncryption: false, // Plaintext mode
});

await transport.connect();
await transport.send('{"jsonrpc": "2.0", "id": 1, "method": "ping"}');
const response = await transport.receive();
console.log(JSON.stringify(response));
await transport.close();
