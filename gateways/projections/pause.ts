/**
 * The pause of a polling loop (a relay, a feed): ends after its time, or early when the
 * loop is woken (new records) or ended. A retry's backoff is not `wakeable`: new records
 * must not cut it short, only the end of the loop.
 */
export class Pause {
  private wakeUp: (() => void) | undefined;

  constructor(private readonly ended: () => boolean) {}

  for(ms: number, wakeable = true): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakeUp = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeUp = () => {
        if (wakeable || this.ended()) done();
      };
    });
  }

  /** Ends the pause under way, if it may be ended (see `for`). */
  wake(): void {
    this.wakeUp?.();
  }
}
