/**
 * The command line's grammar, driven by a table (src/cli/commands.ts): every
 * option once (its type, value name and help), every command with the
 * options it takes, its synopsis and examples. Parsing, `--help` and the
 * did-you-mean suggestions all come from that table, so a new command or
 * option is one entry there and nothing here.
 *
 * Rules: `--name VALUE`, `--name=VALUE`, the short forms the table gives
 * (`-h`, `-V`, `-v`); global options anywhere, command options after the
 * command. Nothing is abbreviated: `--rec` is refused with a suggestion,
 * never read as `--reconnect`, so what runs is what was written. Everything
 * after the first `--` belongs to the command that takes one (`serve`).
 * The options named `help` and `version` skip the argument checks.
 */
import { UsageError } from './usage.js';

export interface OptionSpec {
  type: 'boolean' | 'string';
  /** May be given more than once (values collected in order). */
  multiple?: boolean;
  /** One-letter form, e.g. `h` for `-h`. */
  short?: string;
  /** Name of the value in help, e.g. `MS`. */
  value?: string;
  /** One line of help (commands may say it their own way). */
  help: string;
  /** Never a default from the config file (src/cli/config.ts), with the reason why, e.g. for --force. */
  commandLineOnly?: string;
}

export interface CommandSpec {
  name: string;
  /** One line for the list of commands. */
  summary: string;
  /** What follows `mcp-e2e NAME` in the synopsis, e.g. `URL [options]`. */
  synopsis: string;
  /** Names of the options this command takes (besides the global ones), with their help here when it differs. */
  options: Readonly<Record<string, string | true>>;
  /** Positional arguments: how many (inclusive bounds). */
  positionals: readonly [min: number, max: number];
  /** The command runs another program given after `--` (serve); a word where an option was expected is then a forgotten `--`. */
  trailing?: boolean;
  /** Paragraphs of `mcp-e2e NAME --help`. */
  description: readonly string[];
  examples: readonly string[];
}

export type OptionTable = Readonly<Record<string, OptionSpec>>;
export type OptionValue = string | boolean | string[];

export interface ParsedArgs {
  /** The command, or undefined when none was given. */
  command: CommandSpec | undefined;
  /** Options given on the command line (long names), and only those. */
  values: Record<string, OptionValue>;
  positionals: string[];
  /** Words after the first `--`. */
  trailing: string[];
}

