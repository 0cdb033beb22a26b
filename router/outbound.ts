import { MEMBERSHIP_KINDS, signEventId, type Identity } from '../crypto/index.js';
import type { Event } from '../proto/gen/trellis/v1/event.js';
import type { BackfillAnswer, BackfillRequest, Forward } from '../proto/gen/trellis/v1/link.js';
import type { EventStore, StoredEvent } from '../store/index.js';
import { chainKey } from './held-events.js';
import { BATCH_EVENTS_MAX } from './limits.js';
import { AppendTail } from './queues/append-tail.js';
import { encodeForwards } from './queues/forwards.js';

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
  /** Whether our trust makes the peer a transit (ETS, RTS, TTS): a CTS never carries a chat it is not in. */
  isTransit(peerId: string): boolean;
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
  /**
   * Replicas of one server: the others append too, so there is no tail of our own appends
   * to send from; every batch is read from the store, whose write lock makes what a read
   * sees a prefix of local seqs (event-store.ts).
   */
  replicated?: boolean;
}

export interface OutboundBatch {
  events: StoredEvent[];
  /** What the peer passes on, as a transit: per range of `events`, the destinations it answers for. */
  forwards: Forward[];
  /** The link position after this batch (with no events: how far the read looked, which the link may skip to). */
  lastLinkSeq: number;
}

