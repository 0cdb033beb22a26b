/** Chains whose highest seq a subscriber remembers; past it the least recently seen is forgotten. */
export const DEDUP_CHAINS_MAX = 200_000;

/**
 * Drops records already delivered, exactly and in bounded memory. Every record sits in a
 * chain that its publisher emits in order (a chat event in its origin's chain of the
 * chat, any other record in its publishing server's positions), and a chain's records
 * stay in order on the bus (one key, one partition). So a record at or below the highest
 * seq seen of its chain is a copy of one delivered before: a republish after a crash, or
 * a redelivery. Memory is one number per chain, not one per record. A chain forgotten
 * past `chainsMax` can let an old copy through once: at least once still holds.
 */
export class Deduplicator {
  private readonly highest = new Map<string, number>();

  constructor(
    private readonly chainsMax = DEDUP_CHAINS_MAX,
    seen: Iterable<readonly [chain: string, seq: number]> = [],
  ) {
    if (!(chainsMax >= 1)) throw new Error('chainsMax must be at least 1');
    for (const [chain, seq] of seen) this.mark(chain, seq);
  }

  get chains(): number {
    return this.highest.size;
  }

  highestSeen(chain: string): number | undefined {
    return this.highest.get(chain);
  }

  /**
   * The records not delivered before, in order, and `commit`, which marks them delivered:
   * call it once the subscriber acknowledged them, so a batch it failed comes again whole.
   * A record without a chain is passed through.
   */
  select<T>(records: readonly T[], chainOf: (record: T) => { chain: string; seq: number } | undefined): { fresh: T[]; commit(): void } {
    const batch = new Map<string, number>();
    const fresh = records.filter((record) => {
      const at = chainOf(record);
      if (!at) return true;
      const highest = batch.get(at.chain) ?? this.highest.get(at.chain);
      if (highest !== undefined && at.seq <= highest) return false;
      batch.set(at.chain, at.seq);
      return true;
    });
    return { fresh, commit: () => batch.forEach((seq, chain) => this.mark(chain, seq)) };
  }

  private mark(chain: string, seq: number): void {
    const before = this.highest.get(chain);
    if (before !== undefined && before >= seq) return;
    // Re-inserted last: the Map's order is least recently advanced first.
    this.highest.delete(chain);
    this.highest.set(chain, seq);
    while (this.highest.size > this.chainsMax) this.highest.delete(this.highest.keys().next().value!);
  }
}
