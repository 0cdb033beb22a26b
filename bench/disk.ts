/**
 * The disk's own bound on a commit: how long an fsync of one written page takes on the
 * filesystem the stores live on, paced as a server commits at the paced rate and with
 * as many writers at once, each in its own process, as the chain has servers. Each
 * commit of each server waits for one; no code of ours is in this figure.
 */
import { join } from 'node:path';
import { percentile } from './clock.js';
import type { WriterTask } from './fsync-writer.js';
import { runTogether } from './together.js';

/** Each writer's page + fsync, then at least this long asleep (a timer's least): a commit every 1.5–2 ms, as a server makes at the paced 1,000/s (1.5–3 events a commit). */
const FSYNC_PACE_MS = 1;
const FSYNC_SAMPLES = 1_000;
/** Past this the writers are killed and the bench fails. */
const FSYNC_LIMIT_MS = 30_000;

export interface FsyncBounds {
  /** Processes writing and fsyncing at once. */
  writers: number;
  paceMs: number;
  samples: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** `writers` processes, each fsyncing its own file in `dir` FSYNC_SAMPLES times; the times of all together. */
export async function measureFsync(dir: string, writers: number): Promise<FsyncBounds> {
  const tasks = Array.from({ length: writers }, (_, index) => ({ file: join(dir, `fsync-${writers}-${index}.bin`), samples: FSYNC_SAMPLES, paceMs: FSYNC_PACE_MS }));
  const times = (await runTogether<WriterTask, number[]>(new URL('./fsync-writer.js', import.meta.url), tasks, FSYNC_LIMIT_MS)).flat().sort((a, b) => a - b);
  return { writers, paceMs: FSYNC_PACE_MS, samples: times.length, p50Ms: percentile(times, 0.5), p99Ms: percentile(times, 0.99), maxMs: times.at(-1)! };
}
