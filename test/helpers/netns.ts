/**
 * A network namespace of the test's own (Linux, root): `unshare --net` makes
 * it with only a loopback interface, which is brought up; `run()` starts
 * processes inside it with `nsenter`. It is anonymous, so nothing needs
 * removing: it disappears with its last process, and `close()` ends every
 * process this helper started (the holder last). Programs inside may use
 * fixed ports (the README's examples use 8000) without meeting anything
 * else on this machine.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';
import { within } from '../transport/helpers.js';

export interface NetNamespace {
  /** Start `command args` inside the namespace. */
  run: (command: string, args: string[], options?: SpawnOptions) => ChildProcess;
  /** Kill what is still running (SIGKILL) and let the namespace go. */
  close: () => Promise<void>;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

export async function startNetNamespace(): Promise<NetNamespace> {
  // `unshare` and `sh` exec in place, so the holder's pid is the one spawned here.
  const holder = spawn('unshare', ['--net', '--', 'sh', '-c', 'ip link set lo up && echo ready && exec sleep 3600'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const ready = new Promise<void>((resolve, reject) => {
    holder.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready')) resolve();
    });
    holder.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    holder.once('exit', (code) => reject(new Error(`unshare --net failed (exit ${code}): ${out}`)));
  });
  await within(ready, 10_000, 'the network namespace');
  const children: ChildProcess[] = [];
  return {
    run: (command, args, options = {}) => {
      const child = spawn('nsenter', ['-t', String(holder.pid), '-n', '--', command, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...options });
      children.push(child);
      return child;
    },
    close: async () => {
      await Promise.all(children.map(stop));
      await stop(holder);
    },
  };
}
