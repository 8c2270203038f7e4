/**
 * A stdio MCP server run as a child process of `serve`: one per connection.
 * Its stdout carries JSON-RPC lines, its stderr goes to our log (prefixed,
 * control characters escaped by the logger), and it is always reaped with
 * everything it started.
 *
 * No orphans, and exactly how far that goes (POSIX):
 * - Each child is started in a process group of its own (`detached`, i.e.
 *   setsid), and every signal goes to the group: `npx` and the server it
 *   starts, or `sh -c` and its commands, stop together. Stopping is: stdin
 *   closed, SIGTERM to the group, SIGKILL to the group after the grace
 *   period. When the child exits by itself, what is left of its group gets
 *   the same treatment.
 * - If `serve` is killed outright (SIGKILL, no cleanup possible), a watchdog
 *   (a few lines of `sh`, one per `serve`, told of every group) sees its
 *   stdin close, sends SIGTERM to each group still alive and SIGKILL after
 *   the grace period. On Linux the direct child is also started under
 *   util-linux `setpriv --pdeathsig KILL`, so the kernel kills it even if
 *   the watchdog is killed too.
 * - Not covered: a process that leaves its group (setsid, a daemon that
 *   double-forks) and, if the watchdog is killed along with `serve`, the
 *   grandchildren. On Windows there are no process groups: the direct child
 *   is killed, its own children are not.
 *
 * The child's environment: mcp-e2e's own variables (`MCP_E2E_*`) are never
 * passed on; `cleanEnvironment` keeps only what programs need to run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import type { Logger } from './log.js';
import { LineSplitter, parseJsonLine } from './stdio.js';

/** How long a child gets between SIGTERM and SIGKILL (ms). */
export const CHILD_GRACE_MS = 3000;
/** How long to wait for a killed group to disappear before giving up on it (ms). */
const GROUP_GONE_MS = 2000;
const POSIX = process.platform !== 'win32';

export interface ChildServer {
  readonly pid: number | undefined;
  /** The child's stdin: one JSON-RPC message per line (see `writeLine` in relay.ts). */
  readonly stdin: Writable;
  /** The child's stdout, to pause while the connection cannot take more. */
  readonly stdout: Readable;
  /** Stop the child and its process group; resolves once the group is gone (or could not be made to go). Safe to call repeatedly. */
  terminate(): Promise<void>;
  /** Resolves with the exit description once the child itself has exited. */
  readonly exited: Promise<string>;
}

/** Options of `spawnChild`. */
export interface SpawnOptions {
  /** Longest stdout line accepted (bytes); longer ones are dropped and reported. */
  maxLineBytes: number;
  /** The child's environment (see `childEnvironment`). */
  env: NodeJS.ProcessEnv;
  /** SIGTERM → SIGKILL grace, ms. Default CHILD_GRACE_MS. */
  graceMs?: number;
}

/** What a program needs from the environment to run at all (and find `npx` and its cache). */
const CLEAN_ENVIRONMENT = ['PATH', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'LANG', 'LC_ALL', 'LC_CTYPE', 'TZ', 'TMPDIR', 'SystemRoot', 'PATHEXT', 'ComSpec', 'TEMP', 'TMP', 'USERPROFILE', 'APPDATA', 'LOCALAPPDATA'];

/**
 * The environment of a child: ours without mcp-e2e's own variables
 * (`MCP_E2E_*`), or with `clean`, only CLEAN_ENVIRONMENT and the variables
 * named in `pass`.
 */
export function childEnvironment(env: NodeJS.ProcessEnv, options: { clean?: boolean; pass?: string[] } = {}): NodeJS.ProcessEnv {
  const keep = new Set([...CLEAN_ENVIRONMENT, ...(options.pass ?? [])]);
  const out: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || name.toUpperCase().startsWith('MCP_E2E_')) continue;
    if (options.clean && !keep.has(name)) continue;
    out[name] = value;
  }
  return out;
}

/**
 * On Linux, children are started through `setpriv --pdeathsig KILL` so the
 * kernel kills them even if `serve` and its watchdog are killed with SIGKILL.
 */
const SETPRIV = '/usr/bin/setpriv';
const DEATH_SIGNAL_PREFIX = process.platform === 'linux' && existsSync(SETPRIV) ? [SETPRIV, '--pdeathsig', 'KILL', '--'] : [];

/**
 * The watchdog: reads `+PGID` / `-PGID` lines; on end of input (serve is
 * gone), SIGTERM to every group still listed, SIGKILL after the grace. It
 * ignores the signals a terminal or a group kill would send it, so only
 * its input ending stops it.
 */
function watchdogScript(graceMs: number): string {
  return `trap '' INT TERM HUP
live=' '
while IFS= read -r line; do
  g=\${line#?}
  case $g in ''|*[!0-9]*) continue ;; esac
  case $line in
    +*) live="$live$g " ;;
    -*) next=' '; for x in $live; do [ "$x" = "$g" ] || next="$next$x "; done; live=$next ;;
  esac
done
[ "$live" = ' ' ] && exit 0
for g in $live; do kill -TERM "-$g" 2>/dev/null; done
sleep ${Math.ceil(graceMs / 1000)}
for g in $live; do kill -KILL "-$g" 2>/dev/null; done
exit 0
`;
}

let watchdog: ChildProcess | undefined;

