/**
 * Summarise V8 CPU profiles (`--cpu-prof` output, e.g. from `run.js
 * --profile`): self time per function and per source area (our code, ws,
 * MCP SDK / zod, node internals, native/GC).
 *
 *   node dist/bench/profile-summary.js FILE.cpuprofile [--top N]
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function area(url: string, fn: string): string {
  if (url.includes('/dist/src/transport/')) return 'ours: transport';
  if (url.includes('/dist/src/')) return 'ours: core (session/framing/crypto)';
  if (url.includes('/node_modules/ws/')) return 'ws';
  if (url.includes('/node_modules/zod/') || url.includes('@modelcontextprotocol')) return 'MCP SDK / zod';
  if (url.includes('/dist/bench/')) return 'bench harness';
  if (url.startsWith('node:')) return 'node internals (JS)';
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(idle)' || fn === '(program)') return fn;
  return 'native / builtins';
}

export function summarize(profile: Profile, top: number): string {
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const perFn = new Map<string, number>();
  const perArea = new Map<string, number>();
  let total = 0;
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    const { functionName, url, lineNumber } = n.callFrame;
    const a = area(url, functionName);
    if (a === '(idle)') continue;
    total += us;
    const key = `${functionName || '(anonymous)'} ${url ? `${url.replace(/^.*\/(dist|node_modules)\//, '$1/')}:${lineNumber + 1}` : ''}`.trim();
    perFn.set(key, (perFn.get(key) ?? 0) + us);
    perArea.set(a, (perArea.get(a) ?? 0) + us);
  }
  const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
  const lines = [`busy ${(total / 1000).toFixed(0)} ms`, '', 'by area:'];
  for (const [a, us] of [...perArea].sort((x, y) => y[1] - x[1])) lines.push(`  ${pct(us)}  ${a}`);
  lines.push('', `top ${top} functions by self time:`);
  for (const [k, us] of [...perFn].sort((x, y) => y[1] - x[1]).slice(0, top)) lines.push(`  ${pct(us)}  ${k}`);
  return lines.join('\n');
}

const [file, ...rest] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: node dist/bench/profile-summary.js FILE.cpuprofile [--top N]\n');
  process.exit(64);
}
const topIdx = rest.indexOf('--top');
const top = topIdx >= 0 ? Number(rest[topIdx + 1]) : 25;
process.stdout.write(summarize(JSON.parse(readFileSync(file, 'utf8')) as Profile, top) + '\n');
