import { signEventId, type Identity } from '../crypto/index.js';
import type { Event } from '../proto/gen/trellis/v1/event.js';
import type { EventStore, StoredEvent } from '../store/index.js';

/**
 * What this node sends: its own events for chats with members on the peer, in its
 * append order, and backfill pages. The last event of each chat's run in a frame is
 * signed here, once per frame: Ed25519 is deterministic, so signing at send time gives
 * the bytes signing at post time would, at one signature per run instead of per event.
 */
export const BACKFILL_PAGE_EVENTS_MAX = 512;
/** A batch stops growing past this many body bytes, well under the gRPC message limit (router/transport.ts). */
export const BATCH_BODY_BYTES_MAX = 4 * 1024 * 1024;

/** The longest prefix within the byte budget, and never less than one event. */
function withinBudget<E extends Event>(events: E[]): E[] {
  let bytes = 0;
  const end = events.findIndex((event) => (bytes += event.body.length) > BATCH_BODY_BYTES_MAX);
  return end === -1 ? events : events.slice(0, Math.max(1, end));
}

export class Outbound {
  constructor(
    private readonly selfId: string,
    private readonly identity: Identity,
    private readonly store: EventStore,
  ) {}

  async batchFor(peerId: string, afterLinkSeq: number, limit: number): Promise<StoredEvent[]> {
    return this.signRunEnds(withinBudget(await this.store.outboundEvents(this.selfId, peerId, afterLinkSeq, limit)));
  }

  /** A page of one origin's chain for a peer that found a gap; only for chats the peer has members in. */
  async backfillFor(peerId: string, chatId: string, origin: string, fromSeq: number): Promise<{ events: Event[]; more: boolean } | undefined> {
    if (!(await this.store.chatServers(chatId)).includes(peerId)) return undefined;
    const page = await this.store.originEvents(chatId, origin, fromSeq, BACKFILL_PAGE_EVENTS_MAX);
    // Another origin's events can only be passed on up to the last signature we hold for them.
    const lastSigned = origin === this.selfId ? page.length : page.findLastIndex((event) => event.signature.length > 0) + 1;
    const events = this.signRunEnds(withinBudget(page.slice(0, lastSigned))).map(({ localSeq: _, ...event }) => event);
    return { events, more: page.length === BACKFILL_PAGE_EVENTS_MAX };
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
