/**
 * The CLI's home directory: one place for the identity, the allowlist, the
 * known peers, the peer registry and the config file. `--home` beats `MCP_E2E_HOME`, which beats `~/.mcp-e2e`.
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { McpE2eError } from '../errors.js';
import { NodeIdentity } from '../identity/identity.js';
import { UsageError } from './usage.js';

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
  /** Option defaults per command (src/cli/config.ts); may be missing. */
  config: string;
}

/**
 * The home and its files. An empty `MCP_E2E_HOME` counts as unset (as XDG's
 * variables do); an empty `--home` is refused (it would be the working directory).
 * @throws UsageError for `--home ''`.
 */
export function resolveHome(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): HomePaths {
  if (flag === '') throw new UsageError('--home needs a directory (an empty one would be the working directory)');
  const home = resolve(flag ?? (env.MCP_E2E_HOME || join(homedir(), '.mcp-e2e')));
  return {
    home,
    identity: join(home, 'identity.json'),
    allowedPeers: join(home, 'allowed_peers'),
    knownPeers: join(home, 'known_peers.json'),
    registry: join(home, 'peers.json'),
    config: join(home, 'config.json'),
  };
}

/** Load the identity, or explain in one line how to create one. */
export function loadIdentity(paths: HomePaths): NodeIdentity {
  try {
    return NodeIdentity.load(paths.identity);
  } catch (err) {
    if (err instanceof McpE2eError && err.code === 'ERR_KEY_FILE_NOT_FOUND') {
      throw new UsageError(`no identity at ${paths.identity}; create one with: mcp-e2e keygen${paths.home === resolveHome(undefined).home ? '' : ` --home ${paths.home}`}`);
    }
    throw err;
  }
}
