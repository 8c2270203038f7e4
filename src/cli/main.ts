#!/usr/bin/env node
/**
 * mcp-e2e command-line program: identities, trust management, and the two
 * relays (`serve` puts a stdio MCP server behind an encrypted endpoint;
 * `connect` is a stdio MCP server for any MCP client that reaches one).
 */
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { McpE2eError } from '../errors.js';
import { NodeIdentity } from '../identity/identity.js';
import { checkDirectory } from '../util/files.js';
import { escapeControlCharacters } from '../util/text.js';
import { resolveHome, type HomePaths } from './home.js';
import { createLogger } from './log.js';
import { peersCommand } from './peers.js';
import { USAGE, UsageError } from './usage.js';

const OPTIONS = {
  home: { type: 'string' },
  json: { type: 'boolean' },
  verbose: { type: 'boolean', short: 'v' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
  force: { type: 'boolean' },
  host: { type: 'string' },
  port: { type: 'string' },
  allow: { type: 'string' },
  'allow-any-peer': { type: 'boolean' },
  'allow-plaintext': { type: 'boolean' },
  peer: { type: 'string' },
  plaintext: { type: 'boolean' },
  reconnect: { type: 'boolean' },
  keepalive: { type: 'string' },
  'allow-origin': { type: 'string', multiple: true },
  'clean-env': { type: 'boolean' },
  'pass-env': { type: 'string', multiple: true },
  'max-connections': { type: 'string' },
  'max-connections-per-peer': { type: 'string' },
  announce: { type: 'boolean' },
  name: { type: 'string' },
  'public-url': { type: 'string', multiple: true },
  bootstrap: { type: 'string', multiple: true },
  'bootstrap-tofu': { type: 'boolean' },
  'open-mesh': { type: 'boolean' },
  'mesh-target': { type: 'string' },
  'gossip-interval': { type: 'string' },
  'anti-entropy-interval': { type: 'string' },
  'status-interval': { type: 'string' },
  timeout: { type: 'string' },
  'no-mdns': { type: 'boolean' },
} as const;

const GLOBAL = ['home', 'json', 'verbose', 'help', 'version'];
const PER_COMMAND: Record<string, string[]> = {
  keygen: ['force'],
  id: [],
  peers: [],
  serve: ['host', 'port', 'allow', 'allow-any-peer', 'allow-plaintext', 'allow-origin', 'clean-env', 'pass-env', 'max-connections', 'max-connections-per-peer', 'announce', 'name', 'public-url', 'bootstrap', 'bootstrap-tofu', 'open-mesh', 'mesh-target', 'gossip-interval', 'anti-entropy-interval', 'status-interval', 'no-mdns'],
  connect: ['peer', 'plaintext', 'reconnect', 'keepalive', 'no-mdns'],
  discover: ['timeout'],
};

type Option = (typeof OPTIONS)[keyof typeof OPTIONS];
type ValueOf<O extends Option> = O extends { multiple: true } ? string[] : O['type'] extends 'string' ? string : boolean;
export type Values = { [K in keyof typeof OPTIONS]?: ValueOf<(typeof OPTIONS)[K]> };

const out = (line: string) => void process.stdout.write(line + '\n');

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Load the identity, or explain in one line how to create one. */
export function loadIdentity(paths: HomePaths): NodeIdentity {
  try {
    return NodeIdentity.load(paths.identity);
  } catch (err) {
    if (err instanceof McpE2eError && err.code === 'ERR_KEY_FILE_NOT_FOUND') {
      throw new UsageError(`no identity at ${paths.identity}; create one with: mcp-e2e keygen`);
    }
    throw err;
  }
}

async function main(argv: string[]): Promise<number> {
  const dd = argv.indexOf('--');
  const own = dd >= 0 ? argv.slice(0, dd) : argv;
  const command = dd >= 0 ? argv.slice(dd + 1) : [];
  let parsed;
  try {
    parsed = parseArgs({ args: own, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}; see mcp-e2e --help`);
  }
  const values = parsed.values as Values;
  const [name, ...positionals] = parsed.positionals;
  if (values.version) {
    out(version());
    return 0;
  }
  if (values.help || !name || name === 'help') {
    process.stdout.write(USAGE);
    return name || values.help ? 0 : 2;
  }
  const allowed = PER_COMMAND[name];
  if (!allowed) throw new UsageError(`unknown command "${name}"; see mcp-e2e --help`);
  for (const key of Object.keys(values)) {
    if (!GLOBAL.includes(key) && !allowed.includes(key)) throw new UsageError(`--${key} does not apply to "${name}"; see mcp-e2e --help`);
  }
  if (name !== 'serve' && command.length > 0) throw new UsageError(`"${name}" takes no command after --`);
  const paths = resolveHome(values.home);
  // The identity and the trust files are only as safe as the directory that holds them.
  checkDirectory(paths.identity, 'identity and trust files');
  const log = createLogger({ json: values.json ?? false, verbose: values.verbose ?? false });

  switch (name) {
    case 'keygen': {
      if (positionals.length) throw new UsageError('keygen takes no arguments');
      const id = NodeIdentity.generate();
      try {
        id.save(paths.identity, { overwrite: values.force ?? false });
      } catch (err) {
        if (err instanceof McpE2eError && err.code === 'ERR_KEY_FILE_EXISTS') {
          throw new UsageError(`an identity already exists at ${paths.identity}; use --force to replace it (the old identity is lost)`);
        }
        throw err;
      }
      if (values.json) out(JSON.stringify(id.toJSON()));
      else out(`created identity ${id.fingerprint}\nnode id ${id.nodeId}\nsaved to ${paths.identity}`);
      return 0;
    }
    case 'id': {
      if (positionals.length) throw new UsageError('id takes no arguments');
      const id = loadIdentity(paths);
      out(values.json ? JSON.stringify(id.toJSON()) : `${id.nodeId}\nfingerprint ${id.fingerprint}`);
      return 0;
    }
    case 'peers':
      peersCommand(positionals, paths, out, values.json ?? false);
      return 0;
    case 'serve': {
      if (positionals.length) throw new UsageError('serve takes its server command after --, e.g. mcp-e2e serve -- node server.js');
      const { serveCommand } = await import('./serve.js');
      return serveCommand(values, command, paths, log);
    }
    case 'discover': {
      if (positionals.length) throw new UsageError('discover takes no arguments; see mcp-e2e --help');
      const { discoverCommand } = await import('./discover.js');
      return discoverCommand(values, paths, out, log);
    }
    case 'connect': {
      if (positionals.length !== 1) throw new UsageError('usage: mcp-e2e connect URL [--peer NODE_ID] | NODE_ID | NAME');
      const { connectCommand } = await import('./connect.js');
      return connectCommand(values, positionals[0]!, paths, log);
    }
  }
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    // The relays are done once main resolves: exit even if a socket or timer
    // of a half-closed connection would keep the event loop alive.
    process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`mcp-e2e: ${escapeControlCharacters(err.message)}\n`);
      process.exitCode = 2;
    } else if (err instanceof McpE2eError) {
      process.stderr.write(`mcp-e2e: ${escapeControlCharacters(err.message)} [${err.code}]\n`);
      process.exitCode = 1;
    } else {
      process.stderr.write(`mcp-e2e: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
      process.exitCode = 1;
    }
  },
);
