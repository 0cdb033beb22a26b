import { checkEventShape, checkRun, EventError, MEMBERSHIP_KINDS, type EventErrorCode } from '../crypto/index.js';
import { EventKind } from '../proto/gen/trellis/v1/event.js';
import { compareLogPlace, heldEventBytes, isDataError, serverOfMember, type AuditEntry, type EventStore, type HeldEvent, type LogPlace, type StoredEvent, type CarriedEvent, type LinkFence } from '../store/index.js';
import type { ChainHeads } from './chain-heads.js';
import type { HybridClock } from './clock.js';
import { chainKey, PendingHolds, type HeldEvents } from './held-events.js';
import { StoreError } from '../store/index.js';
import { handedOver, inChat, type ForwardRoutes } from './queues/forwards.js';
import type { LinkErrorCode } from './errors.js';
import type { SerialQueue } from './serial.js';

export interface ChainGap {
  chatId: string;
  origin: string;
  /** The first seq this node lacks. */
  fromSeq: number;
}

export interface InboundOutcome {
  appended: StoredEvent[];
  /** Events this node already held: a resend that was not needed. */
  duplicates: number;
  /** One refusal per run (or the part of a run from the refused event on). */
  refused: EventError[];
  gaps: ChainGap[];
  /** Chats this node holds events of but not their creation: ask for all of their chains. */
  syncs: string[];
  /** Stored events that a peer now asks us to pass on to more servers (a route moved onto us). */
  reforwarded: Array<{ localSeq: number; forwardTo: string[] }>;
  /** Destinations a peer named that a transit does not pass events on to (router/queues/forwards.ts). */
  forwardsRefused: number;
}

export interface OpenRequests {
  gaps: ChainGap[];
  syncs: string[];
}

export interface InboundDeps {
  store: EventStore;
  heads: ChainHeads;
  serial: SerialQueue;
  clock: HybridClock;
  held: HeldEvents;
  /** The Ed25519 key of an origin server, if this node knows it. */
  originKey(origin: string): Promise<Uint8Array | undefined>;
  onAppended(events: StoredEvent[]): void;
  /** Stored events whose destinations grew: links look at them again. */
  onReforwarded(events: ReadonlyArray<{ localSeq: number; forwardTo: string[] }>): void;
  /** Journals a refusal; refusals of one peer are coalesced under a flood. */
  audit(entry: AuditEntry, coalesceKey?: string): Promise<void>;
  /** Replicas: the lease this process holds on the peer's link; every write of what it brought carries it. */
  fenceOf(peerId: string): LinkFence | undefined;
  /** Transits: what a peer may hand over to us, judged by our routes and directory. */
  forwardRoutes: ForwardRoutes;
}

type Cursor = { peerId: string; linkSeq: number };

/** Held events read back at once when a chain can move on; the rest follow in the next round. */
const RELEASE_EVENTS_MAX = 1024;
/** Member lists cached per chat; past it the cache starts over from the store. */
const MEMBERS_CACHED_MAX = 100_000;
/** Servers outside a chat whose standing is cached with its member list (each costs one store read). */
const OUTSIDERS_CACHED_MAX = 64;

/** A chat's current members, their servers, and the log place of the membership event that set them. */
interface Membership {
  members: string[];
  servers: ReadonlySet<string>;
  at: LogPlace;
  /** Standings of origins outside `servers` for places after `at`: the same for every such place, so asked once. */
  outsiders: Map<string, Standing>;
}

/** Where an event's origin stands in its chat at the event's place in the log ('before-chat': placed before its creation). */
type Standing = 'member' | 'left' | 'not-yet' | 'before-chat';

function groupByChain(events: readonly CarriedEvent[]): CarriedEvent[][] {
  const runs = new Map<string, CarriedEvent[]>();
  for (const event of events) {
    const key = chainKey(event.chatId, event.origin);
    const run = runs.get(key);
    if (run) run.push(event);
    else runs.set(key, [event]);
  }
  return [...runs.values()];
}

