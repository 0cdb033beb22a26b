import type { HybridTime } from '../crypto/index.js';

/** Wall time in ms; passed in so tests and simulations can run on their own clock. */
export type Now = () => number;

export const HLC_COUNTER_MAX = 0xffff_ffff;

/**
 * A hybrid logical clock (Kulkarni et al.): close to wall time, yet every event it
 * stamps is later than every event it has seen, so canonical order respects causality
 * within a node even when clocks drift.
 */
export class HybridClock {
  private last: HybridTime = { ms: 0, counter: 0 };

  constructor(private readonly now: Now) {}

  tick(): HybridTime {
    const wall = this.now();
    this.last = wall > this.last.ms ? { ms: wall, counter: 0 } : this.bump(this.last);
    return this.last;
  }

  /** Moves past a timestamp seen on a received event. */
  observe(seen: HybridTime): void {
    if (seen.ms > this.last.ms || (seen.ms === this.last.ms && seen.counter > this.last.counter)) this.last = seen;
  }

  private bump(time: HybridTime): HybridTime {
    return time.counter < HLC_COUNTER_MAX ? { ms: time.ms, counter: time.counter + 1 } : { ms: time.ms + 1, counter: 0 };
  }
}
