#!/usr/bin/env node
/**
 * mcp-e2e command-line program: identities, trust management, and the two
 * relays (`serve` puts a stdio MCP server behind an encrypted endpoint;
 * `connect` is a stdio MCP server for any MCP client that reaches one).
 * The grammar is the table in commands.ts; this file runs what it parsed.
 */
import { readFileSync } from 'node:fs';
import { McpE2eError } from '../errors.js';
import { NodeIdentity } from '../identity/identity.js';
import { checkDirectory } from '../util/files.js';
import { parseArgs, renderCommandHelp, renderUsage } from './args.js';
import { COMMANDS, GLOBAL_OPTIONS, OPTIONS, type Values } from './commands.js';
import { applyConfig, configHelp, noteConfigOptions, type AppliedConfig } from './config.js';
import { loadIdentity, resolveHome } from './home.js';
import { createLogger, type Logger } from './log.js';
import { peersCommand } from './peers.js';
import { answerStartupFailure } from './stdio.js';
import { runningServes } from './running.js';
import { UsageError } from './usage.js';

const out = (line: string) => void process.stdout.write(line + '\n');
/** What is printed for copying is the node id; the fingerprint is for people reading it to each other. */
const FINGERPRINT_NOTE = '(for comparing by voice; commands take the node id)';

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Commands whose logs are read later (the relays): their readable lines carry the time. */
const LONG_RUNNING = new Set(['serve', 'connect']);

/** Where fatal errors go: the command's logger once it exists, so that they look like every other line. */
let fatal: Logger = createLogger();
/** What the config file supplied, for naming it when one of its options is refused. */
let config: AppliedConfig | undefined;

async function main(argv: string[]): Promise<number> {
  const { command, values: parsed, positionals, trailing } = parseArgs(argv, OPTIONS, GLOBAL_OPTIONS, COMMANDS);
  const values = parsed as Values;
  const log = createLogger({ json: values.json ?? false, verbose: values.verbose ?? false, timestamps: command !== undefined && LONG_RUNNING.has(command.name) });
  fatal = log;
  if (values.version) {
    out(version());
    return 0;
  }
  if (values.help || !command) {
    process.stdout.write(command ? renderCommandHelp(command, OPTIONS, GLOBAL_OPTIONS, configHelp(command.name)) : renderUsage(OPTIONS, GLOBAL_OPTIONS, COMMANDS));
    return values.help ? 0 : 2;
  }
  const paths = resolveHome(values.home);
  // The identity and the trust files are only as safe as the directory that holds them.
  checkDirectory(paths.identity, 'identity and trust files');
  config = applyConfig(values, command.name, paths.config);
  if (config?.options.length) log.debug(`defaults from config file ${config.path}: ${config.options.map((n) => `--${n}`).join(' ')}`);

  switch (command.name) {
    case 'keygen': {
      const serves = values.force ? runningServes(paths.home) : [];
      if (serves.length) {
        throw new UsageError(`a serve of ${paths.home} is running (pid ${serves.join(', ')}) and would go on with the old identity: stop it, then run keygen --force again`);
      }
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
      else out(`node id ${id.nodeId}\nfingerprint ${id.fingerprint} ${FINGERPRINT_NOTE}\nsaved to ${paths.identity}`);
      return 0;
    }
    case 'id': {
      const id = loadIdentity(paths);
      out(values.json ? JSON.stringify(id.toJSON()) : `${id.nodeId}\nfingerprint ${id.fingerprint} ${FINGERPRINT_NOTE}`);
      return 0;
    }
    case 'scan': {
      const { scanCommand } = await import('./scan.js');
      await scanCommand(positionals[0]!, paths, out, values.json ?? false);
      return 0;
    }
    case 'peers':
      peersCommand(positionals, paths, out, values.json ?? false);
      return 0;
    case 'serve': {
      const { serveCommand } = await import('./serve.js');
      return serveCommand(values, trailing, paths, log);
    }
    case 'discover': {
      const { discoverCommand } = await import('./discover.js');
      return discoverCommand(values, paths, out, log);
    }
    case 'connect': {
      const { connectCommand } = await import('./connect.js');
      return connectCommand(values, positionals[0]!, paths, log);
    }
  }
  throw new Error(`no handler for the command ${command.name}`);
}

const argv = process.argv.slice(2);
main(argv).then(
  (code) => {
    // The relays are done once main resolves: exit even if a socket or timer
    // of a half-closed connection would keep the event loop alive.
    process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
  },
  async (err: unknown) => {
    let line: string;
    if (err instanceof UsageError) {
      line = noteConfigOptions(err.message, config);
      fatal.error(line);
      process.exitCode = 2;
    } else if (err instanceof McpE2eError) {
      line = err.message;
      fatal.error(line, { code: err.code });
      process.exitCode = 1;
    } else {
      line = `unexpected error: ${(err as Error)?.message ?? String(err)}`;
      fatal.error(`unexpected error: ${(err as Error)?.stack ?? String(err)}`);
      process.exitCode = 1;
    }
    // connect launched by an MCP client that hides stderr: its initialize gets the line too.
    if (argv.includes('connect')) await answerStartupFailure(`mcp-e2e: ${line}`);
  },
);
