/**
 * Turning summarised results into the Markdown report and the target
 * verdicts of the goals of issue 14.
 */
import type { MachineFacts } from './machine.js';
import type { Mode, ModeId } from './modes.js';
import type { Summary } from './stats.js';

type PerMode<T> = Partial<Record<ModeId, T>>;

export interface Results {
  connect: PerMode<{ p50: Summary; p99: Summary }>;
  burst: PerMode<{ connPerSec: Summary; serverCpuUsPerConn: Summary; failed: number }>;
  memory: PerMode<{ rssKiBPerConn: Summary; heapKiBPerConn: Summary; rssKiBPerConnFirstHalf?: Summary }>;
  /** Keyed by size label. */
  rtt: Record<string, PerMode<{ p50: Summary; p99: Summary }>>;
  throughput: Record<string, PerMode<{ msgPerSec: Summary; mibPerSec: Summary; serverCpuUsPerMsg?: Summary | undefined; clientCpuUsPerMsg?: Summary | undefined; serverWritesPerMsg?: Summary; window: number }>>;
  /** Keyed by "framing, signed|unsigned", then size label. */
  micro: Record<string, Record<string, { sealUs: Summary; openUs: Summary }>>;
  /** SDK-level 1 KB tools/call round trips, keyed by variant id. */
  sdk: Record<string, { label: string; p50: Summary; p99: Summary }>;
}

export interface TargetVerdict {
  target: string;
  mode: ModeId;
  measured: string;
  limit: string;
  verdict: 'met' | 'missed' | 'n/a';
  /** True when the verdict would flip somewhere inside the runs' min-max range. */
  marginal: boolean;
}

const fmtNum = (v: number, digits = 3): string => {
  if (!Number.isFinite(v)) return '–';
  const abs = Math.abs(v);
  if (abs >= 100) return Math.round(v).toLocaleString('en-US');
  return v.toPrecision(digits);
};

/** A duration given in µs, in µs below 10 ms, else ms. */
export const fmtUs = (us: number): string => (!Number.isFinite(us) ? '–' : us < 10_000 ? `${fmtNum(us)} µs` : `${fmtNum(us / 1000)} ms`);

const spreadOf = (s: Summary | undefined): string => (s && s.runs.length > 1 ? ` ±${Math.round(s.spread * 100)}%` : '');
const ratio = (a: Summary | undefined, b: Summary | undefined): string =>
  a && b && b.median !== 0 && Number.isFinite(a.median / b.median) ? `${(a.median / b.median).toFixed(2)}x` : '–';

