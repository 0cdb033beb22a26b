import { MEMBERSHIP_KINDS, signEventId, type Identity } from '../crypto/index.js';
import type { Event } from '../proto/gen/trellis/v1/event.js';
import type { BackfillAnswer, BackfillRequest } from '../proto/gen/trellis/v1/link.js';
import type { EventStore, StoredEvent } from '../store/index.js';
import { chainKey } from './held-events.js';
import { BATCH_EVENTS_MAX } from './limits.js';
import { AppendTail } from './queues/append-tail.js';

/** Chats whose servers and policy the send path keeps in memory; past it the cache starts over. */
const CHATS_CACHED_MAX = 100_000;

export const BACKFILL_PAGE_EVENTS_MAX = 512;

/** A batch stops growing past this many body bytes, well under the gRPC message limit (router/transport.ts). */
export const BATCH_BODY_BYTES_MAX = 4 * 1024 * 1024;

/** The longest prefix within the byte budget, and never less than one event. */
function withinBudget<E extends Event>(events: E[]): E[] {
  let bytes = 0;
  const end = events.findIndex((event) => (bytes += event.body.length) > BATCH_BODY_BYTES_MAX);
  return end === -1 ? events : events.slice(0, Math.max(1, end));
}

/** How the send path sees routes: the next hop for a destination under a chat's policy. */
export interface NextHops {
  nextHop(destination: string, policy: number): string | undefined;
  /** The destinations whose default route runs through `peerId`. */
  destinationsVia(peerId: string): string[];
  /** Changes whenever a route moves: cached next hops are dropped. */
  readonly version: number;
}

export interface OutboundDeps {
  selfId: string;
  identity: Identity;
  store: EventStore;
  routes: NextHops;
  /** A transit (ETS, RTS, TTS) forwards every origin's events; a CTS sends only its own. */
  transit: boolean;
  /** Every link must look again from this local seq: events it passed over now have destinations. */
  rewindAll(toLocalSeq: number): void;
}

export interface OutboundBatch {
  events: StoredEvent[];
  /** How far the read looked: with no events, the link may move its position here. */
  scannedTo: number;
}

interface ChatRouting {
  servers: readonly string[];
  policy: number;
}

/**
 * What this node sends over each link: every stored event whose next hop toward one of
 * its chat's servers is that link's peer, in append order (the destination queue of
 * that next hop), and backfill pages. A run of another origin's events is passed on
 * only up to a signature it carries; the last event of each run of our own is signed
 * here, once per frame: Ed25519 is deterministic, so signing at send time gives the
 * bytes signing at post time would, at one signature per run instead of per event.
 */
export class Outbound {
  private tail: AppendTail | undefined;
  private readonly chats = new Map<string, ChatRouting>();
  /** Next hops per (chat, origin), valid for one routes version. */
  private readonly hops = new Map<string, ReadonlySet<string>>();
  private hopsVersion = -1;
  private lastAppended = 0;
  /**
   * Chats of events a link passed over because the chat's members were not known yet (a
   * device posted before its server stored the chat's creation), with the lowest local
   * seq: when the chat's membership arrives, every link looks again from there.
   */
  private readonly unplaced = new Map<string, number>();

  constructor(private readonly deps: OutboundDeps) {}

  /** Starts the tail where the store ends: every event appended from now on passes through `observe`. */
  async load(): Promise<void> {
    this.lastAppended = await this.deps.store.lastLocalSeq();
    this.tail = new AppendTail(this.lastAppended);
  }

  /** Every append of this node, once committed and before links are woken. */
  observe(events: readonly StoredEvent[]): void {
    for (const event of events) {
      if (MEMBERSHIP_KINDS.has(event.kind)) {
        this.chats.delete(event.chatId);
        this.hops.clear();
        const passedOver = this.unplaced.get(event.chatId);
        if (passedOver !== undefined) {
          this.unplaced.delete(event.chatId);
          this.deps.rewindAll(passedOver - 1);
        }
      }
      this.tail?.push(event);
      this.lastAppended = Math.max(this.lastAppended, event.localSeq);
    }
  }

  /** The next batch for a peer after a link position: from the tail, else from the store. */
  async batchFor(peerId: string, afterLinkSeq: number, limit: number): Promise<OutboundBatch> {
    const read = await this.read(peerId, afterLinkSeq, limit);
    let events = signedPrefix(withinBudget(read.events), this.deps.selfId);
    if (events.length === 0 && read.events.length > 0 && limit < BATCH_EVENTS_MAX) {
      // A run of another origin reaches its signature past the limit: read as far as a run can be long.
      return this.batchFor(peerId, afterLinkSeq, BATCH_EVENTS_MAX);
    }
    events = this.signRunEnds(events);
    return { events, scannedTo: events.length > 0 ? events.at(-1)!.localSeq : read.events.length > 0 ? afterLinkSeq : read.scannedTo };
  }

  private async read(peerId: string, after: number, limit: number): Promise<OutboundBatch> {
    const wanted = (event: StoredEvent) => this.sendsTo(event, peerId);
    const recent = await this.tail?.after(after, limit, wanted);
    if (recent) return { events: recent.events, scannedTo: recent.scannedTo };
    // Everything up to here was committed before the query, so the query sees all of it.
    const appendedBefore = this.lastAppended;
    const servers = [...new Set([peerId, ...this.deps.routes.destinationsVia(peerId)])];
    const read = await this.deps.store.outboundEvents(servers, after, limit);
    // What committed but has not been observed yet is judged next time, with the member lists it brings.
    const candidates = read.filter((event) => event.localSeq <= appendedBefore);
    const events: StoredEvent[] = [];
    for (const event of candidates) if (await wanted(event)) events.push(event);
    const scannedTo = read.length < limit ? Math.max(appendedBefore, after) : (candidates.at(-1)?.localSeq ?? after);
    return { events, scannedTo };
  }

