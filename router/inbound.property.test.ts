import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cryptoReady, EVENT_BODY_BYTES_MAX, eventId, identityFromSeed, signEventId, type Identity, type UnsignedEvent } from '../crypto/index.js';
import { EventKind, type Event } from '../proto/gen/trellis/v1/event.js';
import { openPglite, SqlEventStore, type EventStore, type SqlDriver } from '../store/index.js';
import { ChainHeads } from './chain-heads.js';
import { HybridClock } from './clock.js';
import { HeldEvents, type HeldBounds } from './held-events.js';
import { Inbound } from './inbound.js';
import { SerialQueue } from './serial.js';

/**
 * The inbound path under 10,000 seeded batches of validly signed events whose values sit
 * at and beyond every bound: clocks, counters, kinds, member lists, body sizes, and runs
 * that skip, repeat or fork. After every batch the store's invariants must hold.
 */
const SEED = 0x7e11_15;
const BATCHES = 10_000;
const CHATS = 3;
const ORIGINS = 4;
/** Chains stop growing here, so the store (and each invariant check) stays small. */
const CHAIN_EVENTS_MAX = 120;
const SKEW_MS = 300_000;
const BOUNDS: HeldBounds = { eventsPerChain: 16, bytesPerChain: 512 * 1024, eventsPerPeer: 40, bytesPerPeer: 1024 * 1024 };
const PEERS = ['peer-1', 'peer-2'];

