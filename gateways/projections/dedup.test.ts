import { describe, expect, it } from 'vitest';
import { Deduplicator } from './dedup.js';

interface R {
  chain: string;
  seq: number;
}
const at = (record: R) => record;
const r = (chain: string, seq: number): R => ({ chain, seq });

describe('de-duplication by chain', () => {
  it('drops what is at or below the highest seq of its chain, within a batch and across batches', () => {
    const dedup = new Deduplicator();
    const first = dedup.select([r('a', 1), r('a', 2), r('b', 1), r('a', 2), r('a', 1)], at);
    expect(first.fresh).toEqual([r('a', 1), r('a', 2), r('b', 1)]);
    first.commit();
    // A republish after a crash: the same records again, then new ones.
    const again = dedup.select([r('a', 2), r('b', 1), r('a', 3), r('b', 2)], at);
    expect(again.fresh).toEqual([r('a', 3), r('b', 2)]);
  });

  it('marks nothing delivered until the batch is committed, so a failed batch comes again whole', () => {
    const dedup = new Deduplicator();
    const failed = dedup.select([r('a', 1), r('a', 2)], at);
    expect(failed.fresh).toHaveLength(2);
    expect(dedup.select([r('a', 1), r('a', 2)], at).fresh).toHaveLength(2);
    expect(dedup.highestSeen('a')).toBeUndefined();
  });

  it('is bounded by chains, forgetting the one least recently advanced, and can start from what was applied', () => {
    const dedup = new Deduplicator(2, [['a', 5]]);
    expect(dedup.select([r('a', 5)], at).fresh).toEqual([]);
    dedup.select([r('b', 1)], at).commit();
    dedup.select([r('a', 6)], at).commit();
    dedup.select([r('c', 1)], at).commit();
    expect(dedup.chains).toBe(2);
    expect(dedup.highestSeen('b')).toBeUndefined();
    expect(dedup.highestSeen('a')).toBe(6);
  });
});
