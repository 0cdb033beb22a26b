import type { HeldShare, HeldSummary } from '../store/index.js';

/** How much a node holds of events it cannot place yet (config `link.held_*`). */
export interface HeldBounds {
  eventsPerChain: number;
  bytesPerChain: number;
  eventsPerPeer: number;
  bytesPerPeer: number;
}

export const chainKey = (chatId: string, origin: string) => `${chatId}\u0000${origin}`;

interface ChainHeld {
  chatId: string;
  origin: string;
  events: number;
  bytes: number;
  /** The lowest held seq: the chain can move on only when its head reaches the seq before it. */
  minSeq: number;
  /** The peer that brought the latest of them: whom to ask again after a restart. */
  peer: string;
}

interface Tally {
  events: number;
  bytes: number;
}

const sum = (a: Tally | undefined, b: Tally | undefined): Tally => ({ events: (a?.events ?? 0) + (b?.events ?? 0), bytes: (a?.bytes ?? 0) + (b?.bytes ?? 0) });

/** What one round of placement chose to hold and has not stored yet. */
export class PendingHolds {
  private readonly chains = new Map<string, Tally>();
  private readonly peers = new Map<string, Tally>();

  add(key: string, peer: string, bytes: number): void {
    for (const [map, id] of [[this.chains, key], [this.peers, peer]] as const) {
      const tally = map.get(id) ?? { events: 0, bytes: 0 };
      tally.events += 1;
      tally.bytes += bytes;
      map.set(id, tally);
    }
  }

  chain(key: string): Tally | undefined {
    return this.chains.get(key);
  }

  peer(peer: string): Tally | undefined {
    return this.peers.get(peer);
  }
}

/**
 * The in-memory tally of held events (the events themselves are in the store), so the
 * bounds are checked without a query and a chain's held events are read only when the
 * first of them can be placed. Every map here is bounded by the held bounds: a chain or
 * peer appears only while it holds at least one event, and each peer holds at most
 * `eventsPerPeer`.
 */
export class HeldEvents {
  private readonly chains = new Map<string, ChainHeld>();
  private readonly peers = new Map<string, Tally>();

  constructor(readonly bounds: HeldBounds) {}

  load(summary: readonly HeldSummary[]): void {
    for (const share of summary) {
      this.count(share.chatId, share.origin, share.peer, share.events, share.bytes, share.minSeq);
    }
  }

  /**
   * Why one more event of `bytes` at `seq` (the head being `headSeq`) may not be held,
   * counting what is held and what the current round is about to hold (`pending`).
   */
  refusal(chatId: string, origin: string, peer: string, seq: number, headSeq: number, bytes: number, pending: PendingHolds): string | undefined {
    const key = chainKey(chatId, origin);
    const chain = sum(this.chains.get(key), pending.chain(key));
    const tally = sum(this.peers.get(peer), pending.peer(peer));
    const { eventsPerChain, bytesPerChain, eventsPerPeer, bytesPerPeer } = this.bounds;
    if (seq - headSeq > eventsPerChain) return `seq ${seq} is ${seq - headSeq} past the stored head; at most ${eventsPerChain} are held`;
    if (chain.events + 1 > eventsPerChain || chain.bytes + bytes > bytesPerChain)
      return `the chain already holds ${chain.events} events (${chain.bytes} bytes) beyond its head`;
    if (tally.events + 1 > eventsPerPeer || tally.bytes + bytes > bytesPerPeer)
      return `this peer already has ${tally.events} events (${tally.bytes} bytes) held here`;
    return undefined;
  }

  add(chatId: string, origin: string, peer: string, seq: number, bytes: number): void {
    this.count(chatId, origin, peer, 1, bytes, seq);
  }

  /** After the store dropped a chain's held events up to a seq: what went, and the chain's next held seq. */
  dropped(chatId: string, origin: string, shares: readonly HeldShare[], nextSeq: number | undefined): void {
    const key = chainKey(chatId, origin);
    const chain = this.chains.get(key);
    for (const share of shares) {
      const tally = this.peers.get(share.peer);
      if (tally) {
        tally.events -= share.events;
        tally.bytes -= share.bytes;
        if (tally.events <= 0) this.peers.delete(share.peer);
      }
      if (chain) {
        chain.events -= share.events;
        chain.bytes -= share.bytes;
      }
    }
    if (!chain) return;
    if (nextSeq === undefined || chain.events <= 0) this.chains.delete(key);
    else chain.minSeq = nextSeq;
  }

  /** The lowest held seq of a chain, if it holds any. */
  minSeq(chatId: string, origin: string): number | undefined {
    return this.chains.get(chainKey(chatId, origin))?.minSeq;
  }

  /** Chains that hold events, with the peer that brought their latest. */
  heldChains(): Array<{ chatId: string; origin: string; minSeq: number; peer: string }> {
    return [...this.chains.values()].map(({ chatId, origin, minSeq, peer }) => ({ chatId, origin, minSeq, peer }));
  }

  /** Chains of one chat that hold events. */
  chainsOf(chatId: string): Array<{ origin: string; minSeq: number }> {
    return [...this.chains.values()].filter((chain) => chain.chatId === chatId).map(({ origin, minSeq }) => ({ origin, minSeq }));
  }

  get totalEvents(): number {
    let total = 0;
    for (const chain of this.chains.values()) total += chain.events;
    return total;
  }

  private count(chatId: string, origin: string, peer: string, events: number, bytes: number, seq: number): void {
    const key = chainKey(chatId, origin);
    const chain = this.chains.get(key) ?? { chatId, origin, events: 0, bytes: 0, minSeq: seq, peer };
    chain.events += events;
    chain.bytes += bytes;
    chain.minSeq = Math.min(chain.minSeq, seq);
    chain.peer = peer;
    this.chains.set(key, chain);
    const tally = this.peers.get(peer) ?? { events: 0, bytes: 0 };
    tally.events += events;
    tally.bytes += bytes;
    this.peers.set(peer, tally);
  }
}