/**
 * Runs in arrival order with each run that continues an earlier one of its chain (the
 * next seq, linked by `prev`) appended to it; any other run of a chain stays apart.
 */
function joinFollowingRuns(runs: readonly CarriedEvent[][]): CarriedEvent[][] {
  const joined: CarriedEvent[][] = [];
  const latest = new Map<string, CarriedEvent[]>();
  for (const run of runs) {
    const key = chainKey(run[0]!.chatId, run[0]!.origin);
    const before = latest.get(key);
    const last = before?.at(-1);
    if (last && run[0]!.seq === last.seq + 1 && run[0]!.prev.equals(last.id)) {
      before!.push(...run);
      continue;
    }
    const copy = [...run];
    joined.push(copy);
    latest.set(key, copy);
  }
  return joined;
}

/** Events that follow `head` without a break, from the front of a seq-ordered list. */
function contiguousAfter(head: { seq: number; id: Uint8Array } | undefined, events: readonly CarriedEvent[]): CarriedEvent[] {
  const out: CarriedEvent[] = [];
  let seq = head?.seq ?? 0;
  let id: Uint8Array = head?.id ?? Buffer.alloc(0);
  for (const event of events) {
    if (event.seq <= seq) continue;
    if (event.seq !== seq + 1 || !event.prev.equals(id)) break;
    out.push(event);
    seq = event.seq;
    id = event.id;
  }
  return out;
}

const serversOf = (members: readonly string[]) => new Set(members.map(serverOfMember));

/**
 * What one round of placement decided. A membership change is committed before any
 * later event of its chat is judged, so within a round a chat changes at most once and
 * the rest of its events wait for the next round (membership events are rare).
 */
class Stage {
  readonly append: CarriedEvent[][] = [];
  readonly hold: HeldEvent[] = [];
  readonly deferred: CarriedEvent[][] = [];
  /** Events we hold already that a peer asks us to pass on (to add to their destinations). */
  readonly reforward: CarriedEvent[] = [];
  /** Chats whose member list this round changes (created included). */
  readonly changedChats = new Set<string>();
  /** Chains whose held events this round may free: those it appends to, and every chain of a chat it creates. */
  readonly touched = new Map<string, { chatId: string; origin: string }>();
  /** Held events a round refused when releasing them: dropped up to this seq, per chain. */
  readonly dropUpto = new Map<string, number>();
  /** What this round chose to hold, counted against the bounds before it is stored. */
  readonly holding = new PendingHolds();

  touch(chatId: string, origin: string): void {
    this.touched.set(chainKey(chatId, origin), { chatId, origin });
  }

  /** Whether this round already appends (or defers) events of the chain: its held ones wait for the next round. */
  places(chatId: string, origin: string): boolean {
    return [...this.append, ...this.deferred].some((run) => run[0]!.chatId === chatId && run[0]!.origin === origin);
  }
}

/**
 * The receiving half of every link. Authenticates each (chat, origin) run of a batch,
 * then places it by the chat's rules: events that follow their chain and pass the
 * membership rules are appended; events beyond a gap, or of a chat whose creation has
 * not arrived, are held within bounds; everything else is refused with a code, without
 * failing the batch's other runs. A refusal never stops the link: the cursor moves on.
 *
 * Membership authority: a chat-created event must open its origin's chain, list its
 * origin among the members, and be the chat's first. Every other event is judged against
 * the membership at its place in the log (the latest membership event before it in log
 * order): from a server that had left the chat there, it is refused; a members-added or
 * -removed event from a server that was never in it is refused; any other event from a
 * server not in it yet is held, as the change that adds it may still be on its way.
 */
export class Inbound {
  private readonly membership = new Map<string, Membership | null>();

  constructor(private readonly deps: InboundDeps) {}

