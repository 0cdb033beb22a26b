import type { Now } from './clock.js';

/** After this many failed handshakes from one source within the window, refuse it until the window ends. */
export const HANDSHAKE_FAILURES_MAX = 5;
export const HANDSHAKE_FAILURE_WINDOW_MS = 60_000;
const SOURCES_TRACKED_MAX = 10_000;

interface Window {
  startedAt: number;
  failures: number;
}

/** Counts handshake failures per source (remote address and claimed server id). */
export class FailureRateLimiter {
  private readonly windows = new Map<string, Window>();

  constructor(
    private readonly now: Now,
    private readonly failuresMax = HANDSHAKE_FAILURES_MAX,
    private readonly windowMs = HANDSHAKE_FAILURE_WINDOW_MS,
  ) {}

  isLimited(source: string): boolean {
    const window = this.current(source);
    return window !== undefined && window.failures >= this.failuresMax;
  }

  /** Records a failure; returns true when this one crossed the limit. */
  recordFailure(source: string): boolean {
    const window = this.current(source) ?? { startedAt: this.now(), failures: 0 };
    window.failures += 1;
    if (!this.windows.has(source) && this.windows.size >= SOURCES_TRACKED_MAX) this.evictExpired();
    this.windows.set(source, window);
    return window.failures === this.failuresMax;
  }

  private current(source: string): Window | undefined {
    const window = this.windows.get(source);
    if (window && this.now() - window.startedAt >= this.windowMs) {
      this.windows.delete(source);
      return undefined;
    }
    return window;
  }

  private evictExpired(): void {
    for (const source of [...this.windows.keys()]) this.current(source);
    // Still full of live windows: the oldest entry goes, a bound beats unbounded growth.
    if (this.windows.size >= SOURCES_TRACKED_MAX) this.windows.delete(this.windows.keys().next().value!);
  }
}
