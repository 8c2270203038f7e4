/** Helpers of the mDNS namespace tests: fixture processes that print one JSON object per line. */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { NetNamespace } from '../helpers/netns.js';

export const MDNS_NODE = fileURLToPath(new URL('./fixtures/mdns-node.js', import.meta.url));
export const MDNS_ATTACKER = fileURLToPath(new URL('./fixtures/mdns-attacker.js', import.meta.url));
export const MESH_NODE = fileURLToPath(new URL('./fixtures/mesh-node.js', import.meta.url));

export type Line = Record<string, unknown> & { event?: string; t?: number };

export interface JsonProcess {
  child: ChildProcess;
  lines: Line[];
  /** The first line (already printed or still to come) that satisfies `pred`. */
  waitFor: (pred: (l: Line) => boolean, timeoutMs: number, what: string) => Promise<Line>;
  /** Everything else the process wrote (stderr and lines that are not JSON), for failure messages. */
  other: string[];
  /** Write one line to its stdin (started with `{ stdin: true }`). */
  send: (line: string) => void;
}

/** Start `args` with node in `ns` and collect its JSON lines; with `stdin`, its stdin is a pipe for `send`. */
export function startJson(ns: NetNamespace, args: string[], options: { stdin?: boolean } = {}): JsonProcess {
  const child = ns.run(process.execPath, args, options.stdin ? { stdio: ['pipe', 'pipe', 'pipe'] } : {});
  const lines: Line[] = [];
  const other: string[] = [];
  const waiters = new Set<() => void>();
  createInterface({ input: child.stdout! }).on('line', (text) => {
    try {
      lines.push(JSON.parse(text) as Line);
    } catch {
      other.push(text);
    }
    for (const w of waiters) w();
  });
  createInterface({ input: child.stderr! }).on('line', (text) => other.push(text));
  const exited = once(child, 'exit');
  const waitFor = (pred: (l: Line) => boolean, timeoutMs: number, what: string) =>
    new Promise<Line>((resolve, reject) => {
      const check = () => {
        const hit = lines.find(pred);
        if (!hit) return;
        waiters.delete(check);
        clearTimeout(timer);
        resolve(hit);
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; lines:\n${lines.map((l) => JSON.stringify(l)).join('\n')}\n${other.join('\n')}`));
      }, timeoutMs);
      void exited.then(() =>
        setTimeout(() => {
          if (!waiters.delete(check)) return;
          clearTimeout(timer);
          reject(new Error(`process exited before ${what}:\n${other.join('\n')}`));
        }, 100),
      );
      waiters.add(check);
      check();
    });
  const send = (line: string) => void child.stdin!.write(line + '\n');
  return { child, lines, waitFor, other, send };
}
