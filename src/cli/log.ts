/**
 * Logging for the CLI: everything goes to stderr (stdout carries protocol
 * data in `connect`). Readable lines by default, one JSON object per line
 * with `--json`, debug lines only with `--verbose`. Callers never pass key
 * material; peers are logged by node id and fingerprint only.
 */
import { escapeControlCharacters } from '../util/text.js';

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

/** DEL and C1 controls, which JSON.stringify leaves as they are (it escapes C0 only). */
const JSON_UNESCAPED_CONTROLS = /[\u007f-\u009f]/g;

export function createLogger(opts: LoggerOptions = {}, base: Record<string, unknown> = {}): Logger {
  const write = opts.write ?? ((line: string) => void process.stderr.write(line + '\n'));
  // Messages and fields carry text a peer or a child controls (a child's
  // stderr, an error message quoting a peer's value): every control
  // character is escaped, so nothing logged can move the cursor, erase a
  // line or retitle the operator's terminal, or forge a log line.
  const emit = (level: Level, msg: string, fields: Record<string, unknown> = {}) => {
    if (level === 'debug' && !opts.verbose) return;
    const all = { ...base, ...fields };
    if (opts.json) {
      const line = JSON.stringify({ time: new Date().toISOString(), level, msg, ...all });
      write(line.replace(JSON_UNESCAPED_CONTROLS, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
      return;
    }
    const extra = Object.entries(all)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    const tag = level === 'info' ? '' : `${level}: `;
    write(escapeControlCharacters(`mcp-e2e: ${tag}${msg}${extra ? ` (${extra})` : ''}`));
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger(opts, { ...base, ...fields }),
  };
}

/** Options of `summarizing`. */
export interface SummaryOptions {
  /** Lines logged one by one per interval; beyond, they are counted. */
  burst: number;
  /** Length of an interval, ms. */
  intervalMs: number;
  /** What is counted, for the summary line ("connections refused"). */
  what: string;
}

/**
 * A log call for events a stranger can cause at will (a refused
 * connection): the first `burst` of an interval are logged as they come,
 * the rest are counted and told in one summary line when the interval ends
 * ("950 more connections refused in the last 10 s: ERR_LIMIT_REACHED 948,
 * ERR_HANDSHAKE_TIMEOUT 2"), so a flood costs a few lines, not one each.
 */
export function summarizing(log: Logger, options: SummaryOptions): (level: Level, msg: string, fields?: Record<string, unknown>) => void {
  let windowEnd = 0;
  let logged = 0;
  let suppressed = 0;
  let byCode = new Map<string, number>();
  let timer: NodeJS.Timeout | undefined;
  const flush = (): void => {
    timer = undefined;
    if (suppressed === 0) return;
    const codes = [...byCode].map(([code, n]) => `${code} ${n}`).join(', ');
    log.warn(`${suppressed} more ${options.what} in the last ${options.intervalMs / 1000} s, not logged one by one${codes ? `: ${codes}` : ''}`, { suppressed });
    suppressed = 0;
    byCode = new Map();
  };
  return (level, msg, fields) => {
    const now = Date.now();
    if (now >= windowEnd) {
      windowEnd = now + options.intervalMs;
      logged = 0;
    }
    if (logged < options.burst) {
      logged++;
      log[level](msg, fields);
      return;
    }
    suppressed++;
    const code = typeof fields?.code === 'string' ? fields.code : 'other';
    byCode.set(code, (byCode.get(code) ?? 0) + 1);
    if (!timer) {
      timer = setTimeout(flush, Math.max(1, windowEnd - now));
      timer.unref();
    }
  };
}