  /** Loads the held tally and places whatever a crash left placeable. */
  async load(): Promise<void> {
    this.deps.held.load(await this.deps.store.heldSummary());
    const outcome = emptyOutcome();
    await this.deps.serial.run(() => this.place([], '', outcome, undefined, this.deps.held.heldChains()));
    await this.journal(undefined, outcome);
    if (outcome.appended.length > 0) this.deps.onAppended(outcome.appended);
  }

  async accept(peerId: string, events: readonly CarriedEvent[], cursor?: Cursor): Promise<InboundOutcome> {
    return this.acceptFrames(peerId, [events], cursor);
  }

  /**
   * Several frames of one peer, in the order received, stored in one transaction with the
   * cursor of the last: what a link read while it was storing the frames before them.
   * Each frame's runs are checked on their own, as each ends at a signature of its own;
   * a chain's runs that follow each other across frames are then placed as one.
   */
  async acceptFrames(peerId: string, frames: ReadonlyArray<readonly CarriedEvent[]>, cursor?: Cursor): Promise<InboundOutcome> {
    const outcome = emptyOutcome();
    const authentic: CarriedEvent[][] = [];
    const unverified: CarriedEvent[][] = [];
    for (const events of frames) {
      for (const run of groupByChain(this.handedOver(peerId, events, outcome))) {
        try {
          const key = await this.deps.originKey(run[0]!.origin);
          if (key) authentic.push(this.withinClockBound(checkRun(run, key), outcome));
          else unverified.push(run.map((event) => (checkEventShape(event), event)));
        } catch (error) {
          if (!(error instanceof EventError)) throw error;
          outcome.refused.push(error);
        }
      }
    }
    const runs = joinFollowingRuns(authentic.filter((run) => run.length > 0));
    await this.deps.serial.run(() => this.place(runs, peerId, outcome, cursor, [], unverified));
    await this.journal(peerId, outcome);
    if (outcome.appended.length > 0) this.deps.onAppended(outcome.appended);
    if (outcome.reforwarded.length > 0) this.deps.onReforwarded(outcome.reforwarded);
    return outcome;
  }

  /** Events this node appended by any path (its own posts too): a membership change is read again. */
  appended(events: readonly StoredEvent[]): void {
    for (const event of events) if (MEMBERSHIP_KINDS.has(event.kind)) this.membership.delete(event.chatId);
  }

  /** One journal entry per refused run, and one for the destinations refused, coalesced per peer. */
  private async journal(peerId: string | undefined, outcome: InboundOutcome): Promise<void> {
    for (const refusal of outcome.refused) {
      await this.deps.audit({ kind: 'event-refused', code: refusal.code, detail: refusal.message, ...(peerId ? { peer: peerId } : {}) }, peerId ?? 'held');
    }
    if (outcome.forwardsRefused > 0) {
      const detail = `${outcome.forwardsRefused} forward destination(s) refused: not servers of the chat, the sender, us, the origin, routed back through the sender, or past the bound`;
      await this.deps.audit({ kind: 'forward-refused', code: 'forward-refused' satisfies LinkErrorCode, detail, ...(peerId ? { peer: peerId } : {}) }, peerId ?? 'held');
    }
  }

  /** What a transit keeps of the destinations the peer names for each event; the rest are counted, to journal. */
  private handedOver(peerId: string, events: readonly CarriedEvent[], outcome: InboundOutcome): CarriedEvent[] {
    const { events: kept, refused } = handedOver(events, peerId, this.deps.forwardRoutes);
    outcome.forwardsRefused += refused;
    return kept;
  }

