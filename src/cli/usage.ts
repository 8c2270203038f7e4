/** A mistake in how the command was called: printed as one line, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export const USAGE = `usage: mcp-e2e <command> [options]

Commands:
  keygen [--force]            create this node's identity (refuses to overwrite without --force)
  id [--json]                 print this node's id and fingerprint
  serve [options] -- COMMAND [ARGS...]
                              put the stdio MCP server COMMAND behind an encrypted endpoint
      --host H                address to listen on (default 127.0.0.1)
      --port P                port to listen on (default 8765)
      --allow FILE            allowlist of node ids (default: HOME/allowed_peers)
      --allow-any-peer        accept any authenticated peer
      --allow-plaintext       also accept plain MCP over WebSocket (unauthenticated!)
      --allow-origin ORIGIN   accept upgrades from web pages of ORIGIN (repeatable; by default
                              an upgrade with an Origin header, i.e. from a browser, is refused)
      --max-connections N     connections (server processes) at once (default 64)
      --max-connections-per-peer N
                              connections at once of one node id (default 16)
      --clean-env             give COMMAND only PATH, HOME, USER, LANG, TZ, TMPDIR and the like
      --pass-env NAME         with --clean-env, also pass NAME (repeatable)
  connect URL [--peer NODE_ID] [--plaintext] [--reconnect] [--keepalive MS]
                              be a stdio MCP server for an MCP client, relaying to URL;
                              without --peer, trust on first use (known_peers.json);
                              --reconnect: retry a lost connection (backoff with jitter,
                              a new handshake each time) and re-initialise the MCP session;
                              --keepalive: ping interval, a link silent for two is dead
                              (default 15000, 0 disables)
  peers list                  show allowed and known peers
  peers allow NODE_ID [LABEL] allow a node to connect to serve
  peers deny NODE_ID          remove a node from the allowlist
  peers forget HOST:PORT      forget the identity recorded for an endpoint

Options for every command:
  --home DIR                  home directory (default $MCP_E2E_HOME or ~/.mcp-e2e)
  --json                      machine-readable output and logs
  --verbose                   more detail in logs
  --help, --version
`;
