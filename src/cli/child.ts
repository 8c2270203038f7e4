/**
 * A stdio MCP server run as a child process of `serve`: one per connection.
 * Its stdout carries JSON-RPC lines, its stderr goes to our log (prefixed),
 * and it is always reaped: stdin closed, then SIGTERM, then SIGKILL after a
 * grace period. `serve` kills its children when it is told to stop.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Logger } from './log.js';
import { LineSplitter, parseJsonLine } from './stdio.js';

/** How long a child gets between SIGTERM and SIGKILL (ms). */
export const CHILD_GRACE_MS = 3000;

export interface ChildServer {
  readonly pid: number | undefined;
  /** Write one JSON-RPC message to the child's stdin. */
  send(message: unknown): void;
  /** Stop the child; resolves once it has exited. Safe to call repeatedly. */
  terminate(): Promise<void>;
  /** Resolves with the exit description once the child has exited. */
  readonly exited: Promise<string>;
}

const live = new Set<ChildProcess>();

/**
 * On Linux, children are started through util-linux `setpriv --pdeathsig KILL`
 * so the kernel kills them even if `serve` itself is killed with SIGKILL and
 * can run no cleanup: no orphans, ever. Elsewhere, children see their stdin
 * close and are expected to exit, as stdio MCP servers do.
 */
const SETPRIV = '/usr/bin/setpriv';
const DEATH_SIGNAL_PREFIX = process.platform === 'linux' && existsSync(SETPRIV) ? [SETPRIV, '--pdeathsig', 'KILL', '--'] : [];

/** SIGKILL every child still running (process exit path). */
export function killAllChildren(): void {
  for (const c of live) c.kill('SIGKILL');
}

export function spawnChild(
  command: string[],
  log: Logger,
  onMessage: (message: Record<string, unknown>) => void,
  maxLineBytes: number,
  graceMs = CHILD_GRACE_MS,
): ChildServer {
  const [file, ...args] = [...DEATH_SIGNAL_PREFIX, ...command];
  const child = spawn(file!, args, { stdio: ['pipe', 'pipe', 'pipe'], shell: false });
  live.add(child);
  const clog = log.child({ child: child.pid ?? 'none' });
  const stdout = new LineSplitter(
    maxLineBytes,
    (line) => {
      const msg = parseJsonLine(line);
      if (msg) onMessage(msg);
      else clog.warn('child wrote a line that is not a JSON object to stdout; dropped');
    },
    (bytes) => clog.warn(`child wrote a line longer than ${maxLineBytes} bytes; dropped`, { bytes }),
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

  let terminating: Promise<void> | undefined;
  return {
    pid: child.pid,
    exited,
    send(message) {
      if (child.stdin!.writable) child.stdin!.write(JSON.stringify(message) + '\n');
    },
    terminate() {
      terminating ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return void (await exited);
        child.stdin!.end();
        child.kill('SIGTERM');
        const timer = setTimeout(() => {
          clog.warn(`child did not exit within ${graceMs} ms of SIGTERM; killing it`);
          child.kill('SIGKILL');
        }, graceMs);
        await exited;
        clearTimeout(timer);
      })();
      return terminating;
    },
  };
}
