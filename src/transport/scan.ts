/**
 * Learn a server's identity before trusting it, as `ssh-keyscan` does: run
 * the handshake as initiator up to the responder's step 2 (PROTOCOL.md §4),
 * which carries its identity key, node id and a signature over the
 * transcript with that key, check all of it, then close. Step 3, the only
 * message with the initiator's identity, is never sent; the identity the
 * state machine needs to make it is a throwaway one anyway.
 *
 * What it proves: the endpoint holds the private key of the node id it
 * presented. Whether that is the right node is for a person to decide
 * (compare the fingerprint out of band) before pinning it.
 */
import { McpE2eError } from '../errors.js';
import { NodeIdentity, type PeerIdentity } from '../identity/identity.js';
import { EncryptedWebSocketClientTransport } from './client.js';

/** Options of `scanPeer`. */
export interface ScanOptions {
  /** The whole scan must finish within this many ms. Default the client's handshake timeout (10 s). */
  timeoutMs?: number;
  /** Extra HTTP headers for the upgrade request. */
  headers?: Record<string, string>;
}

/**
 * The identity of the mcp-e2e server at `url`, verified as far as the
 * handshake verifies it, without revealing ours.
 * @throws McpE2eError as `EncryptedWebSocketClientTransport.start()` would
 *   before authenticating the server (`ERR_CONNECT_FAILED`, `ERR_SUBPROTOCOL`,
 *   `ERR_HANDSHAKE_*`, ...).
 */
export async function scanPeer(url: string | URL, options: ScanOptions = {}): Promise<PeerIdentity> {
  let seen: PeerIdentity | undefined;
  const transport = new EncryptedWebSocketClientTransport(url, {
    identity: NodeIdentity.generate(),
    ...(options.timeoutMs !== undefined ? { handshakeTimeoutMs: options.timeoutMs } : {}),
    ...(options.headers ? { headers: options.headers } : {}),
    trust: {
      // Runs on step 2, before step 3 exists on the wire: refusing ends the handshake here.
      verify(peer) {
        seen = peer;
        throw new McpE2eError('ERR_PEER_REJECTED', 'scan only: the handshake stops before our identity is sent');
      },
    },
  });
  transport.onerror = () => {};
  try {
    await transport.start();
  } catch (err) {
    if (seen) return seen;
    throw err;
  }
  // Unreachable: the trust policy above always refuses.
  await transport.close();
  throw new McpE2eError('ERR_HANDSHAKE_UNEXPECTED_MESSAGE', 'the scan completed a handshake');
}
