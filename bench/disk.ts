/**
 * The disk's own bound on a commit: how long an fsync of one written page takes on the
 * filesystem the stores live on, paced as a server commits at the paced rate and with
 * as many writers at once, each in its own process, as the chain has servers. Each
 * commit of each server waits for one; no code of ours is in this figure.
 */
import { fork } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { percentile } from './clock.js';
import type { WriterTask } from './fsync-writer.js';

/** Each writer's page + fsync, then at least this long asleep (a timer's least): a commit every 1.5–2 ms, as a server makes at the paced 1,000/s (1.5–3 events a commit). */
const FSYNC_PACE_MS = 1;
const FSYNC_SAMPLES = 1_000;
/** Past this the writers are killed and the bound is left out. */
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

function runWriter(task: WriterTask): Promise<number[]> {
  const child = fork(fileURLToPath(new URL('./fsync-writer.js', import.meta.url)), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const limit = setTimeout(() => child.kill('SIGKILL'), FSYNC_LIMIT_MS);
  return new Promise<number[]>((resolve, reject) => {
    child.once('message', (answer: { times?: number[]; error?: string }) => (answer.times ? resolve(answer.times) : reject(new Error(`fsync writer: ${answer.error}`))));
    child.once('exit', (code) => reject(new Error(`fsync writer exited (${code ?? 'killed'}) before answering`)));
    child.send(task);
  }).finally(() => clearTimeout(limit));
}

/** `writers` processes, each fsyncing its own file in `dir` FSYNC_SAMPLES times; the times of all together. */
export async function measureFsync(dir: string, writers: number): Promise<FsyncBounds> {
  const tasks = Array.from({ length: writers }, (_, index) => ({ file: join(dir, `fsync-${writers}-${index}.bin`), samples: FSYNC_SAMPLES, paceMs: FSYNC_PACE_MS }));
  const times = (await Promise.all(tasks.map(runWriter))).flat().sort((a, b) => a - b);
  return { writers, paceMs: FSYNC_PACE_MS, samples: times.length, p50Ms: percentile(times, 0.5), p99Ms: percentile(times, 0.99), maxMs: times.at(-1)! };
}
