import type { HybridTime } from '../crypto/index.js';

/** Wall time in ms; passed in so tests and simulations can run on their own clock. */
export type Now = () => number;

export const HLC_COUNTER_MAX = 0xffff_ffff;

/**
 * A hybrid logical clock (Kulkarni et al.): close to wall time, yet every event it
 * stamps is later than every event it has seen, so canonical order respects causality
 * within a node even when clocks drift. What it sees is bounded: a timestamp more than
 * `maxSkewMs` ahead of the wall never moves it (the inbound path refuses such events),
 * so no peer can drag this node's clock, or exhaust its counter, into the future.
 */
export class HybridClock {
  private last: HybridTime = { ms: 0, counter: 0 };

  constructor(
    private readonly now: Now,
    readonly maxSkewMs = Number.POSITIVE_INFINITY,
  ) {}

  tick(): HybridTime {
    const wall = this.now();
    this.last = wall > this.last.ms ? { ms: wall, counter: 0 } : this.bump(this.last);
    return this.last;
  }

  /** How far a received timestamp lies ahead of the wall (negative: behind). */
  aheadBy(ms: number): number {
    return ms - this.now();
  }

  /** True when a received timestamp lies further ahead of the wall than the skew bound. */
  isTooFarAhead(ms: number): boolean {
    return this.aheadBy(ms) > this.maxSkewMs;
  }

  /** Moves past a timestamp seen on a received event, unless it is beyond the skew bound. */
  observe(seen: HybridTime): void {
    if (this.isTooFarAhead(seen.ms)) return;
    if (seen.ms > this.last.ms || (seen.ms === this.last.ms && seen.counter > this.last.counter)) this.last = seen;
  }

  private bump(time: HybridTime): HybridTime {
    return time.counter < HLC_COUNTER_MAX ? { ms: time.ms, counter: time.counter + 1 } : { ms: time.ms + 1, counter: 0 };
  }
}