  /**
   * What to ask a newly linked peer for: gaps in chains it originates, brought us, or
   * shares a chat with, and chats it brought us events of without their creation.
   */
  async openRequests(peerId: string): Promise<OpenRequests> {
    const requests: OpenRequests = { gaps: [], syncs: [] };
    for (const chain of this.deps.held.heldChains()) {
      const members = await this.membersOf(chain.chatId);
      if (!members) {
        if (chain.peer === peerId && !requests.syncs.includes(chain.chatId)) requests.syncs.push(chain.chatId);
        continue;
      }
      if (chain.origin !== peerId && chain.peer !== peerId && !serversOf(members).has(peerId)) continue;
      const head = await this.deps.heads.get(chain.chatId, chain.origin);
      requests.gaps.push({ chatId: chain.chatId, origin: chain.origin, fromSeq: (head?.seq ?? 0) + 1 });
    }
    return requests;
  }

  /**
   * The record of a server whose events were held unchecked has arrived: its held events
   * are checked now, segment by segment (each ends at a signature it carried), and placed
   * or refused like any others, each as brought by the peer that brought its signed event:
   * what is held again stays counted against that peer, who is asked for what is missing.
   * Replicas: the drop carries the fence of the peer that brought the chain's latest held
   * event; if another replica holds that link now, the chain is left to it, untouched.
   */
  async originKnown(origin: string): Promise<InboundOutcome[]> {
    const outcomes: InboundOutcome[] = [];
    for (const { chatId } of this.deps.held.heldChains().filter((chain) => chain.origin === origin)) {
      const held = await this.deps.serial.run(async () => {
        const events = await this.deps.store.heldAfter(chatId, origin, 0, this.deps.held.bounds.eventsPerChain);
        if (events.length === 0) return events;
        const last = events.at(-1)!;
        const { dropped, nextSeq } = await this.deps.store.dropHeld(chatId, origin, last.event.seq, this.deps.fenceOf(last.peer));
        this.deps.held.dropped(chatId, origin, dropped, nextSeq);
        return events;
      }).catch((error: unknown) => {
        if (error instanceof StoreError && error.code === 'fenced') return [];
        throw error;
      });
      for (const segment of signedSegments(held)) outcomes.push(await this.accept(segment.at(-1)!.peer, segment.map(({ event }) => event)));
    }
    return outcomes;
  }

  /** Keeps the part of a run stamped within the skew bound; the rest is refused. */
  private withinClockBound(run: CarriedEvent[], outcome: InboundOutcome): CarriedEvent[] {
    const tooFar = run.findIndex((event) => this.deps.clock.isTooFarAhead(event.hlcMs));
    if (tooFar === -1) return run;
    const event = run[tooFar]!;
    refuse(outcome, 'clock-skew', `stamped ${this.deps.clock.aheadBy(event.hlcMs)} ms ahead of our clock, over the ${this.deps.clock.maxSkewMs} ms bound`, event, run.length - tooFar);
    return run.slice(0, tooFar);
  }

  /** Inside the serial queue: places runs round by round, each round one commit, until nothing more moves. */
  private async place(
    runs: CarriedEvent[][],
    peerId: string,
    outcome: InboundOutcome,
    cursor: Cursor | undefined,
    heldChains: Array<{ chatId: string; origin: string }>,
    unverified: CarriedEvent[][] = [],
  ): Promise<void> {
    let pending = runs;
    let candidates = heldChains;
    let cursorLeft = cursor;
    // Events of a server whose record has not arrived are held unchecked (originKnown checks them).
    let unchecked = unverified;
    while (pending.length > 0 || candidates.length > 0 || cursorLeft || unchecked.length > 0) {
      const stage = new Stage();
      for (const run of unchecked) this.hold(run, peerId, (await this.deps.heads.get(run[0]!.chatId, run[0]!.origin))?.seq ?? 0, stage, outcome);
      unchecked = [];
      // A chain's second run in one round waits for the next: it is judged against the head the first one moves.
      const placed = new Set<string>();
      for (const run of pending) {
        const key = chainKey(run[0]!.chatId, run[0]!.origin);
        if (placed.has(key)) stage.deferred.push(run);
        else await this.placeRun(run, peerId, stage, outcome);
        placed.add(key);
      }
      for (const run of await this.releasable(candidates, stage, outcome)) {
        const refusedBefore = outcome.refused.length;
        await this.placeRun(run, peerId, stage, outcome);
        // Held events refused on release can never be placed: they leave the held set.
        if (outcome.refused.length > refusedBefore) stage.dropUpto.set(chainKey(run[0]!.chatId, run[0]!.origin), run.at(-1)!.seq);
      }
      // The cursor goes with the round that places the last of the frames' events: a crash between rounds resends the rest.
      const cursorNow = stage.deferred.length === 0 ? cursorLeft : undefined;
      await this.commit(stage, outcome, cursorNow, this.deps.fenceOf(peerId));
      if (cursorNow) cursorLeft = undefined;
      pending = stage.deferred;
      candidates = [...stage.touched.values()];
    }
  }

