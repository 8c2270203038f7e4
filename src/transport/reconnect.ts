/**
 * Opt-in reconnection for clients: establish a client transport, retrying
 * with exponential backoff and jitter while the failure is transient.
 *
 * Every attempt is a brand-new transport, hence a brand-new handshake with
 * fresh ephemeral keys, randoms and session id (PROTOCOL.md §5.3). Nothing
 * of an earlier session (keys, counters, epoch) is ever resumed: there is no
 * resumption in the protocol, and `connectWithRetry` refuses a factory that
 * hands back a transport it has seen before.
 *
 * The MCP SDK's `Client` cannot survive a transport swap in the middle of a
 * session (a new connection reaches a new server-side `McpServer`, which
 * needs `initialize` again), so this helper only (re)establishes the link.
 * What to do with MCP state is the caller's business; `mcp-e2e connect
 * --reconnect` replays the client's `initialize` (src/cli/connect.ts).
 *
 * Authentication and trust failures are never retried: a changed server key
 * (`ERR_PEER_KEY_CHANGED`) or a refused identity needs a person, and a bad
 * signature means someone is in the way.
 */
import { isMcpE2eError, McpE2eError, type ErrorCode } from '../errors.js';

/** Options of `connectWithRetry`. Every one has a default. */
export interface ReconnectOptions {
  /** Delay before the second attempt, ms. Default 500. */
  initialDelayMs?: number;
  /** Largest delay between attempts, ms. Default 30,000. */
  maxDelayMs?: number;
  /** Growth of the delay per failed attempt. Default 2. */
  multiplier?: number;
  /** Attempts in all, the first included; `Infinity` retries until aborted. Default 10. */
  maxAttempts?: number;
  /**
   * Fraction of each delay that is random, 0..1: the delay is drawn
   * uniformly from [d × (1 − jitter), d], so clients that lost the same
   * server do not come back in lockstep. 1 is "full jitter". Default 0.5.
   */
  jitter?: number;
  /** Which failures are worth another attempt. Default `isRetryableError`. */
  retryOn?: (error: unknown) => boolean;
  /** Stop retrying (the pending attempt is closed); `connectWithRetry` rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Called after each failed attempt that will be retried, before the wait. */
  onRetry?: (info: { attempt: number; delayMs: number; error: unknown }) => void;
}

/** Options of `connectWithRetry`: the retry policy, and how one attempt starts its transport. */
export interface ConnectWithRetryOptions<T> extends ReconnectOptions {
  /**
   * Start one attempt's transport. Default `(t) => t.start()`. With the MCP
   * SDK, whose `Client.connect()` calls `start()` itself, connect a fresh
   * client here: `start: async (t) => { client = new Client(info); await client.connect(t); }`.
   */
  start?: (transport: T) => Promise<void>;
}

/** The defaults of `ReconnectOptions`. */
export const DEFAULT_RECONNECT = Object.freeze({
  initialDelayMs: 500,
  maxDelayMs: 30_000,
  multiplier: 2,
  maxAttempts: 10,
  jitter: 0.5,
});

/** Codes that say "the link or the server is (temporarily) not there", not "this peer is wrong". */
const RETRYABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'ERR_CONNECT_FAILED',
  'ERR_CONNECTION_CLOSED',
  'ERR_SESSION_TRUNCATED',
  'ERR_HANDSHAKE_TIMEOUT',
  'ERR_IDLE_TIMEOUT',
  'ERR_LIMIT_REACHED',
]);

/**
 * True for transient failures: `ERR_CONNECT_FAILED`, `ERR_CONNECTION_CLOSED`,
 * `ERR_SESSION_TRUNCATED`, `ERR_HANDSHAKE_TIMEOUT`, `ERR_IDLE_TIMEOUT`,
 * `ERR_LIMIT_REACHED`. False for everything else: handshake and trust
 * failures, protocol violations, and errors that are not McpE2eErrors
 * (programming mistakes). Only authenticated reasons and locally detected
 * failures carry those codes: a close frame that claims `ERR_PEER_REJECTED`
 * arrives as `ERR_CONNECTION_CLOSED` or `ERR_SESSION_TRUNCATED` (with the
 * claim as `peerCode`), so a forged close frame can delay a client, never
 * make it give up (PROTOCOL.md §9.1).
 */
export function isRetryableError(error: unknown): boolean {
  return isMcpE2eError(error) && RETRYABLE.has(error.code);
}

type Resolved = typeof DEFAULT_RECONNECT;