const NONE: readonly string[] = [];

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
  /** Per chat of ours: the destinations each next hop serves, valid for one routes version. */
  private readonly hops = new Map<string, ReadonlyMap<string, readonly string[]>>();
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
    if (!this.deps.replicated) this.tail = new AppendTail(this.lastAppended);
  }

  /**
   * Every append of this node, once committed and before links are woken. A CTS sends
   * only its own events, so only those go into its tail: another origin's events would
   * fill it (evicting ours, sent then from the store) and be passed over by every link.
   * A transit keeps them all, as a route that moves onto it gives stored ones destinations.
   */
  observe(events: readonly StoredEvent[]): void {
    for (const event of events) {
      this.observeMembers(event);
      if (this.deps.transit || event.origin === this.deps.selfId) this.tail?.push(event);
      this.lastAppended = Math.max(this.lastAppended, event.localSeq);
    }
  }

  /** A membership event changes where its chat's events go: forget what was cached, and look again at what was passed over. */
  private observeMembers(event: StoredEvent): void {
    if (!MEMBERSHIP_KINDS.has(event.kind)) return;
    this.chats.delete(event.chatId);
    this.hops.clear();
    const passedOver = this.unplaced.get(event.chatId);
    if (passedOver !== undefined) {
      this.unplaced.delete(event.chatId);
      this.deps.rewindAll(passedOver - 1);
    }
  }

  /** A stored event's destinations grew (a route moved onto us): every link looks at it again. */
  reforwarded(events: ReadonlyArray<{ localSeq: number; forwardTo: readonly string[] }>): void {
    if (events.length === 0) return;
    for (const { localSeq, forwardTo } of events) this.tail?.setForwards(localSeq, forwardTo);
    this.deps.rewindAll(Math.min(...events.map((event) => event.localSeq)) - 1);
  }

  /** The next batch for a peer after a link position: from the tail, else from the store. */
  async batchFor(peerId: string, afterLinkSeq: number, limit: number): Promise<OutboundBatch> {
    const read = await this.read(peerId, afterLinkSeq, limit);
    const served = withinBudget(read.events);
    let events = signedPrefix(served, this.deps.selfId);
    if (events.length === 0 && served.length > 0) {
      // A run of another origin reaches its signature past the limit: read as far as a run can be long.
      if (limit < BATCH_EVENTS_MAX) return this.batchFor(peerId, afterLinkSeq, BATCH_EVENTS_MAX);
      events = signedPrefix([...served, ...(await this.toNextSignatures(served))], this.deps.selfId);
    }
    const sent = events.filter((event) => event.localSeq <= (served.at(-1)?.localSeq ?? 0));
    const signed = this.signRunEnds(events);
    const lastLinkSeq = sent.length > 0 ? sent.at(-1)!.localSeq : read.events.length > 0 ? afterLinkSeq : read.scannedTo;
    return { events: signed, forwards: await this.forwardsFor(peerId, signed), lastLinkSeq };
  }

  /**
   * A receiver checks a run by the signature on its last event, and a transit holds
   * another origin's signatures only where runs ended. When the events a peer is served
   * stop inside such a run and nothing after them is for it (a route moved onto it in the
   * middle of a run), the run is carried on to its signature: those events go along for
   * the peer to store, named for no destination, and do not move the link's position.
   */
  private async toNextSignatures(served: readonly StoredEvent[]): Promise<StoredEvent[]> {
    const ends = new Map<string, StoredEvent>();
    for (const event of served) if (event.origin !== this.deps.selfId) ends.set(chainKey(event.chatId, event.origin), event);
    const carried: StoredEvent[] = [];
    let room = BATCH_EVENTS_MAX - served.length;
    for (const last of ends.values()) {
      if (last.signature.length > 0) continue;
      const rest = await this.throughNextSignature(last.chatId, last.origin, last.seq + 1);
      if (rest.length === 0 || rest.length > room) continue;
      carried.push(...rest);
      room -= rest.length;
    }
    return carried;
  }

  /** For each event, the destinations the peer passes it on to: those it serves, but itself. */
  private async forwardsFor(peerId: string, events: readonly StoredEvent[]): Promise<Forward[]> {
    const sets: Array<readonly string[]> = [];
    for (const event of events) sets.push((await this.servedBy(event, peerId)).filter((destination) => destination !== peerId));
    return encodeForwards(sets);
  }

  private async read(peerId: string, after: number, limit: number): Promise<{ events: StoredEvent[]; scannedTo: number }> {
    const wanted = async (event: StoredEvent) => (await this.servedBy(event, peerId)).length > 0;
    const recent = await this.tail?.after(after, limit, wanted);
    if (recent) return { events: recent.events, scannedTo: recent.scannedTo };
    // Everything up to here was committed before the query, so the query sees all of it: our
    // own appends, or (replicas) the store's newest seq, since the write lock makes every
    // lower seq committed too (event-store.ts).
    const appendedBefore = this.deps.replicated ? await this.deps.store.lastLocalSeq() : this.lastAppended;
    const servers = [...new Set([peerId, ...this.deps.routes.destinationsVia(peerId)])];
    const read = await this.deps.store.outboundEvents(this.deps.selfId, servers, after, limit);
    // What committed since is judged next time, with the member lists it brings.
    const candidates = read.filter((event) => event.localSeq <= appendedBefore);
    const events: StoredEvent[] = [];
    for (const event of candidates) {
      // Replicas: another process may have appended a membership event; it is observed before what follows it is judged.
      if (this.deps.replicated) this.observeMembers(event);
      if (await wanted(event)) events.push(event);
    }
    const scannedTo = read.length < limit ? Math.max(appendedBefore, after) : (candidates.at(-1)?.localSeq ?? after);
    return { events, scannedTo };
  }


  /**
   * The destinations of an event whose route runs through `peerId`: for our own events,
   * the chat's servers; for another origin's, on a transit, the servers the hop that
   * brought it named. An event whose destinations share a next hop crosses that link once.
   */
  async servedBy(event: StoredEvent, peerId: string): Promise<readonly string[]> {
    if (event.origin === peerId) return NONE;
    if (event.origin === this.deps.selfId) return (await this.ownHops(event)).get(peerId) ?? NONE;
    if (!this.deps.transit || event.forwardTo.length === 0) return NONE;
    const { policy } = await this.routingOf(event.chatId);
    return event.forwardTo.filter((server) => server !== this.deps.selfId && server !== event.origin && this.deps.routes.nextHop(server, policy) === peerId);
  }

  /** Our own events of a chat: the destinations behind each next hop (cached until a route or the chat's members change). */
  private async ownHops(event: StoredEvent): Promise<ReadonlyMap<string, readonly string[]>> {
    if (this.hopsVersion !== this.deps.routes.version) {
      this.hops.clear();
      this.hopsVersion = this.deps.routes.version;
    }
    // Passed over once, a chat stays so until its membership event is observed and rewinds the
    // links: a store read on another connection (PostgreSQL) can see the members earlier, and
    // sending on that would send these events again after the rewind.
    if (this.unplaced.has(event.chatId)) return this.passedOver(event);
    let hops = this.hops.get(event.chatId);
    if (!hops) {
      const { servers, policy } = await this.routingOf(event.chatId);
      if (servers.length === 0) return this.passedOver(event);
      const byHop = new Map<string, string[]>();
      for (const server of servers) {
        if (server === this.deps.selfId) continue;
        const hop = this.deps.routes.nextHop(server, policy);
        if (hop) byHop.set(hop, [...(byHop.get(hop) ?? []), server]);
      }
      if (this.hops.size >= CHATS_CACHED_MAX) this.hops.clear();
      this.hops.set(event.chatId, (hops = byHop));
    }
    return hops;
  }

  /** An own event of a chat whose members are not known yet: nothing to send now; remembered (not cached) for when they are. */
  private passedOver(event: StoredEvent): ReadonlyMap<string, readonly string[]> {
    this.unplaced.set(event.chatId, Math.min(this.unplaced.get(event.chatId) ?? Number.MAX_SAFE_INTEGER, event.localSeq));
    if (this.unplaced.size > CHATS_CACHED_MAX) this.unplaced.delete(this.unplaced.keys().next().value!);
    this.chats.delete(event.chatId);
    return new Map();
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
   * lacks a whole chat: a page per origin asked. Pages name nothing to pass on: what a
   * transit must forward comes in the link stream, which resends it after a route moves.
   * Answered to a member server (every origin), or to a transit that is our next hop to a
   * member server of the chat, and then only with what we would send it in the link
   * stream (a CTS sends only its own events); anyone else reads nothing of the chat.
   */
  async backfill(peerId: string, request: BackfillRequest): Promise<BackfillAnswer[] | undefined> {
    const { servers, policy } = await this.routingOf(request.chatId);
    if (servers.length === 0) return undefined;
    const member = servers.includes(peerId);
    if (!member && !(this.deps.routes.isTransit(peerId) && servers.some((server) => server !== this.deps.selfId && this.deps.routes.nextHop(server, policy) === peerId))) return undefined;
    const carried = member || this.deps.transit;
    if (!carried && request.origin && request.origin !== this.deps.selfId) return undefined;
    const origins = request.origin ? [request.origin] : carried ? await this.deps.store.chatOrigins(request.chatId) : [this.deps.selfId];
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
    return { events: this.signRunEnds(events).map(({ localSeq: _, forwardTo: __, ...event }) => event), more };
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
