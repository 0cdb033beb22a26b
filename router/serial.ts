/** Runs tasks one at a time, in call order: the single writer of a node's chains. */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

/**
 * A change counter to wait on. Read `version` before looking for work; if none is
 * found, `changedSince(version)` cannot miss a change made in between.
 */
export class Notifier {
  private count = 0;
  private waiters: Array<() => void> = [];

  get version(): number {
    return this.count;
  }

  notify(): void {
    this.count += 1;
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  changedSince(version: number): Promise<void> {
    if (version !== this.count) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

/**
 * Spaces a node's commits at least `spacingMs` apart, start to start. A commit costs
 * the engine about the same CPU for one event as for dozens, and with fsync it holds the
 * node's thread for its whole duration; at a steady rate of single events (a paced
 * chat) each would be a commit of its own, and the commits alone would fill a core.
 * Waiting out the spacing lets what arrives meanwhile join the next commit. A commit
 * that comes after a quiet spell starts at once: only a node already committing more
 * than 1000 / spacingMs times a second waits, and never longer than the spacing, however
 * many links wait with it (they then take their turns in the node's serial queue).
 */
export class CommitPacer {
  private lastStart = -Infinity;

  constructor(
    private readonly spacingMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Resolves when a commit may start, and counts one as started then. */
  async ready(): Promise<void> {
    const wait = this.lastStart + this.spacingMs - this.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    this.lastStart = Math.max(this.lastStart, this.now());
  }
}