/** Tell the watchdog (started on first use) that process group `pgid` now exists (`+`) or is gone (`-`). */
function tellWatchdog(sign: '+' | '-', pgid: number, graceMs: number): void {
  if (!POSIX) return;
  if (!watchdog) {
    watchdog = spawn('/bin/sh', ['-c', watchdogScript(graceMs)], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
    watchdog.on('error', () => {});
    watchdog.stdin!.on('error', () => {});
    // It must not keep serve alive: it is there for when serve is gone.
    watchdog.unref();
    (watchdog.stdin as unknown as { unref?: () => void }).unref?.();
  }
  if (watchdog.stdin!.writable) watchdog.stdin!.write(`${sign}${pgid}\n`);
}

/** Stop the watchdog cleanly (every group is gone): its input ends and it exits. */
export function stopWatchdog(): void {
  watchdog?.stdin?.end();
  watchdog = undefined;
}

/** Send `signal` to process group `pgid`. @returns false when the group no longer exists. */
function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * True while a process of group `pgid` is still running. A group whose
 * members have all exited still "exists" until their new parent (init, or
 * a subreaper) reaps them, which some inits do only every second or two; on
 * Linux, members that are only zombies do not count.
 */
function groupRunning(pgid: number): boolean {
  if (!signalGroup(pgid, 0)) return false;
  if (process.platform !== 'linux') return true;
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return true;
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'latin1');
    } catch {
      continue; // gone meanwhile
    }
    // pid (comm) state ppid pgrp ...; comm may contain spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) === pgid && fields[0] !== 'Z') return true;
  }
  return false;
}

const live = new Set<ChildProcess>();

/** SIGKILL every child's process group still running (the process exit path). */
export function killAllChildren(): void {
  for (const c of live) {
    if (POSIX && c.pid !== undefined) signalGroup(c.pid, 'SIGKILL');
    else c.kill('SIGKILL');
  }
}

export function spawnChild(command: string[], log: Logger, onMessage: (message: Record<string, unknown>) => void, options: SpawnOptions): ChildServer {
  const graceMs = options.graceMs ?? CHILD_GRACE_MS;
  const [file, ...args] = [...DEATH_SIGNAL_PREFIX, ...command];
  const child = spawn(file!, args, { stdio: ['pipe', 'pipe', 'pipe'], shell: false, detached: POSIX, env: options.env });
  const pgid = POSIX ? child.pid : undefined;
  live.add(child);
  if (pgid !== undefined) tellWatchdog('+', pgid, graceMs);
  const clog = log.child({ child: child.pid ?? 'none' });
  const stdout = new LineSplitter(
    options.maxLineBytes,
    (line) => {
      const msg = parseJsonLine(line);
      if (msg) onMessage(msg);
      else clog.warn('child wrote a line that is not a JSON object to stdout; dropped');
    },
    (bytes) => clog.warn(`child wrote a line longer than ${options.maxLineBytes} bytes; dropped`, { bytes }),
  );
  child.stdout!.on('data', (c: Buffer) => stdout.push(c));
  const stderr = new LineSplitter(64 * 1024, (line) => clog.info(`[child] ${line}`), () => clog.warn('[child] overlong stderr line dropped'));
  child.stderr!.on('data', (c: Buffer) => stderr.push(c));
  child.stdin!.on('error', (err) => clog.debug('child stdin closed', { error: err.message }));

  const exited = new Promise<string>((resolve) => {
    child.on('error', (err) => {
      live.delete(child);
      resolve(`could not start ${JSON.stringify(command[0])}: ${err.message}`);
    });
    child.on('exit', (code, signal) => {
      live.delete(child);
      resolve(signal ? `killed by ${signal}` : `exited with code ${code}`);
    });
  });

  /** SIGTERM (or nothing, if asked) now, SIGKILL after the grace, then wait for the group to go. */
  let stopping: Promise<void> | undefined;
  const stopGroup = (term: boolean): Promise<void> => {
    stopping ??= (async () => {
      const kill = (signal: NodeJS.Signals) => (pgid !== undefined ? signalGroup(pgid, signal) : child.kill(signal));
      if (term) kill('SIGTERM');
      const timer = setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) clog.warn(`child did not exit within ${graceMs} ms of SIGTERM; killing it`);
        else clog.warn(`processes the child started are still running ${graceMs} ms after SIGTERM; killing them`);
        kill('SIGKILL');
      }, graceMs);
      await exited;
      if (pgid !== undefined) {
        // The leader is gone; what it started may not be (npx's server, a shell's commands).
        if (!term && groupRunning(pgid)) kill('SIGTERM');
        const end = Date.now() + graceMs + GROUP_GONE_MS;
        while (groupRunning(pgid) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      }
      clearTimeout(timer);
      if (pgid !== undefined && !groupRunning(pgid)) tellWatchdog('-', pgid, graceMs);
    })();
    return stopping;
  };
  // A child that exits by itself takes the rest of its group with it.
  void exited.then(() => stopGroup(false));

  return {
    pid: child.pid,
    exited,
    stdin: child.stdin!,
    stdout: child.stdout!,
    terminate() {
      if (child.pid === undefined) return exited.then(() => {});
      if (child.exitCode === null && child.signalCode === null) {
        child.stdin!.end();
        return stopGroup(true);
      }
      return stopGroup(false);
    },
  };
}
