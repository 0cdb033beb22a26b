/**
 * An idle process that only asks to be woken every millisecond and records how late each
 * wake-up comes: how long a thread that is ready to run waits for a core on this machine
 * while a case runs. Every hop of a paced event needs several such wake-ups (the post, the
 * commit's answer, the frame at the peer, its commit), so this tail is part of the paced
 * latency that no code in the servers can remove, measured in the same run. It costs
 * about 1% of a core itself.
 *
 * Run as a child of the bench (WakeCanary); the same file is the child's entry point.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { percentile } from './clock.js';

const TICK_MS = 1;
const ANSWER_LIMIT_MS = 10_000;

export interface WakeDelays {
  wakeups: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

type CanaryAsk = { type: 'start' } | { type: 'stop' };

function runCanary(): void {
  let delays: number[] = [];
  let timer: NodeJS.Timeout | undefined;
  const schedule = () => {
    const dueMs = performance.now() + TICK_MS;
    timer = setTimeout(() => {
      delays.push(Math.max(0, performance.now() - dueMs));
      schedule();
    }, TICK_MS);
  };
  process.on('message', (message: CanaryAsk) => {
    if (message.type === 'start') {
      delays = [];
      clearTimeout(timer);
      schedule();
      return;
    }
    clearTimeout(timer);
    const sorted = delays.sort((a, b) => a - b);
    const answer: WakeDelays = { wakeups: sorted.length, p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99), maxMs: sorted.at(-1) ?? 0 };
    process.send?.(answer);
  });
  process.once('disconnect', () => process.exit(0));
}

/** The canary process, as the bench starts and asks it. */
export class WakeCanary {
  private readonly child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--canary'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });

  /** Starts a fresh sample of wake-up delays. */
  start(): void {
    this.child.send({ type: 'start' } satisfies CanaryAsk);
  }

  /** Ends the sample and answers its delays. */
  stop(): Promise<WakeDelays> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the wake-up canary did not answer')), ANSWER_LIMIT_MS);
      this.child.once('message', (answer: WakeDelays) => {
        clearTimeout(timer);
        resolve(answer);
      });
      this.child.send({ type: 'stop' } satisfies CanaryAsk);
    });
  }

  close(): void {
    this.child.kill();
  }
}

if (process.argv.includes('--canary')) runCanary();
