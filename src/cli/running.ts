/**
 * Which `serve`s of a home are running, so that `keygen --force` does not
 * replace the identity under one: a running serve keeps the key it
 * started with, and its clients, who pinned that key, would find out only
 * at its restart. Each serve leaves a marker `serve.PID.run` in the home
 * while it runs; a marker whose process is gone (kill -9) or is not an
 * mcp-e2e process any more (the pid was reused) does not count.
 */
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const MARKER_RE = /^serve\.(\d+)\.run$/;

/** True while `pid` is a running process that is, as far as this platform tells, an mcp-e2e serve. */
function isServe(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists, as another user.
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (process.platform !== 'linux') return true;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').includes('serve');
  } catch {
    return false;
  }
}

/** Mark this process as a serve of `home` until it exits. */
export function markServeRunning(home: string, url: string): void {
  const path = join(home, `serve.${process.pid}.run`);
  writeFileSync(path, `${url}\n`, { mode: 0o600 });
  process.on('exit', () => rmSync(path, { force: true }));
}

/** The pids of the serves of `home` that are running now (stale markers are removed). */
export function runningServes(home: string): number[] {
  let names: string[];
  try {
    names = readdirSync(home);
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const name of names) {
    const m = MARKER_RE.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid !== process.pid && isServe(pid)) pids.push(pid);
    else if (pid !== process.pid) rmSync(join(home, name), { force: true });
  }
  return pids;
}