function resolve(options: ReconnectOptions): Resolved {
  const given = Object.entries(options).filter(([k, v]) => v !== undefined && k in DEFAULT_RECONNECT);
  const r = { ...DEFAULT_RECONNECT, ...Object.fromEntries(given) } as Resolved;
  const check = (ok: boolean, name: string, want: string) => {
    if (!ok) throw new RangeError(`"${name}" expected ${want}`);
  };
  for (const k of ['initialDelayMs', 'maxDelayMs', 'multiplier', 'maxAttempts', 'jitter'] as const) {
    if (typeof r[k] !== 'number' || Number.isNaN(r[k])) throw new TypeError(`"${k}" expected a number`);
  }
  check(Number.isInteger(r.initialDelayMs) && r.initialDelayMs >= 0 && r.initialDelayMs <= 2 ** 31 - 1, 'initialDelayMs', 'an integer 0..2^31-1');
  check(Number.isInteger(r.maxDelayMs) && r.maxDelayMs >= r.initialDelayMs && r.maxDelayMs <= 2 ** 31 - 1, 'maxDelayMs', 'an integer from initialDelayMs to 2^31-1');
  check(r.multiplier >= 1 && Number.isFinite(r.multiplier), 'multiplier', 'a finite number >= 1');
  check((Number.isInteger(r.maxAttempts) && r.maxAttempts >= 1) || r.maxAttempts === Infinity, 'maxAttempts', 'an integer >= 1 or Infinity');
  check(r.jitter >= 0 && r.jitter <= 1, 'jitter', 'a number 0..1');
  return r;
}

/**
 * The wait after failed attempt number `attempt` (1 for the first), ms:
 * `min(maxDelayMs, initialDelayMs × multiplier^(attempt−1))`, minus a random
 * share of up to `jitter` of it.
 * @param random a uniform number in [0, 1); default `Math.random`.
 * @throws RangeError / TypeError for bad options.
 */
export function backoffDelay(attempt: number, options: ReconnectOptions = {}, random: () => number = Math.random): number {
  const r = resolve(options);
  const base = Math.min(r.maxDelayMs, r.initialDelayMs * r.multiplier ** Math.max(0, attempt - 1));
  return Math.round(base * (1 - r.jitter * random()));
}

function aborted(signal: AbortSignal): unknown {
  return signal.reason ?? new McpE2eError('ERR_CONNECTION_CLOSED', 'reconnection aborted');
}

function wait(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolveWait, reject) => {
    if (signal?.aborted) return reject(aborted(signal));
    const onAbort = () => {
      clearTimeout(timer);
      reject(aborted(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolveWait();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Create and start a transport, retrying transient failures with
 * exponential backoff and jitter. `create` must return a new, unstarted
 * transport on every call (e.g. `() => new EncryptedWebSocketClientTransport(url, options)`).
 *
 * Resolves with the first transport whose start resolved. Note that a
 * server refusing *our* identity says so only after the handshake (the
 * client's identity travels in its last message): that refusal reaches the
 * returned transport's `onerror` (`ERR_PEER_REJECTED`) and `onclose`.
 *
 * @throws the last attempt's error when it is not retryable or the attempts
 *   are used up; the signal's reason when aborted; TypeError when `create`
 *   returns a transport it returned before; RangeError for bad options.
 */
export async function connectWithRetry<T extends { start(): Promise<void>; close(): Promise<void> }>(
  create: (attempt: number) => T,
  options: ConnectWithRetryOptions<T> = {},
): Promise<T> {
  const r = resolve(options);
  const start = options.start ?? ((t: T) => t.start());
  const retryOn = options.retryOn ?? isRetryableError;
  const signal = options.signal;
  const seen = new WeakSet<object>();
  for (let attempt = 1; ; attempt++) {
    if (signal?.aborted) throw aborted(signal);
    const transport = create(attempt);
    if (typeof transport !== 'object' || transport === null || seen.has(transport)) {
      throw new TypeError('"create" expected to return a new transport on every attempt (a session is never resumed)');
    }
    seen.add(transport);
    const onAbort = () => void transport.close().catch(() => {});
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await start(transport);
      if (signal?.aborted) {
        await transport.close().catch(() => {});
        throw aborted(signal);
      }
      return transport;
    } catch (error) {
      // Normally closed already by the failed start; make sure nothing of this attempt lingers.
      await transport.close().catch(() => {});
      if (signal?.aborted) throw aborted(signal);
      if (attempt >= r.maxAttempts || !retryOn(error)) throw error;
      const delayMs = backoffDelay(attempt, r);
      options.onRetry?.({ attempt, delayMs, error });
      await wait(delayMs, signal);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }
}