/** Edit distance with transpositions (optimal string alignment), for suggestions. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** The closest of `candidates` to `word`, if it is close enough to be what was meant. */
export function didYouMean(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  const limit = word.length <= 4 ? 1 : 2;
  for (const c of candidates) {
    // Within the limit only if the lengths are (a 64 KiB key in a config file is not compared letter by letter).
    if (Math.abs(c.length - word.length) > limit && !(c.startsWith(word) && word.length >= 3)) continue;
    // A prefix ("--rec") is a strong hint, but it is only suggested, never taken.
    const d = c.startsWith(word) && word.length >= 3 ? 0.5 : editDistance(word, c);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return bestDistance <= limit ? best : undefined;
}

/** A word as it would be typed in a POSIX shell (for corrected command lines in messages). */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * Parse `argv` (without the program name) against the table.
 * @throws UsageError for an unknown command or option (with a suggestion),
 *   an option of another command, a missing or unexpected value, an option
 *   given twice, a wrong number of arguments, or words where `--` was
 *   forgotten.
 */
export function parseArgs(argv: readonly string[], options: OptionTable, global: readonly string[], commands: readonly CommandSpec[]): ParsedArgs {
  const dd = argv.indexOf('--');
  const own = dd >= 0 ? argv.slice(0, dd) : [...argv];
  const trailing = dd >= 0 ? argv.slice(dd + 1) : [];
  const values: Record<string, OptionValue> = {};
  const positionals: string[] = [];
  let command: CommandSpec | undefined;
  const byName = new Map(commands.map((c) => [c.name, c]));
  const shorts = new Map(Object.entries(options).flatMap(([name, o]) => (o.short ? [[o.short, name] as const] : [])));
  const applies = (name: string) => global.includes(name) || (command !== undefined && Object.hasOwn(command.options, name));
  const where = () => (command ? ` (see mcp-e2e ${command.name} --help)` : ' (see mcp-e2e --help)');

  const unknownOption = (token: string, name: string): UsageError => {
    const here = [...global, ...(command ? Object.keys(command.options) : [])];
    const near = didYouMean(name, here);
    if (near) return new UsageError(`unknown option ${token} (did you mean --${near}?)${where()}`);
    // Close to an option of another command: name it and its command.
    const elsewhere = didYouMean(name, Object.keys(options).filter((o) => commands.some((c) => Object.hasOwn(c.options, o))));
    if (elsewhere && elsewhere !== name) {
      const of = commands.filter((c) => Object.hasOwn(c.options, elsewhere)).map((c) => c.name).join(', ');
      return new UsageError(`unknown option ${token} (--${elsewhere} is an option of ${of}${command ? `, not of ${command.name}` : ''})${where()}`);
    }
    const owners = commands.filter((c) => Object.hasOwn(c.options, name)).map((c) => c.name);
    if (owners.length && command) return new UsageError(`${token} does not apply to ${command.name}; it is an option of ${owners.join(', ')}${where()}`);
    if (owners.length) return new UsageError(`${token} is an option of ${owners.join(', ')}; it goes after the command, e.g. mcp-e2e ${owners[0]} ${token}${where()}`);
    return new UsageError(`unknown option ${token}${where()}`);
  };

  const set = (name: string, value: string | boolean) => {
    const spec = options[name]!;
    if (spec.multiple) {
      ((values[name] ??= []) as string[]).push(value as string);
      return;
    }
    if (name in values) throw new UsageError(`--${name} is given twice; give it once${where()}`);
    values[name] = value;
  };

  for (let i = 0; i < own.length; i++) {
    const token = own[i]!;
    if (token.startsWith('-') && token !== '-') {
      let name: string;
      let inline: string | undefined;
      if (token.startsWith('--')) {
        const eq = token.indexOf('=');
        name = eq >= 0 ? token.slice(2, eq) : token.slice(2);
        inline = eq >= 0 ? token.slice(eq + 1) : undefined;
      } else {
        const long = token.length === 2 ? shorts.get(token[1]!) : undefined;
        if (!long) throw unknownOption(token, token.replace(/^-+/, ''));
        name = long;
      }
      const spec = options[name];
      if (!spec || !applies(name)) throw unknownOption(token.startsWith('--') ? `--${name}` : token, name);
      if (spec.type === 'boolean') {
        if (inline !== undefined) throw new UsageError(`--${name} takes no value${where()}`);
        set(name, true);
        continue;
      }
      let value = inline;
      if (value === undefined) {
        const next = own[i + 1];
        if (next === undefined || next.startsWith('--')) throw new UsageError(`--${name} needs a value: --${name} ${spec.value ?? 'VALUE'}${where()}`);
        value = next;
        i++;
      }
      set(name, value);
      continue;
    }
    if (!command) {
      command = byName.get(token);
      if (!command) {
        const near = didYouMean(token, byName.keys());
        throw new UsageError(`unknown command "${token}"${near ? ` (did you mean ${near}?)` : ''} (see mcp-e2e --help)`);
      }
      // Options given before the command must be global.
      for (const name of Object.keys(values)) if (!applies(name)) throw unknownOption(`--${name}`, name);
      continue;
    }
    if (command.trailing) {
      // `serve npx -y pkg`: the server's command without `--`. Say how to write it.
      const before = own.slice(0, i);
      const fixed = ['mcp-e2e', ...before, '--', ...own.slice(i), ...(dd >= 0 ? ['--', ...trailing] : [])].map(shellQuote).join(' ');
      throw new UsageError(`${command.name} takes the MCP server's command after --: ${fixed}`);
    }
    positionals.push(token);
  }
  // `--help` and `--version` answer whatever else the line says.
  if (command && !values.help && !values.version) {
    const [min, max] = command.positionals;
    if (positionals.length < min || positionals.length > max) {
      throw new UsageError(`usage: mcp-e2e ${command.name} ${command.synopsis}${where()}`);
    }
    if (!command.trailing && trailing.length > 0) throw new UsageError(`${command.name} takes no command after --${where()}`);
  }
  return { command, values, positionals, trailing };
}

const wrap = (text: string, width: number, indent: string): string[] => {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines.map((l, i) => (i === 0 ? l : indent + l));
};

function optionLines(names: readonly string[], options: OptionTable, help: Readonly<Record<string, string | true>> = {}): string[] {
  const col = 30;
  return names.map((name) => {
    const o = options[name]!;
    const flag = `${o.short ? `-${o.short}, ` : ''}--${name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`;
    const text = typeof help[name] === 'string' ? (help[name] as string) : o.help;
    const head = `  ${flag}`;
    const body = wrap(text, 96 - col, ' '.repeat(col));
    return head.length + 2 > col ? `${head}\n${' '.repeat(col)}${body.join('\n')}` : `${head.padEnd(col)}${body.join('\n')}`;
  });
}

/** `mcp-e2e --help`: every command with its options, then the global options. */
export function renderUsage(options: OptionTable, global: readonly string[], commands: readonly CommandSpec[]): string {
  const out = ['usage: mcp-e2e <command> [options]', '', 'Commands:'];
  for (const c of commands) {
    out.push(`  mcp-e2e ${c.name} ${c.synopsis}`.trimEnd());
    out.push(`      ${c.summary}`);
    const names = Object.keys(c.options);
    if (names.length) out.push(...optionLines(names, options, c.options).map((l) => `  ${l.replace(/\n/g, '\n  ')}`));
  }
  out.push('', 'Options for every command:', ...optionLines(global, options));
  out.push('', 'mcp-e2e COMMAND --help shows a command\'s help with examples.', '');
  return out.join('\n');
}

/** `mcp-e2e COMMAND --help`: synopsis, description, options (then `notes` on them, paragraphs), examples. */
export function renderCommandHelp(command: CommandSpec, options: OptionTable, global: readonly string[], notes: readonly string[] = []): string {
  const out = [`usage: mcp-e2e ${command.name} ${command.synopsis}`.trimEnd(), ''];
  for (const p of [command.summary, ...command.description]) out.push(...wrap(p, 78, ''), '');
  const names = Object.keys(command.options);
  if (names.length) out.push('Options:', ...optionLines(names, options, command.options), '');
  for (const p of notes) out.push(...wrap(p, 78, ''), '');
  out.push('Options for every command:', ...optionLines(global, options), '');
  if (command.examples.length) out.push('Examples:', ...command.examples.map((e) => `  ${e}`), '');
  return out.join('\n');
}
