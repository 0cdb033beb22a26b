import { performance } from 'node:perf_hooks';

/**
 * Epoch milliseconds with sub-millisecond resolution. Processes on one machine read the
 * same system clock, so a time taken in one can be subtracted from a time taken in another.
 */
export function sharedNowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** The sample below which `fraction` of the sorted samples lie (nearest rank). */
export function percentile(sortedMs: readonly number[], fraction: number): number {
  if (sortedMs.length === 0) return Number.NaN;
  return sortedMs[Math.min(sortedMs.length - 1, Math.max(0, Math.ceil(fraction * sortedMs.length) - 1))]!;
}