  private async placeRun(run: CarriedEvent[], peerId: string, stage: Stage, outcome: InboundOutcome): Promise<void> {
    const { chatId, origin } = run[0]!;
    const head = await this.deps.heads.get(chatId, origin);
    const headSeq = head?.seq ?? 0;
    const fresh = run.filter((event) => event.seq > headSeq);
    outcome.duplicates += run.length - fresh.length;
    for (const event of run) if (event.seq <= headSeq && event.forwardTo?.length) stage.reforward.push(event);
    const atHead = head && run.find((event) => event.seq === head.seq);
    if (atHead && !atHead.id.equals(head.id)) return refuse(outcome, 'bad-chain', 'conflicts with the stored chain', atHead, run.length);
    const next = contiguousAfter(head, fresh);
    if (fresh.length > 0 && next.length === 0 && fresh[0]!.seq === headSeq + 1) return refuse(outcome, 'bad-chain', 'does not link to the stored chain', fresh[0]!, fresh.length);
    const waiting = next.length > 0 ? await this.admit(next, stage, outcome) : [];
    const beyond = fresh.slice(next.length);
    const heldBefore = stage.hold.length;
    this.hold([...waiting, ...beyond], peerId, headSeq, stage, outcome);
    if (beyond.length > 0 && stage.hold.length > heldBefore + waiting.length) {
      outcome.gaps.push({ chatId, origin, fromSeq: (next.at(-1)?.seq ?? headSeq) + 1 });
    }
  }

  /**
   * Applies the chat's rules to events that follow their chain. Returns the part that
   * must wait for the chat's creation; what passes goes to the stage's appends.
   */
  private async admit(events: CarriedEvent[], stage: Stage, outcome: InboundOutcome): Promise<CarriedEvent[]> {
    const { chatId } = events[0]!;
    if (stage.changedChats.has(chatId)) {
      stage.deferred.push(events);
      return [];
    }
    const membership = await this.membershipOf(chatId);
    const accepted: CarriedEvent[] = [];
    const done = (waiting: CarriedEvent[] = []): CarriedEvent[] => {
      if (accepted.length > 0) stage.append.push(accepted);
      return waiting;
    };
    const waitForChat = (index: number) => {
      if (!outcome.syncs.includes(chatId)) outcome.syncs.push(chatId);
      return done(events.slice(index));
    };
    for (const [index, event] of events.entries()) {
      const refusal = event.kind === EventKind.EVENT_KIND_CHAT_CREATED ? this.creationRefusal(event, membership) : membership && this.standingRefusal(event, await this.standing(event, membership));
      if (refusal === 'wait') return waitForChat(index);
      if (refusal) {
        refuse(outcome, refusal[0], refusal[1], event, events.length - index);
        return done();
      }
      if (!membership && event.kind !== EventKind.EVENT_KIND_CHAT_CREATED) return waitForChat(index);
      accepted.push(event);
      if (MEMBERSHIP_KINDS.has(event.kind)) {
        stage.changedChats.add(chatId);
        if (index + 1 < events.length) stage.deferred.push(events.slice(index + 1));
        return done();
      }
    }
    return done();
  }

