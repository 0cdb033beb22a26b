import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CommitPacer } from './serial.js';

describe('CommitPacer', () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  /** Starts `ready()` and reports whether it has resolved, as fake time moves. */
  function watch(pacer: CommitPacer): { resolved: () => boolean } {
    let done = false;
    void pacer.ready().then(() => (done = true));
    return { resolved: () => done };
  }

  it('lets a first commit, and one after a quiet spell, start at once', async () => {
    const pacer = new CommitPacer(2, () => Date.now());
    const first = watch(pacer);
    await vi.advanceTimersByTimeAsync(0);
    expect(first.resolved()).toBe(true);
    await vi.advanceTimersByTimeAsync(50);
    const later = watch(pacer);
    await vi.advanceTimersByTimeAsync(0);
    expect(later.resolved()).toBe(true);
  });

  it('holds a commit that comes within the spacing until the spacing has passed', async () => {
    const pacer = new CommitPacer(2, () => Date.now());
    await pacer.ready();
    await vi.advanceTimersByTimeAsync(1);
    const next = watch(pacer);
    await vi.advanceTimersByTimeAsync(0);
    expect(next.resolved()).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(next.resolved()).toBe(true);
  });

  it('lets callers that wait together all start once the spacing has passed, none waiting longer', async () => {
    const pacer = new CommitPacer(2, () => Date.now());
    await pacer.ready();
    const second = watch(pacer);
    const third = watch(pacer);
    await vi.advanceTimersByTimeAsync(1);
    expect([second.resolved(), third.resolved()]).toEqual([false, false]);
    await vi.advanceTimersByTimeAsync(1);
    expect([second.resolved(), third.resolved()]).toEqual([true, true]);
  });
});
