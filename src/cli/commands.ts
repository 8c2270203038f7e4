/**
 * The command line as a table: every option once, every command with its
 * options, synopsis, help and examples. src/cli/args.ts parses and renders
 * help from it; main.ts runs the command. A new command or option is an
 * entry here (and its handler in main.ts).
 */
import type { CommandSpec, OptionSpec } from './args.js';

export const OPTIONS = {
  home: { type: 'string', value: 'DIR', help: 'home directory (default $MCP_E2E_HOME or ~/.mcp-e2e)' },
  config: { type: 'string', value: 'FILE', help: 'read option defaults from FILE (default HOME/config.json, if it exists); the command line wins' },
  'no-config': { type: 'boolean', help: 'read no config file' },
  json: { type: 'boolean', help: 'machine-readable output and logs (one JSON object per line)' },
  verbose: { type: 'boolean', short: 'v', help: 'more detail in logs' },
  help: { type: 'boolean', short: 'h', help: 'show help (mcp-e2e COMMAND --help: that command\'s, with examples)' },
  version: { type: 'boolean', short: 'V', help: 'print the version' },
  force: { type: 'boolean', help: 'replace an existing identity (the old one is lost)', commandLineOnly: 'it replaces the identity, and is meant each time it is typed' },
  host: { type: 'string', value: 'ADDR', help: 'local address to listen on, without a port (default 127.0.0.1; 0.0.0.0 or :: for every interface)' },
  port: { type: 'string', value: 'PORT', help: 'port to listen on (default 8765; 0 picks a free one)' },
  allow: { type: 'string', value: 'FILE', help: 'allowlist of node ids (default HOME/allowed_peers); must exist' },
  'allow-any-peer': { type: 'boolean', help: 'accept every client that completes the handshake', commandLineOnly: 'it lets every client in; type it when you mean it' },
  'allow-plaintext': { type: 'boolean', help: 'also accept plain MCP over WebSocket (unauthenticated, unencrypted!)', commandLineOnly: 'it accepts unauthenticated, unencrypted clients; type it when you mean it' },
  'allow-origin': { type: 'string', multiple: true, value: 'ORIGIN', help: 'accept upgrades from web pages of ORIGIN (repeatable; by default an upgrade with an Origin header, i.e. from a browser, is refused)' },
  'max-connections': { type: 'string', value: 'N', help: 'connections (server processes) at once (default 64)' },
  'max-connections-per-peer': { type: 'string', value: 'N', help: 'connections at once of one node id (default 16)' },
  'clean-env': { type: 'boolean', help: 'give COMMAND only PATH, HOME, USER, LANG, TZ, TMPDIR and the like' },
  'pass-env': { type: 'string', multiple: true, value: 'NAME', help: 'with --clean-env, also pass NAME (repeatable)' },
  announce: { type: 'boolean', help: 'publish this node\'s signed record (its URLs, --name) to the peers it meets and to the discovery sources' },
  name: { type: 'string', value: 'NAME', help: 'a short human name in the record (a claim of this node, never identity)' },
  'public-url': { type: 'string', multiple: true, value: 'URL', help: 'announce this URL instead of the listening ones (behind a proxy or NAT); repeatable' },
  bootstrap: { type: 'string', multiple: true, value: 'URL#NODE_ID', help: 'join the mesh through this peer and gossip records (repeatable); dialled at start and whenever below the mesh target, with backoff' },
  'bootstrap-tofu': { type: 'boolean', help: 'allow --bootstrap URL without #NODE_ID (the first key seen is believed)', commandLineOnly: 'it believes the first key a bootstrap peer shows; type it when you mean it' },
  'open-mesh': { type: 'boolean', help: 'gossip with every authenticated peer (default: allowed and bootstrap peers only); MCP access stays the allowlist\'s' },
  'mesh-target': { type: 'string', value: 'N', help: 'mesh sessions to keep (default 3)' },
  'gossip-interval': { type: 'string', value: 'S', help: 'gossip round, seconds (default 1)' },
  'anti-entropy-interval': { type: 'string', value: 'S', help: 'anti-entropy round, seconds (default 10)' },
  'status-interval': { type: 'string', value: 'S', help: 'log a mesh status line every S seconds (default 60)' },
  'no-mdns': { type: 'boolean', help: 'serve --announce: do not announce on the local network; connect NODE_ID: no mDNS lookup (the registry only)' },
  timeout: { type: 'string', value: 'S', help: 'seconds to listen (default 3)' },
  'share-stderr': { type: 'boolean', help: 'when the MCP server exits without answering, tell the client the last line it wrote to stderr (off by default: it may show paths or secrets)' },
  peer: { type: 'string', value: 'PEER', help: 'the server\'s node id (64 hex digits), or the name or fingerprint of a peer known here' },
  'strict-peer': { type: 'boolean', help: 'without --peer, refuse a server whose identity is not recorded here yet (no trust on first use)' },
  plaintext: { type: 'boolean', help: 'speak plain MCP over WebSocket (no encryption, nobody authenticated)', commandLineOnly: 'it turns off encryption and authentication; type it when you mean it' },
  reconnect: { type: 'boolean', help: 'retry a lost connection (backoff with jitter, a new handshake each time) and re-initialise the MCP session' },
  keepalive: { type: 'string', value: 'MS', help: 'ping interval; a link silent for two is dead (default 15000, 0 disables)' },
} as const satisfies Record<string, OptionSpec>;

