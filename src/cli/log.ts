/**
 * Logging for the CLI: everything goes to stderr (stdout carries protocol
 * data in `connect`). Readable lines by default, one JSON object per line
 * with `--json`, debug lines only with `--verbose`. Callers never pass key
 * material; peers are logged by node id and fingerprint only.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** A logger whose lines carry extra fields (e.g. a connection id). */
  child(fields: Record<string, unknown>): Logger;
}

export interface LoggerOptions {
  json?: boolean;
  verbose?: boolean;
  write?: (line: string) => void;
}

export function createLogger(opts: LoggerOptions = {}, base: Record<string, unknown> = {}): Logger {
  const write = opts.write ?? ((line: string) => void process.stderr.write(line + '\n'));
  const emit = (level: Level, msg: string, fields: Record<string, unknown> = {}) => {
    if (level === 'debug' && !opts.verbose) return;
    const all = { ...base, ...fields };
    if (opts.json) {
      write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...all }));
      return;
    }
    const extra = Object.entries(all)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    const tag = level === 'info' ? '' : `${level}: `;
    write(`mcp-e2e: ${tag}${msg}${extra ? ` (${extra})` : ''}`);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger(opts, { ...base, ...fields }),
  };
}
