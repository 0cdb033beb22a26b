import { randomBytes } from 'node:crypto';
import { EVENT_BODY_BYTES_MAX, eventId, signEventId, type Identity, type UnsignedEvent } from '../../crypto/index.js';
import { EventKind, type Event } from '../../proto/gen/trellis/v1/event.js';
import type { Random } from '../../gateways/faults/index.js';

/**
 * The generator of router/inbound.property.test.ts, shared with the frame fuzzer: runs of
 * validly signed events whose values sit at and beyond every bound (clocks, counters,
 * kinds, member lists, body sizes) and runs that skip, repeat or fork, drawn from a seeded
 * stream of decisions. It follows each origin's honest chain, so honest traffic goes on.
 * Honest events are causal, as a server's are: none is stamped before its chat's creation
 * (an event is judged against the members at its place in the log); earlier stamps are
 * among the hostile values.
 */
export interface Origin {
  id: string;
  identity: Identity;
}

export interface GeneratorOptions {
  random: Random;
  /** The origins that sign; the last `outsiders` of them are never members of a chat. */
  origins: readonly Origin[];
  outsiders?: number;
  /** Members besides the insider origins' users (a receiving node's own user). */
  members?: readonly string[];
  chats: readonly string[];
  /** Chains stop growing here, so the receiver's store stays small. */
  chainEventsMax: number;
  skewMs: number;
  /** The seq of an origin's head in a chat as the receiver stores it (0: none). */
  storedSeq(chatId: string, origin: string): Promise<number>;
}

export class InboundGenerator {
  private readonly random: Random;
  private readonly outsiders: number;
  /** What each origin has generated per chat (sent or not): the honest chain it extends. */
  private readonly generated = new Map<string, Event[]>();
  /** When each chat's creation was stamped, once its creator has made it. */
  private readonly createdAtMs = new Map<string, number>();

  constructor(private readonly options: GeneratorOptions) {
    this.random = options.random;
    this.outsiders = options.outsiders ?? 1;
  }

  private pick<T>(values: readonly T[]): T {
    return values[Math.floor(this.random() * values.length)]!;
  }

  private get insiderOrigins(): readonly Origin[] {
    return this.options.origins.slice(0, this.options.origins.length - this.outsiders);
  }

  /** The chats' members: the insider origins' users, and the extra members. */
  insiders(): string[] {
    return [...this.insiderOrigins.map((origin) => `user@${origin.id}`), ...(this.options.members ?? [])];
  }

  private creatorOf(chatId: string): Origin {
    return this.insiderOrigins[this.options.chats.indexOf(chatId) % this.insiderOrigins.length]!;
  }

  /** Values at their bounds, all legal: honest chains use these. */
  private legal(now: number) {
    return {
      hlcMs: [now, now, now, now + this.options.skewMs - 5_000],
      hlcCounter: [0, 0, 0, 1, 2 ** 31 - 1, 2 ** 31, 0xffff_ffff],
      kind: [EventKind.EVENT_KIND_MESSAGE_POSTED, EventKind.EVENT_KIND_MESSAGE_POSTED, EventKind.EVENT_KIND_MESSAGE_EDITED, 99, 0x7fff_ffff, EventKind.EVENT_KIND_MEMBERS_ADDED],
      bodyBytes: [0, 32, 32, 32, 4096, EVENT_BODY_BYTES_MAX],
    };
  }

  /** Beyond a bound, or against the chat's rules: each one must be refused. */
  private hostileEdits(now: number, origin: Origin): Array<Partial<UnsignedEvent>> {
    const outsider = !this.insiderOrigins.includes(origin);
    const firstInsider = this.insiderOrigins[0] ?? origin;
    return [
      ...(outsider ? [{ kind: EventKind.EVENT_KIND_MEMBERS_REMOVED, members: [`user@${firstInsider.id}`] }] : []),
      { hlcMs: now + this.options.skewMs + 5_000 },
      // Stamped before the chat's creation: no member list stands at its place in the log.
      { hlcMs: 0 },
      { hlcMs: now - 86_400_000 },
      { hlcMs: Number.MAX_SAFE_INTEGER, hlcCounter: 0xffff_ffff },
      { body: randomBytes(EVENT_BODY_BYTES_MAX + 1) },
      { kind: EventKind.EVENT_KIND_MEMBERS_ADDED, members: Array.from({ length: 1025 }, (_, i) => `u${i}@${origin.id}`) },
      { kind: EventKind.EVENT_KIND_CHAT_CREATED, members: this.insiders() },
      { members: ['not a member'], kind: EventKind.EVENT_KIND_MEMBERS_ADDED },
    ];
  }