function table(head: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

function verdictOf(value: Summary | undefined, ok: (v: number) => boolean): { verdict: 'met' | 'missed' | 'n/a'; marginal: boolean } {
  if (!value) return { verdict: 'n/a', marginal: false };
  const verdict = ok(value.median) ? 'met' : 'missed';
  const marginal = value.runs.length > 1 && ok(value.min) !== ok(value.max);
  return { verdict, marginal };
}

/** Ratio summary a/b per run (runs paired by repetition), for targets that compare two modes. */
function pairedRatio(a: Summary | undefined, b: Summary | undefined): Summary | undefined {
  if (!a || !b || a.runs.length !== b.runs.length) return a && b ? { median: a.median / b.median, min: a.median / b.median, max: a.median / b.median, spread: 0, runs: [a.median / b.median] } : undefined;
  const runs = a.runs.map((v, i) => v / b.runs[i]!);
  const sorted = [...runs].sort((x, y) => x - y);
  const med = sorted.length % 2 ? sorted[(sorted.length - 1) / 2]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
  return { median: med, min: sorted[0]!, max: sorted[sorted.length - 1]!, spread: (sorted[sorted.length - 1]! - sorted[0]!) / 2 / med, runs };
}

function pairedDiff(a: Summary | undefined, b: Summary | undefined): Summary | undefined {
  if (!a || !b) return undefined;
  if (a.runs.length !== b.runs.length) return { median: a.median - b.median, min: a.median - b.median, max: a.median - b.median, spread: 0, runs: [a.median - b.median] };
  const runs = a.runs.map((v, i) => v - b.runs[i]!);
  const sorted = [...runs].sort((x, y) => x - y);
  const med = sorted.length % 2 ? sorted[(sorted.length - 1) / 2]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
  return { median: med, min: sorted[0]!, max: sorted[sorted.length - 1]!, spread: 0, runs };
}

/** The goals of issue 14, judged on the medians of per-repetition ratios (same run, same machine). */
export function judgeTargets(r: Results, modes: readonly Mode[]): TargetVerdict[] {
  const out: TargetVerdict[] = [];
  const encrypted = modes.filter((m) => m.kind === 'encrypted');
  const push = (target: string, mode: ModeId, value: Summary | undefined, limit: string, ok: (v: number) => boolean, show: (v: number) => string) => {
    const v = verdictOf(value, ok);
    out.push({ target, mode, measured: value ? show(value.median) + (value.runs.length > 1 ? ` (runs ${show(value.min)}–${show(value.max)})` : '') : '–', limit, ...v });
  };
  const x = (v: number) => `${v.toFixed(2)}x`;
  const plus = (v: number) => `+${fmtUs(v)}`;
  const kb = '1 KB';
  const tput = (m: ModeId, base: ModeId) => pairedRatio(r.throughput[kb]?.[m]?.msgPerSec, r.throughput[kb]?.[base]?.msgPerSec);
  push('1 KB pipelined ≥ 0.5x ws (the CLI default)', 'e2e-binary-signed', tput('e2e-binary-signed', 'ws'), '≥ 0.50x', (v) => v >= 0.5, x);
  push('1 KB pipelined ≥ 0.3x ws (seed default)', 'e2e-json-signed', tput('e2e-json-signed', 'ws'), '≥ 0.30x', (v) => v >= 0.3, x);
  push('1 KB pipelined ≥ 0.85x ws', 'e2e-binary', tput('e2e-binary', 'ws'), '≥ 0.85x', (v) => v >= 0.85, x);
  push('1 KB pipelined ≥ 1.0x wss', 'e2e-binary', tput('e2e-binary', 'wss'), '≥ 1.00x', (v) => v >= 1, x);
  push('1 KB round trip p50 ≤ 1.15x ws', 'e2e-binary', pairedRatio(r.rtt[kb]?.['e2e-binary']?.p50, r.rtt[kb]?.ws?.p50), '≤ 1.15x', (v) => v <= 1.15, x);
  push('1 KB round trip p50 ≤ +250 µs over ws', 'e2e-binary-signed', pairedDiff(r.rtt[kb]?.['e2e-binary-signed']?.p50, r.rtt[kb]?.ws?.p50), '≤ +250 µs', (v) => v <= 250, plus);
  push('1 KB round trip p50 ≤ +300 µs over ws (seed default)', 'e2e-json-signed', pairedDiff(r.rtt[kb]?.['e2e-json-signed']?.p50, r.rtt[kb]?.ws?.p50), '≤ +300 µs', (v) => v <= 300, plus);
  for (const m of encrypted.filter((e) => e.framing === 'binary')) {
    push('connections/s ≥ 2x wss', m.id, pairedRatio(r.burst[m.id]?.connPerSec, r.burst.wss?.connPerSec), '≥ 2.00x', (v) => v >= 2, x);
  }
  for (const m of encrypted.filter((e) => e.framing === 'binary')) {
    push('connection setup p50 ≤ 0.4x wss', m.id, pairedRatio(r.connect[m.id]?.p50, r.connect.wss?.p50), '≤ 0.40x', (v) => v <= 0.4, x);
  }
  for (const m of encrypted) {
    push('memory per idle connection ≤ 2x ws', m.id, pairedRatio(r.memory[m.id]?.rssKiBPerConn, r.memory.ws?.rssKiBPerConn), '≤ 2.00x', (v) => v <= 2, x);
  }
  return out;
}

export function renderMarkdown(r: Results, modes: readonly Mode[], targets: TargetVerdict[], machine: MachineFacts, meta: { command: string; reps: number; notes: string[]; connectCount: number; burstCount: number; burstConcurrency: number; memoryCount: number }): string {
  const label = (id: ModeId) => modes.find((m) => m.id === id)?.label ?? id;
  const ids = modes.map((m) => m.id);
  const parts: string[] = [];
  parts.push(`# mcp-e2e benchmark`);
  parts.push('');
  parts.push(`\`${meta.command}\` — ${machine.date}`);
  parts.push(`${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGiB} GiB; Node ${machine.node}, OpenSSL ${machine.openssl}, Ed25519/X25519 by ${machine.curve25519}${machine.curve25519 === 'libsodium' ? ` (sodium-native ${machine.sodiumNative})` : ''}, ws ${machine.ws}, MCP SDK ${machine.mcpSdk}; load average ${machine.loadAverage1m} at start.`);
  parts.push(`Medians over ${meta.reps} interleaved repetition(s); ±% is half the min–max range of the per-repetition values relative to the median. Ratios are against plaintext ws and wss measured in the same run.`);

  parts.push('\n## 1. Connection setup');
  parts.push(`Sequential: ${meta.connectCount} connections per mode per repetition, \`connect → open\` (encrypted: handshake done on the client). Burst: ${meta.burstCount} clients, ${meta.burstConcurrency} outstanding, completed connections per second (client side), on a server process of its own warmed by the memory figure's connections.\n`);
  parts.push(table(
    ['mode', 'p50', '× ws', '× wss', 'p99', 'conn/s (burst)', '× ws', '× wss', 'server CPU/conn'],
    ids.filter((id) => r.connect[id] || r.burst[id]).map((id) => {
      const c = r.connect[id];
      const b = r.burst[id];
      return [
        label(id),
        c ? fmtUs(c.p50.median) + spreadOf(c.p50) : '–', ratio(c?.p50, r.connect.ws?.p50), ratio(c?.p50, r.connect.wss?.p50),
        c ? fmtUs(c.p99.median) + spreadOf(c.p99) : '–',
        b ? fmtNum(b.connPerSec.median) + spreadOf(b.connPerSec) + (b.failed ? ` (${b.failed} failed)` : '') : '–', ratio(b?.connPerSec, r.burst.ws?.connPerSec), ratio(b?.connPerSec, r.burst.wss?.connPerSec),
        b ? fmtUs(b.serverCpuUsPerConn.median) : '–',
      ];
    }),
  ));

  parts.push('\n## 2. Round trip, one request in flight');
  const rttRows: string[][] = [];
  for (const [size, per] of Object.entries(r.rtt)) {
    for (const id of ids) {
      const v = per[id];
      if (!v) continue;
      rttRows.push([size, label(id), fmtUs(v.p50.median) + spreadOf(v.p50), ratio(v.p50, per.ws?.p50), ratio(v.p50, per.wss?.p50), fmtUs(v.p99.median) + spreadOf(v.p99), ratio(v.p99, per.ws?.p99), ratio(v.p99, per.wss?.p99)]);
    }
  }
  parts.push(table(['size', 'mode', 'p50', '× ws', '× wss', 'p99', '× ws', '× wss'], rttRows));

  parts.push('\n## 3. Pipelined throughput');
  parts.push('MiB/s counts request JSON one way (replies carry as much back). CPU is per echoed message; writes = server socket write requests per reply (plain TCP only).\n');
  const thrRows: string[][] = [];
  for (const [size, per] of Object.entries(r.throughput)) {
    for (const id of ids) {
      const v = per[id];
      if (!v) continue;
      thrRows.push([
        size, label(id), String(v.window),
        fmtNum(v.msgPerSec.median) + spreadOf(v.msgPerSec), fmtNum(v.mibPerSec.median), ratio(v.msgPerSec, per.ws?.msgPerSec), ratio(v.msgPerSec, per.wss?.msgPerSec),
        fmtUs(v.serverCpuUsPerMsg?.median ?? NaN), fmtUs(v.clientCpuUsPerMsg?.median ?? NaN), v.serverWritesPerMsg ? fmtNum(v.serverWritesPerMsg.median) : '–',
      ]);
    }
  }
  parts.push(table(['size', 'mode', 'in flight', 'msg/s', 'MiB/s', '× ws', '× wss', 'server CPU/msg', 'client CPU/msg', 'writes/msg'], thrRows));

  parts.push('\n## 4. Server memory per idle connection');
  parts.push(`${meta.memoryCount} idle connections on a fresh server process per mode and repetition; server RSS after full GC. Marginal cost: growth from ${Math.floor(meta.memoryCount / 2)} to ${meta.memoryCount} connections, per connection (the first half also carries one-time heap and allocator growth, shown last).\n`);
  parts.push(table(
    ['mode', 'RSS KiB/conn', '× ws', '× wss', 'heap+external KiB/conn', 'RSS KiB/conn, first half'],
    ids.filter((id) => r.memory[id]).map((id) => {
      const v = r.memory[id]!;
      return [label(id), fmtNum(v.rssKiBPerConn.median) + spreadOf(v.rssKiBPerConn), ratio(v.rssKiBPerConn, r.memory.ws?.rssKiBPerConn), ratio(v.rssKiBPerConn, r.memory.wss?.rssKiBPerConn), fmtNum(v.heapKiBPerConn.median), v.rssKiBPerConnFirstHalf ? fmtNum(v.rssKiBPerConnFirstHalf.median) : '–'];
    }),
  ));

  parts.push('\n## 5. Seal / open CPU per message (in process, `Session`)');
  const sizes = [...new Set(Object.values(r.micro).flatMap((o) => Object.keys(o)))];
  parts.push(table(
    ['framing', ...sizes.map((s) => `${s} seal / open`)],
    Object.entries(r.micro).map(([combo, per]) => [combo, ...sizes.map((s) => (per[s] ? `${fmtUs(per[s].sealUs.median)} / ${fmtUs(per[s].openUs.median)}` : '–'))]),
  ));

  if (Object.keys(r.sdk).length) {
    parts.push('\n## 6. SDK level (optional): 1 KB `tools/call` through MCP SDK `Client` → `McpServer`');
    const base = r.sdk['sdk-plaintext'];
    parts.push(table(
      ['variant', 'p50', '× SDK plaintext', 'p99', '× SDK plaintext'],
      Object.values(r.sdk).map((v) => [v.label, fmtUs(v.p50.median) + spreadOf(v.p50), ratio(v.p50, base?.p50), fmtUs(v.p99.median) + spreadOf(v.p99), ratio(v.p99, base?.p99)]),
    ));
  }

  parts.push('\n## Goals (issue 14)');
  parts.push(table(
    ['target', 'mode', 'measured', 'limit', 'verdict'],
    targets.map((t) => [t.target, label(t.mode), t.measured, t.limit, t.verdict === 'n/a' ? 'n/a' : `**${t.verdict}**${t.marginal ? ' (marginal: runs on both sides)' : ''}`]),
  ));
  if (meta.notes.length) {
    parts.push('\n## Notes');
    for (const n of meta.notes) parts.push(`- ${n}`);
  }
  return parts.join('\n') + '\n';
}
