/**
 * The CLI's home directory: one place for the identity, the allowlist, the
 * known peers and the peer registry. `--home` beats `MCP_E2E_HOME`, which beats `~/.mcp-e2e`.
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export interface HomePaths {
  home: string;
  /** Identity key file (mode 0600). */
  identity: string;
  /** Node ids allowed to connect to `serve`, one per line. */
  allowedPeers: string;
  /** Endpoint → node id, recorded on first use by `connect`. */
  knownPeers: string;
  /** The peer registry: what discovery and sessions taught this node (PROTOCOL.md §13). */
  registry: string;
}

export function resolveHome(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): HomePaths {
  const home = resolve(flag ?? env.MCP_E2E_HOME ?? join(homedir(), '.mcp-e2e'));
  return {
    home,
    identity: join(home, 'identity.json'),
    allowedPeers: join(home, 'allowed_peers'),
    knownPeers: join(home, 'known_peers.json'),
    registry: join(home, 'peers.json'),
  };
}