  /** Whether `peerId` is the next hop of this event toward one of its chat's servers (other than its origin and us). */
  async sendsTo(event: StoredEvent, peerId: string): Promise<boolean> {
    if (event.origin === peerId || (!this.deps.transit && event.origin !== this.deps.selfId)) return false;
    const hops = await this.hopsOf(event.chatId, event.origin);
    if (hops.size === 0 && (await this.routingOf(event.chatId)).servers.length === 0) {
      this.unplaced.set(event.chatId, Math.min(this.unplaced.get(event.chatId) ?? Number.MAX_SAFE_INTEGER, event.localSeq));
      if (this.unplaced.size > CHATS_CACHED_MAX) this.unplaced.delete(this.unplaced.keys().next().value!);
    }
    return hops.has(peerId);
  }

  /** The next hops of a chain's events: one per link, however many destinations lie behind it. */
  async hopsOf(chatId: string, origin: string): Promise<ReadonlySet<string>> {
    if (this.hopsVersion !== this.deps.routes.version) {
      this.hops.clear();
      this.hopsVersion = this.deps.routes.version;
    }
    const key = chainKey(chatId, origin);
    let hops = this.hops.get(key);
    if (!hops) {
      const { servers, policy } = await this.routingOf(chatId);
      const next = new Set<string>();
      for (const server of servers) {
        if (server === this.deps.selfId || server === origin) continue;
        const hop = this.deps.routes.nextHop(server, policy);
        if (hop) next.add(hop);
      }
      if (this.hops.size >= CHATS_CACHED_MAX) this.hops.clear();
      this.hops.set(key, (hops = next));
    }
    return hops;
  }

  private async routingOf(chatId: string): Promise<ChatRouting> {
    let routing = this.chats.get(chatId);
    if (!routing) {
      routing = { servers: await this.deps.store.chatServers(chatId), policy: await this.deps.store.chatPolicy(chatId) };
      if (this.chats.size >= CHATS_CACHED_MAX) this.chats.clear();
      this.chats.set(chatId, routing);
    }
    return routing;
  }

  /**
   * Backfill for a peer that found a gap in one origin's chain, or (empty origin) that
   * lacks a whole chat: a page per origin asked. Only for a peer with members in the chat
   * or one that carries the chat for us (a transit): anyone else reads nothing of it.
   */
  async backfill(peerId: string, request: BackfillRequest): Promise<BackfillAnswer[] | undefined> {
    const { servers } = await this.routingOf(request.chatId);
    if (servers.length === 0) return undefined;
    if (!servers.includes(peerId) && !(await this.hopsOf(request.chatId, '')).has(peerId)) return undefined;
    const origins = request.origin ? [request.origin] : await this.deps.store.chatOrigins(request.chatId);
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
    const page = await this.deps.store.originEvents(chatId, origin, fromSeq, BACKFILL_PAGE_EVENTS_MAX + 1);
    let events = withinBudget(page.slice(0, BACKFILL_PAGE_EVENTS_MAX));
    if (origin !== this.deps.selfId) {
      events = events.slice(0, events.findLastIndex((event) => event.signature.length > 0) + 1);
      if (events.length === 0 && page.length > 0) events = await this.throughNextSignature(chatId, origin, fromSeq);
    }
    const more = page.length > events.length;
    return { events: this.signRunEnds(events).map(({ localSeq: _, ...event }) => event), more };
  }

  private async throughNextSignature(chatId: string, origin: string, fromSeq: number): Promise<StoredEvent[]> {
    const signedSeq = await this.deps.store.nextSignedSeq(chatId, origin, fromSeq);
    if (signedSeq === undefined || signedSeq - fromSeq >= BATCH_EVENTS_MAX) return [];
    return this.deps.store.originEvents(chatId, origin, fromSeq, signedSeq - fromSeq + 1);
  }

  private signRunEnds<E extends Event>(events: E[]): E[] {
    const lastOfChain = new Map<string, number>();
    events.forEach((event, index) => lastOfChain.set(chainKey(event.chatId, event.origin), index));
    const out = [...events];
    for (const index of lastOfChain.values()) {
      const event = out[index]!;
      if (event.origin === this.deps.selfId && event.signature.length === 0) out[index] = { ...event, signature: signEventId(this.deps.identity, event.id) };
    }
    return out;
  }
}

/**
 * The longest prefix in which every run of another origin ends at an event that carries
 * its signature (a receiver checks a run by its last event's signature; we can sign
 * only our own). Runs of our own are signed at send time and never cut.
 */
function signedPrefix<E extends Event>(events: E[], selfId: string): E[] {
  const unsignedEnds = new Set<string>();
  let end = 0;
  events.forEach((event, index) => {
    if (event.origin !== selfId) {
      const key = chainKey(event.chatId, event.origin);
      if (event.signature.length > 0) unsignedEnds.delete(key);
      else unsignedEnds.add(key);
    }
    if (unsignedEnds.size === 0) end = index + 1;
  });
  return end === events.length ? events : events.slice(0, end);
}