/** mulberry32: the generation is stateful (it follows each chain), so it needs a seeded stream of decisions. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

interface Origin {
  id: string;
  identity: Identity;
}

describe('the inbound path under hostile, validly signed batches', () => {
  let driver: SqlDriver;
  let store: EventStore;
  const random = prng(SEED);
  const pick = <T>(values: readonly T[]): T => values[Math.floor(random() * values.length)]!;
  const origins: Origin[] = Array.from({ length: ORIGINS }, (_, i) => ({ id: `origin-${i}`, identity: identityFromSeed(Buffer.alloc(32, i + 1)) }));
  const chats = Array.from({ length: CHATS }, (_, i) => `chat-${i}`);
  /** What each origin has generated per chat (sent or not): the honest chain it extends. */
  const generated = new Map<string, Event[]>();

  beforeAll(async () => {
    await cryptoReady();
    driver = await openPglite();
    store = new SqlEventStore(driver);
  });
  afterAll(() => store?.close());

  /** Values at their bounds, all legal: honest chains use these. */
  function legal(now: number) {
    return {
      hlcMs: [now, now, now, now - 86_400_000, 0, now + SKEW_MS - 5_000],
      hlcCounter: [0, 0, 0, 1, 2 ** 31 - 1, 2 ** 31, 0xffff_ffff],
      kind: [EventKind.EVENT_KIND_MESSAGE_POSTED, EventKind.EVENT_KIND_MESSAGE_POSTED, EventKind.EVENT_KIND_MESSAGE_EDITED, 99, 0x7fff_ffff, EventKind.EVENT_KIND_MEMBERS_ADDED],
      bodyBytes: [0, 32, 32, 32, 4096, EVENT_BODY_BYTES_MAX],
    };
  }

  /** Beyond a bound, or against the chat's rules: each one must be refused. */
  function hostileEdits(now: number, origin: Origin): Array<Partial<UnsignedEvent>> {
    const outsider = origin === origins.at(-1);
    return [
      ...(outsider ? [{ kind: EventKind.EVENT_KIND_MEMBERS_REMOVED, members: [`user@${origins[0]!.id}`] }] : []),
      { hlcMs: now + SKEW_MS + 5_000 },
      { hlcMs: Number.MAX_SAFE_INTEGER, hlcCounter: 0xffff_ffff },
      { body: randomBytes(EVENT_BODY_BYTES_MAX + 1) },
      { kind: EventKind.EVENT_KIND_MEMBERS_ADDED, members: Array.from({ length: 1025 }, (_, i) => `u${i}@${origin.id}`) },
      { kind: EventKind.EVENT_KIND_CHAT_CREATED, members: insiders() },
      { members: ['not a member'], kind: EventKind.EVENT_KIND_MEMBERS_ADDED },
    ];
  }

  /** Origins 0..2 are the chats' members; the last origin never is. */
  const insiders = () => origins.slice(0, -1).map((origin) => `user@${origin.id}`);
  const creatorOf = (chatId: string) => origins[chats.indexOf(chatId) % (origins.length - 1)]!;

  function unsignedAfter(chatId: string, origin: Origin, head: Event | undefined, now: number): UnsignedEvent {
    const values = legal(now);
    const creating = !head && origin === creatorOf(chatId);
    const kind = creating ? EventKind.EVENT_KIND_CHAT_CREATED : random() < 0.7 ? EventKind.EVENT_KIND_MESSAGE_POSTED : pick(values.kind);
    return {
      chatId,
      origin: origin.id,
      seq: (head?.seq ?? 0) + 1,
      prev: head ? Buffer.from(head.id) : Buffer.alloc(0),
      hlcMs: random() < 0.8 ? now : pick(values.hlcMs),
      hlcCounter: random() < 0.8 ? 0 : pick(values.hlcCounter),
      senderUser: `user@${origin.id}`,
      senderDevice: 'device',
      kind,
      members: kind === EventKind.EVENT_KIND_CHAT_CREATED || kind === EventKind.EVENT_KIND_MEMBERS_ADDED ? insiders() : [],
      body: randomBytes(random() < 0.9 ? 32 : pick(values.bodyBytes)),
      routingPolicy: 0,
    };
  }

  const withId = (unsigned: UnsignedEvent): Event => ({ ...unsigned, id: eventId(unsigned), signature: Buffer.alloc(0) });

  /** Extends an origin's honest chain in a chat by `count` events. */
  function extend(chatId: string, origin: Origin, count: number, now: number): Event[] {
    const key = `${chatId}/${origin.id}`;
    const chain = generated.get(key) ?? [];
    for (let i = 0; i < count && chain.length < CHAIN_EVENTS_MAX; i++) chain.push(withId(unsignedAfter(chatId, origin, chain.at(-1), now)));
    generated.set(key, chain);
    return chain;
  }

  /**
   * One run: fresh honest events (some sent past a gap), a resend of what the receiver
   * lacks or already holds, or one hostile event off the chain's head (never kept in
   * the honest chain, so honest traffic goes on). Signed at its end, mostly correctly.
   */
  async function run(now: number): Promise<Event[]> {
    const chatId = pick(chats);
    const origin = pick(origins);
    const before = (generated.get(`${chatId}/${origin.id}`) ?? []).length;
    const shape = random();
    let events: Event[];
    if (shape < 0.35) {
      const chain = extend(chatId, origin, 1 + Math.floor(random() * 6), now);
      events = chain.slice(before);
      // A skip: the first of them stay behind, so the rest lie past a gap (sometimes far past).
      if (random() < 0.3) events = events.slice(1 + Math.floor(random() * 3));
      if (random() < 0.05) events = extend(chatId, origin, 24, now).slice(-2);
    } else if (shape < 0.75) {
      const chain = generated.get(`${chatId}/${origin.id}`) ?? [];
      const stored = (await store.head(chatId, origin.id))?.seq ?? 0;
      const from = random() < 0.8 ? stored : Math.floor(random() * chain.length);
      events = chain.slice(from, from + 1 + Math.floor(random() * 8));
    } else {
      const chain = extend(chatId, origin, before === 0 ? 1 : 0, now);
      const stored = (await store.head(chatId, origin.id))?.seq ?? 0;
      if (stored > 0 && random() < 0.3) {
        // A fork of what the receiver already stored: another event at its head's seq.
        events = [withId({ ...unsignedAfter(chatId, origin, chain[stored - 2], now), body: randomBytes(8) })];
      } else {
        events = [withId({ ...unsignedAfter(chatId, origin, chain.at(-1), now), ...pick(hostileEdits(now, origin)) })];
      }
    }
    if (events.length === 0) return [];
    const last = events.at(-1)!;
    const signature = random() < 0.03 ? randomBytes(64) : signEventId(origin.identity, last.id);
    return [...events.slice(0, -1), { ...last, signature }];
  }

  /** The store's invariants, read with aggregate SQL (no bodies), so 10,000 checks stay cheap; digests of the chats a batch touched. */
  async function checkInvariants(held: HeldEvents, touched: ReadonlySet<string>): Promise<void> {
    // Each origin's chain is contiguous from 1 and each event links to the one before it.
    const [broken] = await driver.query<{ n: number }>(
      `select count(*)::int as n from (
         select seq, prev, row_number() over w as position, lag(id) over w as before from events
         window w as (partition by chat_id, origin order by seq)) chain
       where seq <> position or prev <> coalesce(before, ''::bytea)`,
    );
    expect(broken!.n).toBe(0);
    // Digests equal a recomputation: SHA-256 over the ids sorted by the canonical order keys, done by the engine.
    for (const chatId of touched) {
      const [recomputed] = await driver.query<{ digest: Uint8Array }>(
        `select sha256(coalesce(string_agg(id, ''::bytea order by hlc_ms, hlc_counter, origin, seq), ''::bytea)) as digest from events where chat_id = $1`,
        [chatId],
      );
      expect((await store.chatDigest(chatId)).equals(Buffer.from(recomputed!.digest))).toBe(true);
    }
    // Held events within their bounds, and the in-memory tally equal to the store.
    const summary = await store.heldSummary();
    for (const peer of PEERS) expect(summary.filter((s) => s.peer === peer).reduce((sum, s) => sum + s.events, 0)).toBeLessThanOrEqual(BOUNDS.eventsPerPeer);
    const perChain = new Map<string, number>();
    for (const share of summary) perChain.set(`${share.chatId}/${share.origin}`, (perChain.get(`${share.chatId}/${share.origin}`) ?? 0) + share.events);
    for (const count of perChain.values()) expect(count).toBeLessThanOrEqual(BOUNDS.eventsPerChain);
    expect(held.totalEvents).toBe(summary.reduce((sum, share) => sum + share.events, 0));
  }

  it(`keeps every invariant through ${BATCHES} batches (seed ${SEED})`, async () => {
    const held = new HeldEvents(BOUNDS);
    const keys = new Map(origins.map((origin) => [origin.id, origin.identity.publicKey]));
    const inbound = new Inbound({
      store,
      heads: new ChainHeads(store),
      serial: new SerialQueue(),
      clock: new HybridClock(Date.now, SKEW_MS),
      held,
      originKey: async (origin) => keys.get(origin),
      onAppended: () => undefined,
      onReforwarded: () => undefined,
      audit: async () => undefined,
      fenceOf: () => undefined,
      // No frame here names destinations to pass on: the receiver is no transit.
      forwardRoutes: { selfId: 'receiver', runsThrough: () => false, knows: () => false },
    });
    await inbound.load();
    const codes = new Map<string, number>();
    let appended = 0;
    const lastSent = new Map<string, number>();
    for (let batch = 0; batch < BATCHES; batch++) {
      const now = Date.now();
      const events: Event[] = [];
      for (let runs = 1 + Math.floor(random() * 3); runs > 0; runs--) events.push(...(await run(now)));
      const peer = pick(PEERS);
      // Never throws: every bad event ends as a refusal, and the cursor is stored with the batch.
      const outcome = await inbound.accept(peer, events, { peerId: peer, linkSeq: batch + 1 });
      appended += outcome.appended.length;
      for (const refusal of outcome.refused) codes.set(refusal.code, (codes.get(refusal.code) ?? 0) + 1);
      lastSent.set(peer, batch + 1);
      for (const [sender, linkSeq] of lastSent) expect(await store.linkCursor(sender)).toBe(linkSeq);
      await checkInvariants(held, new Set(events.map((event) => event.chatId)));
      // PGlite answers in microtasks: let the event loop (and the test runner) breathe now and then.
      if (batch % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    // The generator reached every kind of refusal, and plenty was stored: the test exercised both sides.
    expect([...codes.keys()].sort()).toEqual(expect.arrayContaining(['bad-chain', 'bad-signature', 'chat-exists', 'clock-skew', 'malformed', 'not-a-member', 'too-far-ahead']));
    expect(appended).toBeGreaterThan(500);
  }, 900_000);
});
