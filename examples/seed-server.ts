/**
 * The seed's server example (SEED.md, "Server-Side Usage") in TypeScript:
 * an encrypted server whose handler answers the client example's request.
 *
 *   node dist/examples/seed-server.js      # prints the server's node id
 */
import { EncryptedMessageServer, NodeIdentity, type MessageHandler } from 'mcp-e2e';

// Create server identity
const identity = NodeIdentity.generate();

// Answer "test" requests; the caller's identity is verified by the handshake
const handleMessage: MessageHandler = async (message, peer) => {
  if ('method' in message && 'id' in message && message.method === 'test') {
    return { jsonrpc: '2.0', id: message.id, result: { ok: true, client: peer?.fingerprint } };
  }
};

// Create encrypted server
const server = new EncryptedMessageServer(identity, {
  messageHandler: handleMessage,
  enableEncryption: true,
  allowAnyPeer: true, // every client that proves its identity; or allowedPeers: [nodeId, ...]
});

// Start server
await server.start('localhost', 8000);
console.log(`server node id: ${identity.nodeId}`);
