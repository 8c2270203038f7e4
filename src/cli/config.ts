/**
 * The config file: defaults for the options people otherwise repeat on
 * every command line. `HOME/config.json` (or `--config FILE`; `--no-config`
 * reads none) holds one object per command, whose keys are that command's
 * long option names as in the table (src/cli/commands.ts):
 *
 *   { "serve": { "port": 8765, "announce": true, "bootstrap": ["ws://hub:8765#ID"] },
 *     "connect": { "reconnect": true } }
 *
 * Rules: the command line always wins (a repeatable option given there
 * replaces the file's list); `true` sets a boolean option, `false` is the
 * same as leaving it out; a string option takes a string or a number (read
 * as its decimal text); a repeatable option takes an array of those.
 * Everything in the file is checked before anything runs, every section
 * and not only the running command's: an unknown command or option (with
 * the did-you-mean of the command line's parser), a global option (`--home`
 * cannot come from a file inside the home), an option marked
 * `commandLineOnly` (`--force`) or a value of the wrong type is refused in
 * one line naming the file, the section and the key.
 *
 * The file can turn on `--allow-any-peer` or name a `--bootstrap` peer, so
 * it is read as the trust files are (src/util/files.ts): another user must
 * not be able to write it or its directory, and it is at most
 * MAX_CONFIG_FILE_BYTES. JSON, not TOML: Node parses it with no dependency,
 * and the positions of mistakes come from src/util/json.ts.
 */
import { resolve } from 'node:path';
import { readTrustedFile } from '../util/files.js';
import { findJsonSyntaxError, quoteForMessage } from '../util/json.js';
import { didYouMean, type OptionSpec, type OptionValue } from './args.js';
import { COMMANDS, GLOBAL_OPTIONS, OPTIONS, type Values } from './commands.js';
import { UsageError } from './usage.js';

/** Largest config file read, bytes (checked before reading it). */
export const MAX_CONFIG_FILE_BYTES = 64 * 1024;

/** Option defaults by command name, then by long option name, checked against the table. */
export type ConfigDefaults = Record<string, Record<string, OptionValue>>;

