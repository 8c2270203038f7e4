/**
 * Defaults of the command line that differ from the library's or exist only
 * here (SECURITY.md lists them; test/adversarial/security-md.test.ts keeps
 * the two in step). Apart from serve.ts and connect.ts, which cannot be
 * imported without running the program.
 */

/**
 * `serve`: connections (and so server processes) at once, unless
 * `--max-connections` says otherwise: each one is a process, so far fewer
 * than the library's DEFAULT_MAX_CONNECTIONS.
 */
export const DEFAULT_SERVE_MAX_CONNECTIONS = 64;
/** `serve`: how often the allowlist file is checked for changes (ms); a revoked peer is cut off within about this long. */
export const ALLOWLIST_POLL_MS = 500;
/** `serve`: refused connections logged one by one per interval; beyond, one summary line per interval. */
export const REFUSALS_LOGGED_PER_INTERVAL = 20;
export const REFUSAL_LOG_INTERVAL_MS = 10_000;
/**
 * `connect` pings the server this often (ms) unless `--keepalive` says
 * otherwise: a link that dies silently (a NAT forgets it, a laptop sleeps)
 * is noticed within two intervals, and `--reconnect` can act on it.
 */
export const DEFAULT_CONNECT_KEEPALIVE_MS = 15_000;
