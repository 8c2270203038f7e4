/** Small, allocation-light statistics helpers for the benchmark. */

/** The q-quantile (0..1) of `values` by linear interpolation; NaN when empty. Does not modify the input. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = Float64Array.from(values).sort();
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export const median = (values: readonly number[]): number => quantile(values, 0.5);

/** A figure summarised over repetitions: the median of the per-repetition values and their range. */
export interface Summary {
  median: number;
  min: number;
  max: number;
  /** (max - min) / 2 / median: the half-range relative to the median (0 with one repetition). */
  spread: number;
  /** The per-repetition values, in run order. */
  runs: number[];
}

export function summarize(runs: readonly number[]): Summary | undefined {
  const finite = runs.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return undefined;
  const m = median(finite);
  const min = Math.min(...finite);
  const max = Math.max(...finite);
  return { median: m, min, max, spread: m === 0 ? 0 : (max - min) / 2 / Math.abs(m), runs: [...finite] };
}

/** Nanosecond monotonic clock as a number of microseconds. */
export function nowUs(): number {
  return Number(process.hrtime.bigint()) / 1000;
}

/** CPU time (user + system) of this process, microseconds. */
export function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}
