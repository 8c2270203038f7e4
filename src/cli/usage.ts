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
      --announce              publish this node's signed record (its URLs, --name) to the
                              peers it meets and to the discovery sources; heard on the
                              local network over mDNS (use --host 0.0.0.0)
      --name NAME             a short human name in the record (never identity)
      --public-url URL        announce this URL instead of the listening ones (behind a
                              proxy or NAT); repeatable
      --bootstrap URL#NODE_ID join the mesh through this peer and gossip records (repeatable);
                              dialled at start and whenever below the mesh target, with backoff
      --bootstrap-tofu        allow --bootstrap URL without #NODE_ID (first key seen is believed)
      --open-mesh             gossip with every authenticated peer (default: allowed and
                              bootstrap peers only); MCP access stays the allowlist's
      --mesh-target N         mesh sessions to keep (default 3)
      --gossip-interval S     gossip round (default 1); --anti-entropy-interval S (default 10)
      --status-interval S     log a mesh status line every S seconds (default 60)
      --no-mdns               with --announce: do not announce on the local network (mDNS)
  connect URL [--peer NODE_ID] [--plaintext] [--reconnect] [--keepalive MS]
                              be a stdio MCP server for an MCP client, relaying to URL;
                              without --peer, trust on first use (known_peers.json);
                              --reconnect: retry a lost connection (backoff with jitter,
                              a new handshake each time) and re-initialise the MCP session;
                              --keepalive: ping interval, a link silent for two is dead
                              (default 15000, 0 disables)
  connect NODE_ID | NAME [--reconnect] [--keepalive MS]
                              the same, to a node found through the peer registry and
                              discovery, pinned to its node id (NAME: an allowed peer's
                              label or record name); an mDNS lookup on the local network
                              when the registry has no working address (--no-mdns: none)
  discover [--timeout S]      list the mcp-e2e nodes the local network offers now (mDNS, like
                              avahi-browse), marked new/discovered/verified/trusted/blocked;
                              listens S seconds (default 3); stores and trusts nothing
  peers [list]                show the peer registry, the allowed and the known peers
  peers allow NODE_ID [LABEL] allow a node to connect to serve (its state becomes trusted)
  peers deny NODE_ID          remove a node from the allowlist
  peers add RECORD_HEX        add a peer's record (as \`mcp-e2e peers record\` prints it there)
  peers add NODE_ID URL...    add addresses for a node id by hand
  peers block NODE_ID         drop its records, never dial it, refuse its connections
  peers unblock NODE_ID
  peers forget HOST:PORT | NODE_ID
                              forget the identity recorded for an endpoint, or a node
  peers record                print this node's current record (made by serve --announce)

Options for every command:
  --home DIR                  home directory (default $MCP_E2E_HOME or ~/.mcp-e2e)
  --json                      machine-readable output and logs
  --verbose                   more detail in logs
  --help, --version
`;