  /** Why a chat-created event is refused, if it is (`membership` null: the chat is not created yet). */
  private creationRefusal(event: CarriedEvent, membership: Membership | null): [EventErrorCode, string] | undefined {
    if (membership) return ['chat-exists', 'a chat-created event for a chat that exists'];
    if (event.seq !== 1) return ['malformed', "chat-created must open its origin's chain"];
    if (!serversOf(event.members).has(event.origin)) return ['not-a-member', "the creator's server is not among the members"];
    return undefined;
  }

  /** Why any other event is refused by its origin's standing at its place, if it is; 'wait' to hold it. */
  private standingRefusal(event: CarriedEvent, standing: Standing): [EventErrorCode, string] | 'wait' | undefined {
    if (standing === 'member') return undefined;
    if (standing === 'left') return ['not-a-member', "its server had left the chat at the event's place in the log"];
    if (standing === 'before-chat') return ['not-a-member', "stamped before the chat's creation: no member list stands at its place in the log"];
    return MEMBERSHIP_KINDS.has(event.kind) ? ['not-a-member', 'a membership change by a server outside the chat'] : 'wait';
  }

  /** Whether an event is held only until a membership change makes its origin a member (standingRefusal's 'wait'). */
  private async waitsForMembership(event: CarriedEvent): Promise<boolean> {
    const membership = event.kind === EventKind.EVENT_KIND_CHAT_CREATED ? null : await this.membershipOf(event.chatId);
    return membership !== null && this.standingRefusal(event, await this.standing(event, membership)) === 'wait';
  }

  /**
   * The origin's standing at the event's place. The common case reads nothing: an event
   * after the chat's latest membership change, from a server in it. Anything else asks the
   * store for the membership events before the event's place.
   */
  private async standing(event: CarriedEvent, membership: Membership): Promise<Standing> {
    const after = compareLogPlace(event, membership.at) > 0;
    if (after && membership.servers.has(event.origin)) return 'member';
    const known = after ? membership.outsiders.get(event.origin) : undefined;
    if (known) return known;
    const before = await this.deps.store.membershipBefore(event.chatId, event, event.origin);
    const standing = standingFrom(after, before, event.origin);
    if (after && membership.outsiders.size < OUTSIDERS_CACHED_MAX) membership.outsiders.set(event.origin, standing);
    return standing;
  }

  /** Holds what cannot be placed yet, within the bounds; past them the rest of the run is refused. */
  private hold(events: CarriedEvent[], peerId: string, headSeq: number, stage: Stage, outcome: InboundOutcome): void {
    for (const [index, event] of events.entries()) {
      // What the store will keep of it, so this round's count and the stored tally agree (a long member list counts whole).
      const bytes = heldEventBytes(event);
      const why = this.deps.held.refusal(event.chatId, event.origin, peerId, event.seq, headSeq, bytes, stage.holding);
      if (why) return refuse(outcome, 'too-far-ahead', why, event, events.length - index);
      stage.holding.add(chainKey(event.chatId, event.origin), peerId, bytes);
      stage.hold.push({ event, peer: peerId });
    }
  }

  /** Chains among `candidates` whose first held event now follows the stored head: their held events as runs. */
  private async releasable(candidates: Array<{ chatId: string; origin: string }>, stage: Stage, outcome: InboundOutcome): Promise<CarriedEvent[][]> {
    const runs: CarriedEvent[][] = [];
    for (const { chatId, origin } of candidates) {
      const minSeq = this.deps.held.minSeq(chatId, origin);
      if (minSeq === undefined || !(await this.membersOf(chatId)) || !(await this.deps.originKey(origin))) continue;
      // The head moves only at commit: releasing now could place the same events twice in one round.
      if (stage.places(chatId, origin)) {
        stage.touch(chatId, origin);
        continue;
      }
      const head = await this.deps.heads.get(chatId, origin);
      const headSeq = head?.seq ?? 0;
      if (minSeq > headSeq + 1) continue;
      const held = (await this.deps.store.heldAfter(chatId, origin, headSeq, RELEASE_EVENTS_MAX)).map(({ event }) => event);
      const run = contiguousAfter(head, held);
      // Held for a server not in the chat yet: it waits for the chat's next membership change, which touches it again.
      if (run.length > 0 && (await this.waitsForMembership(run[0]!))) continue;
      if (run.length > 0) runs.push(run);
      else if (held[0]?.seq === headSeq + 1) {
        // Held at the next seq yet not linking to the head: a fork that lost; it can never be placed.
        refuse(outcome, 'bad-chain', 'a held event does not link to the stored chain', held[0], 1);
        stage.dropUpto.set(chainKey(chatId, origin), headSeq + 1);
      }
      stage.touch(chatId, origin);
    }
    return runs;
  }

