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