/** A value from the file as a message shows it: short, and without control characters. */
function show(v: unknown): string {
  if (typeof v === 'string') return quoteForMessage(v);
  if (Array.isArray(v)) return 'an array';
  if (v !== null && typeof v === 'object') return 'an object';
  return String(v);
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** One option's value from the file, or undefined when it sets nothing (`false`, `[]`). */
function optionValue(v: unknown, name: string, spec: OptionSpec, fail: (why: string) => never): OptionValue | undefined {
  if (spec.type === 'boolean') {
    if (typeof v !== 'boolean') fail(`must be true or false (--${name} takes no value), not ${show(v)}`);
    return v || undefined;
  }
  const text = (x: unknown) => (typeof x === 'string' ? x : typeof x === 'number' ? String(x) : undefined);
  const flag = `--${name} ${spec.value ?? 'VALUE'}`;
  if (spec.multiple) {
    if (!Array.isArray(v)) fail(`must be an array of strings (${flag} is repeatable), not ${show(v)}`);
    const list = (v as unknown[]).map((x) => text(x) ?? fail(`must be an array of strings (${flag} is repeatable), not an array holding ${show(x)}`));
    return list.length ? list : undefined;
  }
  return text(v) ?? fail(`must be a string or a number (${flag}), not ${show(v)}${Array.isArray(v) ? `: --${name} is given once` : ''}`);
}

/**
 * Check a config file's text against the command table.
 * @param path the file, for messages.
 * @throws UsageError (one line, naming `path`) for text that is not JSON
 *   (with line and column), a top level that is not an object, an unknown
 *   command or option, one that cannot come from a file, or a wrong type.
 */
export function parseConfig(text: string, path: string): ConfigDefaults {
  const syntax = findJsonSyntaxError(text);
  if (syntax) throw new UsageError(`config file ${path} is not valid JSON: line ${syntax.line}, column ${syntax.column}: ${syntax.reason}`);
  const doc: unknown = JSON.parse(text);
  const file = `config file ${path}`;
  if (!isObject(doc)) throw new UsageError(`${file} must be an object with one object per command, e.g. {"serve": {"port": 8765}}, not ${show(doc)}`);
  const out: ConfigDefaults = {};
  for (const [section, options] of Object.entries(doc)) {
    const command = COMMANDS.find((c) => c.name === section);
    if (!command) {
      const near = didYouMean(section, COMMANDS.map((c) => c.name));
      throw new UsageError(`${file}: ${quoteForMessage(section)} is not a command${near ? ` (did you mean "${near}"?)` : ''}; the file has one object per command, e.g. {"serve": {"port": 8765}}`);
    }
    if (!isObject(options)) throw new UsageError(`${file}: "${section}" must be an object of option defaults, e.g. {"${section}": {}}, not ${show(options)}`);
    const defaults: Record<string, OptionValue> = {};
    for (const [key, v] of Object.entries(options)) {
      const at = `${file}: ${quoteForMessage(key)} in "${section}"`;
      if ((GLOBAL_OPTIONS as readonly string[]).includes(key)) {
        throw new UsageError(
          key === 'home'
            ? `${at} cannot be set in a config file: the file is read from the home; give --home on the command line (or MCP_E2E_HOME)`
            : `${at} cannot be set in a config file: --${key} is an option of every command, for the command line`,
        );
      }
      if (!Object.hasOwn(command.options, key)) {
        const near = didYouMean(key, Object.keys(command.options));
        const owners = COMMANDS.filter((c) => Object.hasOwn(c.options, key)).map((c) => c.name);
        const hint = near ? ` (did you mean "${near}"?)` : owners.length ? ` (it is an option of ${owners.join(', ')})` : ` (see mcp-e2e ${section} --help)`;
        throw new UsageError(`${at} is not an option of ${section}${hint}`);
      }
      const spec = OPTIONS[key as keyof typeof OPTIONS] as OptionSpec;
      if (spec.commandLineOnly) throw new UsageError(`${at} cannot be set in a config file: ${spec.commandLineOnly}`);
      const value = optionValue(v, key, spec, (why) => {
        throw new UsageError(`${at} ${why}`);
      });
      if (value !== undefined) defaults[key] = value;
    }
    out[section] = defaults;
  }
  return out;
}

/**
 * Read and check the config file at `path`.
 * @param required the file was named (--config): a missing one is an error; otherwise it means no defaults.
 * @throws UsageError as parseConfig does, for text that is not UTF-8, or a
 *   missing file that was named; McpE2eError `ERR_FILE_PERMISSIONS` (another
 *   user could write it, as for the trust files) or `ERR_KEY_FILE_CORRUPT`
 *   (larger than MAX_CONFIG_FILE_BYTES).
 */
export function loadConfig(path: string, required: boolean): ConfigDefaults {
  const bytes = readTrustedFile(path, MAX_CONFIG_FILE_BYTES, 'config file');
  if (!bytes) {
    if (required) throw new UsageError(`--config ${path}: no such file`);
    return {};
  }
  let text: string;
  try {
    // fatal: a byte that is not UTF-8 is refused, not turned into U+FFFD; a BOM is skipped.
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new UsageError(`config file ${path} is not UTF-8 text`);
  }
  return parseConfig(text, path);
}

/** The config file's part in a run: which file, and the options it supplied. */
export interface AppliedConfig {
  path: string;
  /** Long names of the options whose values came from the file. */
  options: string[];
}

/**
 * The one place where the file meets the command line: fill `values` (as
 * parsed from it) with the defaults for `command` that it does not give.
 * `--config FILE` chooses the file (relative to the working directory),
 * `--no-config` skips it; `homeConfig` is HOME/config.json.
 * @returns the file and the options taken from it, or undefined with `--no-config`.
 * @throws as loadConfig does; UsageError when both --config and --no-config are given.
 */
export function applyConfig(values: Values, command: string, homeConfig: string): AppliedConfig | undefined {
  if (values.config !== undefined && values['no-config']) throw new UsageError('--config and --no-config contradict each other; give one');
  if (values['no-config']) return undefined;
  const path = values.config !== undefined ? resolve(values.config) : homeConfig;
  const defaults = loadConfig(path, values.config !== undefined)[command] ?? {};
  const target = values as Record<string, OptionValue>;
  const options = Object.keys(defaults).filter((name) => !(name in target));
  for (const name of options) target[name] = defaults[name]!;
  return { path, options };
}

/**
 * The paragraph `mcp-e2e COMMAND --help` adds about the file, or none for a
 * command with no option the file can set.
 */
export function configHelp(command: string): string[] {
  const spec = COMMANDS.find((c) => c.name === command);
  const name = Object.keys(spec?.options ?? {}).find((n) => !(OPTIONS[n as keyof typeof OPTIONS] as OptionSpec).commandLineOnly);
  if (!name) return [];
  const o = OPTIONS[name as keyof typeof OPTIONS] as OptionSpec;
  const example = o.type === 'boolean' ? 'true' : o.multiple ? `["${o.value ?? 'VALUE'}"]` : `"${o.value ?? 'VALUE'}"`;
  return [
    `Defaults for these options can be kept in HOME/config.json (or --config FILE), keyed by their long names, e.g. {"${command}": {"${name}": ${example}}}; the command line wins. See README, "Config file".`,
  ];
}

/**
 * `message` (a refusal of the command line) with a note naming the options
 * in it that came from the config file, so that a person looks there and
 * not at what they typed: `... (--port came from config file PATH)`.
 */
export function noteConfigOptions(message: string, applied: AppliedConfig | undefined): string {
  const named = (applied?.options ?? []).filter((name) => new RegExp(`--${name}(?![\\w-])`).test(message));
  if (!named.length) return message;
  return `${message} (${named.map((n) => `--${n}`).join(', ')} came from config file ${applied!.path})`;
}