  /**
   * One transaction for the round's appends and the link cursor. If the store refuses a
   * value (a data or constraint error), each run is retried alone and only the runs it
   * refuses are dropped: one bad event never takes down its batch, let alone the link.
   */
  private async commit(stage: Stage, outcome: InboundOutcome, cursor: Cursor | undefined, fence: LinkFence | undefined): Promise<void> {
    const fenced = fence ? { fence } : {};
    await this.narrowToChats(stage, outcome);
    for (const row of await this.deps.store.hold(stage.hold, fence)) this.deps.held.add(row.chatId, row.origin, row.peer, row.seq, row.bytes);
    outcome.reforwarded.push(...(await this.deps.store.addForwards(stage.reforward.map((event) => ({ id: event.id, forwardTo: event.forwardTo! })), fence)));
    let runs = stage.append;
    if (runs.length === 0 && !cursor) return this.dropPlacedHeld(stage, outcome, fence);
    try {
      outcome.appended.push(...(await this.deps.store.append({ events: runs.flat(), ...(cursor ? { cursor } : {}), ...fenced })));
    } catch (error) {
      if (!isDataError(error)) throw error;
      runs = await this.appendRunByRun(runs, outcome, fence);
      if (cursor) await this.deps.store.append({ events: [], cursor, ...fenced });
    }
    for (const chatId of stage.changedChats) this.membership.delete(chatId);
    for (const run of runs) {
      for (const event of run) this.deps.clock.observe({ ms: event.hlcMs, counter: event.hlcCounter });
      const last = run.at(-1)!;
      this.deps.heads.advance(last.chatId, last.origin, { seq: last.seq, id: last.id });
      stage.touch(last.chatId, last.origin);
    }
    for (const chatId of stage.changedChats) {
      for (const { origin } of this.deps.held.chainsOf(chatId)) stage.touch(chatId, origin);
    }
    await this.dropPlacedHeld(stage, outcome, fence);
  }

  /**
   * The round's events keep only destinations that are servers of their chat, judged on its
   * members before the round (a membership change is the last event of its chat in a round).
   * A held event of a chat not known yet keeps servers we know, and is judged again when
   * placed. A resend that names nothing new is left with nothing to add: nothing is written.
   */
  private async narrowToChats(stage: Stage, outcome: InboundOutcome): Promise<void> {
    const held = stage.hold.map(({ event }) => event);
    const servers = new Map<string, ReadonlySet<string> | undefined>();
    for (const event of [...stage.append.flat(), ...stage.reforward, ...held]) {
      if (!event.forwardTo?.length || servers.has(event.chatId)) continue;
      const members = await this.membersOf(event.chatId);
      servers.set(event.chatId, members ? serversOf(members) : undefined);
    }
    if (servers.size === 0) return;
    const judge = (events: readonly CarriedEvent[]) => {
      const narrowed = inChat(events, (chatId) => servers.get(chatId), (event) => MEMBERSHIP_KINDS.has(event.kind), this.deps.forwardRoutes);
      outcome.forwardsRefused += narrowed.refused;
      return narrowed.events;
    };
    stage.append.forEach((run, index) => (stage.append[index] = judge(run)));
    const reforward = judge(stage.reforward).filter((event) => event.forwardTo?.length);
    stage.reforward.splice(0, stage.reforward.length, ...reforward);
    judge(held).forEach((event, index) => (stage.hold[index] = { event, peer: stage.hold[index]!.peer }));
  }

