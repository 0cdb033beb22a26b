import type { ChainPosition } from '../crypto/index.js';
import type { EventStore } from '../store/index.js';

/** Chains whose heads stay in memory; past it the cache starts over from the store. */
export const CHAIN_HEADS_CACHED_MAX = 100_000;

const keyOf = (chatId: string, origin: string) => `${chatId}\u0000${origin}`;

/**
 * The newest stored event of each (chat, origin) chain. Read and advanced only inside
 * the node's SerialQueue, so it always matches what is committed. Uncached (replicas of
 * one server, where another process appends too), every read goes to the store.
 */
export class ChainHeads {
  private readonly heads = new Map<string, ChainPosition | null>();
  private readonly cached: boolean;

  constructor(
    private readonly store: EventStore,
    options: { cached: boolean } = { cached: true },
  ) {
    this.cached = options.cached;
  }

  async get(chatId: string, origin: string): Promise<ChainPosition | undefined> {
    if (!this.cached) return this.store.head(chatId, origin);
    const key = keyOf(chatId, origin);
    let head = this.heads.get(key);
    if (head === undefined) {
      head = (await this.store.head(chatId, origin)) ?? null;
      this.remember(key, head);
    }
    return head ?? undefined;
  }

  advance(chatId: string, origin: string, head: ChainPosition): void {
    this.remember(keyOf(chatId, origin), head);
  }

  /** After a failed append, what was advanced for it is no longer true. */
  forget(chatId: string, origin: string): void {
    this.heads.delete(keyOf(chatId, origin));
  }

  private remember(key: string, head: ChainPosition | null): void {
    if (!this.cached) return;
    if (!this.heads.has(key) && this.heads.size >= CHAIN_HEADS_CACHED_MAX) this.heads.clear();
    this.heads.set(key, head);
  }
}