export type OptionName = keyof typeof OPTIONS;
type ValueOf<O extends OptionSpec> = O extends { multiple: true } ? string[] : O['type'] extends 'string' ? string : boolean;
/** Parsed option values, by long name; absent when not given. */
export type Values = { [K in OptionName]?: ValueOf<(typeof OPTIONS)[K]> };

/** Options every command takes. */
export const GLOBAL_OPTIONS: readonly OptionName[] = ['home', 'config', 'no-config', 'json', 'verbose', 'help', 'version'];

type Command = CommandSpec & { options: Partial<Record<OptionName, string | true>> };

export const COMMANDS: readonly Command[] = [
  {
    name: 'keygen',
    summary: 'create this node\'s identity (HOME/identity.json, mode 0600)',
    synopsis: '[--force]',
    options: { force: true },
    positionals: [0, 0],
    description: ['Refuses to replace an existing identity without --force.'],
    examples: ['mcp-e2e keygen', 'mcp-e2e keygen --home /srv/mcp-e2e'],
  },
  {
    name: 'id',
    summary: 'print this node\'s id (to give to peers) and its fingerprint (to compare by voice)',
    synopsis: '',
    options: {},
    positionals: [0, 0],
    description: ['The first line is the node id, the one thing peers need: `mcp-e2e peers allow` and `connect --peer` take it.'],
    examples: ['mcp-e2e id', 'mcp-e2e id --json'],
  },
  {
    name: 'scan',
    summary: 'show the identity of the server at URL, before trusting it (nothing of ours is sent)',
    synopsis: 'URL',
    options: {},
    positionals: [1, 1],
    description: [
      'Runs the handshake up to the server\'s signed identity and stops before ours would be sent. Compare the fingerprint with the one the server\'s operator reads from `mcp-e2e id`; if they match, pin the node id: mcp-e2e connect URL --peer NODE_ID.',
    ],
    examples: ['mcp-e2e scan ws://server:8765', 'mcp-e2e scan ws://server:8765 --json'],
  },
  {
    name: 'peers',
    summary: 'show and change whom this node trusts',
    synopsis: '[list] | allow NODE_ID [NAME] | deny PEER | forget ENDPOINT|PEER | add RECORD_HEX | add NODE_ID URL... | block PEER | unblock PEER | record',
    options: {},
    positionals: [0, 64],
    description: [
      'peers list: the allowed peers (who may connect to serve) and the known peers (the servers connect has met, by endpoint).',
      'peers allow NODE_ID [NAME]: allow a node to connect to serve, and name it here. peers deny PEER: remove it.',
      'peers forget ENDPOINT|PEER: forget the identity connect recorded for ws://HOST:PORT (or HOST:PORT), or everything recorded of a peer (its endpoints, its registry entry).',
      'peers add RECORD_HEX: add a peer\'s record (as `mcp-e2e peers record` prints it there). peers add NODE_ID URL...: add addresses for a node id by hand.',
      'peers block PEER: drop its records, never dial it, refuse its connections (peers unblock PEER undoes it). peers record: print this node\'s current record (made by serve --announce).',
      'The peer registry (what discovery and sessions taught this node) is listed first; the NAME column there is what a node calls itself, a claim: only names given here (peers allow NODE_ID NAME) select a peer.',
    ],
    examples: ['mcp-e2e peers', 'mcp-e2e peers allow 3f2a91bc...(64 hex digits) alice', 'mcp-e2e peers deny alice', 'mcp-e2e peers forget ws://server:8765'],
  },
  {
    name: 'serve',
    summary: 'put the stdio MCP server COMMAND behind an encrypted endpoint (one process per connection)',
    synopsis: '[options] -- COMMAND [ARGS...]',
    options: {
      host: true,
      port: true,
      allow: true,
      'allow-any-peer': true,
      'allow-plaintext': true,
      'allow-origin': true,
      'max-connections': true,
      'max-connections-per-peer': true,
      'clean-env': true,
      'pass-env': true,
      'share-stderr': true,
      announce: true,
      name: true,
      'public-url': true,
      bootstrap: true,
      'bootstrap-tofu': true,
      'open-mesh': true,
      'mesh-target': true,
      'gossip-interval': true,
      'anti-entropy-interval': true,
      'status-interval': true,
      'no-mdns': true,
    },
    positionals: [0, 0],
    trailing: true,
    description: [
      'Only node ids on the allowlist may connect (mcp-e2e peers allow NODE_ID); the file is re-read when it changes.',
      'An allowlist line command=["PROGRAM","ARG",...] NODE_ID gives that peer its own server command (see README).',
      'Everything after -- is the server\'s command line, run without a shell.',
    ],
    examples: [
      'mcp-e2e serve -- npx -y @modelcontextprotocol/server-everything',
      'mcp-e2e serve --host 0.0.0.0 --port 8765 -- node server.js',
      'mcp-e2e serve --allow ./team_peers --clean-env --pass-env API_KEY -- python -m my_server',
      'mcp-e2e serve --announce --name build-box --bootstrap ws://hub:8765#NODE_ID -- npx -y @modelcontextprotocol/server-everything',
    ],
  },
  {
    name: 'connect',
    summary: 'be a stdio MCP server for an MCP client, relaying to an encrypted endpoint',
    synopsis: 'URL [--peer PEER] | NODE_ID | NAME [options]',
    options: { peer: true, 'strict-peer': true, plaintext: true, reconnect: true, keepalive: true, 'no-mdns': true },
    positionals: [1, 1],
    description: [
      'An MCP client (an IDE, a desktop app, the MCP Inspector) launches this as its server command. stdout carries only MCP messages; logs go to stderr.',
      'Without --peer, the server\'s identity is trusted on first use and recorded in HOME/known_peers.json; a changed identity is refused.',
      'Given a node id (or the name given here to a peer, or its fingerprint) instead of a URL, the node is found through the peer registry and discovery, and the handshake is pinned to that node id. When the registry has no working address, an mDNS lookup asks the local network (--no-mdns: none).',
    ],
    examples: [
      'mcp-e2e connect ws://server:8765 --peer 3f2a91bc...(the server\'s 64-hex-digit node id)',
      'mcp-e2e connect ws://server:8765 --peer work-server --reconnect',
      'mcp-e2e connect work-server',
    ],
  },
  {
    name: 'discover',
    summary: 'list the mcp-e2e nodes the local network offers now (mDNS, like avahi-browse)',
    synopsis: '[--timeout S]',
    options: { timeout: true },
    positionals: [0, 0],
    description: [
      'Each node is marked new, discovered, verified, trusted or blocked by what this node knows of it. Stores and trusts nothing: a name heard here is a claim; pin the node id (peers allow NODE_ID NAME) to use it.',
    ],
    examples: ['mcp-e2e discover', 'mcp-e2e discover --timeout 10 --json'],
  },
];