  private unsignedAfter(chatId: string, origin: Origin, head: Event | undefined, now: number): UnsignedEvent {
    const values = this.legal(now);
    const creating = !head && origin === this.creatorOf(chatId);
    const kind = creating ? EventKind.EVENT_KIND_CHAT_CREATED : this.random() < 0.7 ? EventKind.EVENT_KIND_MESSAGE_POSTED : this.pick(values.kind);
    const hlcMs = Math.max(this.random() < 0.8 ? now : this.pick(values.hlcMs), this.createdAtMs.get(chatId) ?? 0);
    if (creating && !this.createdAtMs.has(chatId)) this.createdAtMs.set(chatId, hlcMs);
    return {
      chatId,
      origin: origin.id,
      seq: (head?.seq ?? 0) + 1,
      prev: head ? Buffer.from(head.id) : Buffer.alloc(0),
      hlcMs,
      hlcCounter: this.random() < 0.8 ? 0 : this.pick(values.hlcCounter),
      senderUser: `user@${origin.id}`,
      senderDevice: 'device',
      kind,
      members: kind === EventKind.EVENT_KIND_CHAT_CREATED || kind === EventKind.EVENT_KIND_MEMBERS_ADDED ? this.insiders() : [],
      body: randomBytes(this.random() < 0.9 ? 32 : this.pick(values.bodyBytes)),
      routingPolicy: 0,
    };
  }

  private withId(unsigned: UnsignedEvent): Event {
    return { ...unsigned, id: eventId(unsigned), signature: Buffer.alloc(0) };
  }

  /** Extends an origin's honest chain in a chat by `count` events. */
  private extend(chatId: string, origin: Origin, count: number, now: number): Event[] {
    const key = `${chatId}/${origin.id}`;
    const chain = this.generated.get(key) ?? [];
    for (let i = 0; i < count && chain.length < this.options.chainEventsMax; i++) chain.push(this.withId(this.unsignedAfter(chatId, origin, chain.at(-1), now)));
    this.generated.set(key, chain);
    return chain;
  }

  /**
   * One run: fresh honest events (some sent past a gap), a resend of what the receiver
   * lacks or already holds, or one hostile event off the chain's head (never kept in
   * the honest chain, so honest traffic goes on). Signed at its end, mostly correctly.
   */
  async run(now: number): Promise<Event[]> {
    const chatId = this.pick(this.options.chats);
    // Nobody posts in a chat before its creator has made it.
    const origin = this.createdAtMs.has(chatId) ? this.pick(this.options.origins) : this.creatorOf(chatId);
    const before = (this.generated.get(`${chatId}/${origin.id}`) ?? []).length;
    const shape = this.random();
    let events: Event[];
    if (shape < 0.35) {
      const chain = this.extend(chatId, origin, 1 + Math.floor(this.random() * 6), now);
      events = chain.slice(before);
      // A skip: the first of them stay behind, so the rest lie past a gap (sometimes far past).
      if (this.random() < 0.3) events = events.slice(1 + Math.floor(this.random() * 3));
      if (this.random() < 0.05) events = this.extend(chatId, origin, 24, now).slice(-2);
    } else if (shape < 0.75) {
      const chain = this.generated.get(`${chatId}/${origin.id}`) ?? [];
      const stored = await this.options.storedSeq(chatId, origin.id);
      const from = this.random() < 0.8 ? stored : Math.floor(this.random() * chain.length);
      events = chain.slice(from, from + 1 + Math.floor(this.random() * 8));
    } else {
      const chain = this.extend(chatId, origin, before === 0 ? 1 : 0, now);
      const stored = await this.options.storedSeq(chatId, origin.id);
      if (stored > 0 && this.random() < 0.3) {
        // A fork of what the receiver already stored: another event at its head's seq.
        events = [this.withId({ ...this.unsignedAfter(chatId, origin, chain[stored - 2], now), body: randomBytes(8) })];
      } else {
        // An outsider's own chain waits, held, for a change that never adds it: its hostile event follows what is stored, to be judged.
        const after = this.insiderOrigins.includes(origin) ? chain.at(-1) : chain[stored - 1];
        events = [this.withId({ ...this.unsignedAfter(chatId, origin, after, now), ...this.pick(this.hostileEdits(now, origin)) })];
      }
    }
    if (events.length === 0) return [];
    const last = events.at(-1)!;
    const signature = this.random() < 0.03 ? randomBytes(64) : signEventId(origin.identity, last.id);
    return [...events.slice(0, -1), { ...last, signature }];
  }
}
