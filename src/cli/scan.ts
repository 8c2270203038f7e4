/** `mcp-e2e scan URL`: the server's identity, and what this home already knows of it. */
import { fingerprintOf } from '../identity/identity.js';
import { KnownPeersStore } from '../identity/trust.js';
import { scanPeer } from '../transport/scan.js';
import { escapeControlCharacters as safe } from '../util/text.js';
import { parseUrl } from './connect.js';
import type { HomePaths } from './home.js';
import { nameOf } from '../identity/names.js';
import { endpointOf, localPeers } from './peers.js';

export async function scanCommand(urlText: string, paths: HomePaths, out: (line: string) => void, json: boolean): Promise<void> {
  const url = parseUrl(urlText);
  const peer = await scanPeer(url);
  const endpoint = endpointOf(url.href)!;
  const recorded = new KnownPeersStore(paths.knownPeers).get(endpoint);
  const known = recorded === undefined ? 'new' : recorded === peer.nodeId ? 'same' : 'changed';
  const name = nameOf(peer.nodeId, localPeers(paths));
  if (json) {
    out(JSON.stringify({ url: url.href, endpoint, node_id: peer.nodeId, fingerprint: peer.fingerprint, public_key: peer.publicKey.toString('hex'), known, name: name ?? null }));
    return;
  }
  out(peer.nodeId);
  out(`fingerprint ${peer.fingerprint} (compare it with what the server's operator reads from \`mcp-e2e id\`)`);
  if (name) out(`named here: ${safe(name)}`);
  if (known === 'new') out(`${endpoint} is not recorded here; once the fingerprint matches: mcp-e2e connect ${url.href.replace(/\/$/, '')} --peer ${peer.nodeId}`);
  else if (known === 'same') out(`${endpoint} is recorded here with this identity`);
  else out(`WARNING: ${endpoint} is recorded here with another identity, ${fingerprintOf(recorded!)} (node id ${recorded}); if the change is expected: mcp-e2e peers forget ${endpoint}`);
}