  private async appendRunByRun(runs: CarriedEvent[][], outcome: InboundOutcome, fence: LinkFence | undefined): Promise<CarriedEvent[][]> {
    const stored: CarriedEvent[][] = [];
    for (const run of runs) {
      try {
        outcome.appended.push(...(await this.deps.store.append({ events: run, ...(fence ? { fence } : {}) })));
        stored.push(run);
      } catch (error) {
        if (!isDataError(error)) throw error;
        refuse(outcome, 'store-refused', `the store refused a value (${(error as { code?: string }).code})`, run[0]!, run.length);
      }
    }
    return stored;
  }

  /** Held events at or below a chain's head are placed (or overtaken): they go, and the tally with them. */
  private async dropPlacedHeld(stage: Stage, outcome: InboundOutcome, fence: LinkFence | undefined): Promise<void> {
    for (const [key, { chatId, origin }] of stage.touched) {
      const minSeq = this.deps.held.minSeq(chatId, origin);
      if (minSeq === undefined) continue;
      const upto = Math.max((await this.deps.heads.get(chatId, origin))?.seq ?? 0, stage.dropUpto.get(key) ?? 0);
      if (minSeq > upto) continue;
      const { dropped, nextSeq, reforwarded } = await this.deps.store.dropHeld(chatId, origin, upto, fence);
      this.deps.held.dropped(chatId, origin, dropped, nextSeq);
      outcome.reforwarded.push(...reforwarded);
    }
  }

  /** The chat's current member list, or null before its creation is stored. */
  private async membersOf(chatId: string): Promise<string[] | null> {
    return (await this.membershipOf(chatId))?.members ?? null;
  }

  private async membershipOf(chatId: string): Promise<Membership | null> {
    let membership = this.membership.get(chatId);
    if (membership === undefined) {
      const stored = await this.deps.store.chatMembership(chatId);
      membership = stored ? { ...stored, servers: serversOf(stored.members), outsiders: new Map() } : null;
      if (this.membership.size >= MEMBERS_CACHED_MAX) this.membership.clear();
      this.membership.set(chatId, membership);
    }
    return membership;
  }
}

/** An origin's standing, from the membership events before the event's place (`after`: the place follows the chat's latest change). */
function standingFrom(after: boolean, before: { members: string[] | undefined; wasMember: boolean }, origin: string): Standing {
  if (!after && !before.members) return 'before-chat';
  if (!after && serversOf(before.members!).has(origin)) return 'member';
  return before.wasMember ? 'left' : 'not-yet';
}

/** Held events cut after each event that carries a signature: each piece can be checked alone. */
function signedSegments(events: readonly HeldEvent[]): HeldEvent[][] {
  const segments: HeldEvent[][] = [];
  let current: HeldEvent[] = [];
  for (const held of events) {
    current.push(held);
    if (held.event.signature.length > 0) {
      segments.push(current);
      current = [];
    }
  }
  if (current.length > 0) segments.push(current);
  return segments;
}

function emptyOutcome(): InboundOutcome {
  return { appended: [], duplicates: 0, refused: [], gaps: [], syncs: [], reforwarded: [], forwardsRefused: 0 };
}

/** Records one refusal for `event` and the `count` events of its run from it on. */
function refuse(outcome: InboundOutcome, code: EventErrorCode, why: string, event: CarriedEvent, count: number): void {
  const more = count > 1 ? ` and the ${count - 1} after it` : '';
  outcome.refused.push(new EventError(code, `${why} (chat ${event.chatId}, origin ${event.origin}, seq ${event.seq}${more})`));
}
