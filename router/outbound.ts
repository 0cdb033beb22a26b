import { MEMBERSHIP_KINDS, signEventId, type Identity } from '../crypto/index.js';
import type { Event } from '../proto/gen/trellis/v1/event.js';
import type { BackfillAnswer, BackfillRequest } from '../proto/gen/trellis/v1/link.js';
import type { EventStore, StoredEvent } from '../store/index.js';
import { AppendTail } from './append-tail.js';
import { BATCH_EVENTS_MAX } from './limits.js';

/** Chats whose servers the send path keeps in memory; past it the cache starts over. */
const CHAT_SERVERS_CACHED_MAX = 100_000;

export const BACKFILL_PAGE_EVENTS_MAX = 512;

/** A batch stops growing past this many body bytes, well under the gRPC message limit (router/transport.ts). */
export const BATCH_BODY_BYTES_MAX = 4 * 1024 * 1024;

/** The longest prefix within the byte budget, and never less than one event. */
function withinBudget<E extends Event>(events: E[]): E[] {
  let bytes = 0;
  const end = events.findIndex((event) => (bytes += event.body.length) > BATCH_BODY_BYTES_MAX);
  return end === -1 ? events : events.slice(0, Math.max(1, end));
}

/**
 * What this node sends: its own events for chats with members on the peer, in its
 * append order, and backfill pages. The last event of each chat's run in a frame is
 * signed here, once per frame: Ed25519 is deterministic, so signing at send time gives
 * the bytes signing at post time would, at one signature per run instead of per event.
 */
export class Outbound {
  private tail: AppendTail | undefined;
  /** The servers of each chat, as the tail's filter reads them; dropped when a membership event is appended. */
  private readonly chatServers = new Map<string, ReadonlySet<string>>();

  constructor(
    private readonly selfId: string,
    private readonly identity: Identity,
    private readonly store: EventStore,
  ) {}

  /** Starts the tail where the store ends: every own event appended from now on passes through `observe`. */
  async load(): Promise<void> {
    this.tail = new AppendTail(await this.store.lastLocalSeq());
  }

  /** Every append of this node, once committed and before links are woken. */
  observe(events: readonly StoredEvent[]): void {
    for (const event of events) {
      if (MEMBERSHIP_KINDS.has(event.kind)) this.chatServers.delete(event.chatId);
      if (event.origin === this.selfId) this.tail?.push(event);
    }
  }

  /** Our events for chats with members on the peer after a link position: from the tail, else from the store. */
  async batchFor(peerId: string, afterLinkSeq: number, limit: number): Promise<StoredEvent[]> {
    const recent = await this.tail?.after(afterLinkSeq, limit, async (event) => (await this.serversOf(event.chatId)).has(peerId));
    return this.signRunEnds(withinBudget(recent ?? (await this.store.outboundEvents(this.selfId, peerId, afterLinkSeq, limit))));
  }

  private async serversOf(chatId: string): Promise<ReadonlySet<string>> {
    let servers = this.chatServers.get(chatId);
    if (!servers) {
      servers = new Set(await this.store.chatServers(chatId));
      if (this.chatServers.size >= CHAT_SERVERS_CACHED_MAX) this.chatServers.clear();
      this.chatServers.set(chatId, servers);
    }
    return servers;
  }

  /**
   * Backfill for a peer that found a gap in one origin's chain, or (empty origin) that
   * lacks a whole chat: a page per origin asked. Only for chats the peer has members in:
   * a server outside a chat reads nothing of it.
   */
  async backfill(peerId: string, request: BackfillRequest): Promise<BackfillAnswer[] | undefined> {
    if (!(await this.store.chatServers(request.chatId)).includes(peerId)) return undefined;
    const origins = request.origin ? [request.origin] : await this.store.chatOrigins(request.chatId);
    const answers: BackfillAnswer[] = [];
    for (const origin of origins) answers.push({ chatId: request.chatId, origin, ...(await this.page(request.chatId, origin, Math.max(1, request.fromSeq))) });
    return answers;
  }

  /**
   * A page of one origin's chain. Another origin's events can be passed on only up to a
   * signature we hold, so the page is cut by size first and then back to its last signed
   * event; when that leaves nothing, it runs on to the next signed event (one signature
   * covers at most one batch). `more` says events remain after the page.
   */
  private async page(chatId: string, origin: string, fromSeq: number): Promise<{ events: Event[]; more: boolean }> {
    const page = await this.store.originEvents(chatId, origin, fromSeq, BACKFILL_PAGE_EVENTS_MAX + 1);
    let events = withinBudget(page.slice(0, BACKFILL_PAGE_EVENTS_MAX));
    if (origin !== this.selfId) {
      events = events.slice(0, events.findLastIndex((event) => event.signature.length > 0) + 1);
      if (events.length === 0 && page.length > 0) events = await this.throughNextSignature(chatId, origin, fromSeq);
    }
    const more = page.length > events.length;
    return { events: this.signRunEnds(events).map(({ localSeq: _, ...event }) => event), more };
  }

  private async throughNextSignature(chatId: string, origin: string, fromSeq: number): Promise<StoredEvent[]> {
    const signedSeq = await this.store.nextSignedSeq(chatId, origin, fromSeq);
    if (signedSeq === undefined || signedSeq - fromSeq >= BATCH_EVENTS_MAX) return [];
    return this.store.originEvents(chatId, origin, fromSeq, signedSeq - fromSeq + 1);
  }

  private signRunEnds<E extends Event>(events: E[]): E[] {
    const lastOfChain = new Map<string, number>();
    events.forEach((event, index) => lastOfChain.set(`${event.chatId}\u0000${event.origin}`, index));
    const out = [...events];
    for (const index of lastOfChain.values()) {
      const event = out[index]!;
      if (event.origin === this.selfId && event.signature.length === 0) out[index] = { ...event, signature: signEventId(this.identity, event.id) };
    }
    return out;
  }
}
