import type { Now } from './clock.js';

/**
 * After this many failed handshakes within the window, a source is refused until the
 * window ends: per (address, claimed id), and more loosely per address alone, since
 * several servers may dial from one address (a NAT, a shared host).
 */
export const HANDSHAKE_FAILURES_MAX = { claim: 5, address: 20 } as const;
export type SourceKind = keyof typeof HANDSHAKE_FAILURES_MAX;
export const HANDSHAKE_FAILURE_WINDOW_MS = 60_000;
const SOURCES_TRACKED_MAX = 10_000;

interface Window {
  startedAt: number;
  failures: number;
}

/** Counts handshake failures per source: an address, or an address with a claimed server id. */
export class FailureRateLimiter {
  private readonly windows = new Map<string, Window>();

  constructor(
    private readonly now: Now,
    private readonly failuresMax: Record<SourceKind, number> = HANDSHAKE_FAILURES_MAX,
    private readonly windowMs = HANDSHAKE_FAILURE_WINDOW_MS,
  ) {}

  isLimited(source: string, kind: SourceKind): boolean {
    const window = this.current(`${kind}:${source}`);
    return window !== undefined && window.failures >= this.failuresMax[kind];
  }

  /** Records a failure; returns true when this one crossed the limit. */
  recordFailure(source: string, kind: SourceKind): boolean {
    const key = `${kind}:${source}`;
    const window = this.current(key) ?? { startedAt: this.now(), failures: 0 };
    window.failures += 1;
    if (!this.windows.has(key) && this.windows.size >= SOURCES_TRACKED_MAX) this.evictExpired();
    this.windows.set(key, window);
    return window.failures === this.failuresMax[kind];
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
