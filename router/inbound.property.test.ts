import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cryptoReady, identityFromSeed } from '../crypto/index.js';
import { prng } from '../gateways/faults/index.js';
import type { Event } from '../proto/gen/trellis/v1/event.js';
import { InboundGenerator, type Origin } from '../test/support/inbound-generator.js';
import { FORWARD_SET_MAX, openPglite, serverOfMember, SqlEventStore, type CarriedEvent, type EventStore, type SqlDriver } from '../store/index.js';
import { ChainHeads } from './chain-heads.js';
import { HybridClock } from './clock.js';
import { HeldEvents, type HeldBounds } from './held-events.js';
import { Inbound } from './inbound.js';
import { SerialQueue } from './serial.js';

/**
 * The inbound path under 10,000 seeded batches of validly signed events whose values sit
 * at and beyond every bound: clocks, counters, kinds, member lists, body sizes, and runs
 * that skip, repeat or fork, some naming forward destinations as a hostile sender would
 * (made-up servers, the sender, the receiver, the origin, a server routed back through the
 * sender). After every batch the store's invariants must hold.
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
/** A server the receiver reaches only back through the sender: a sender may not hand it over. */
const ROUTED_BACK = 'routed-back';
/** What a sender names for the receiver to pass events on to, besides the chats' servers. */
const FORGED_DESTINATIONS = ['made-up-1', 'made-up-2', ...PEERS, 'receiver', ROUTED_BACK];

describe('the inbound path under hostile, validly signed batches', () => {
  let driver: SqlDriver;
  let store: EventStore;
  const random = prng(SEED);
  const pick = <T>(values: readonly T[]): T => values[Math.floor(random() * values.length)]!;
  const origins: Origin[] = Array.from({ length: ORIGINS }, (_, i) => ({ id: `origin-${i}`, identity: identityFromSeed(Buffer.alloc(32, i + 1)) }));
  const chats = Array.from({ length: CHATS }, (_, i) => `chat-${i}`);
  const generator = new InboundGenerator({
    random,
    origins,
    chats,
    chainEventsMax: CHAIN_EVENTS_MAX,
    skewMs: SKEW_MS,
    storedSeq: async (chatId, origin) => (await store.head(chatId, origin))?.seq ?? 0,
  });

  beforeAll(async () => {
    await cryptoReady();
    driver = await openPglite();
    store = new SqlEventStore(driver);
  });
  afterAll(() => store?.close());

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

  /**
   * Some batches name forward destinations, a run's events sharing one set as a frame's
   * range does: the chat's servers mixed with the forged ones.
   */
  function withForgedForwards(events: Event[]): CarriedEvent[] {
    if (random() < 0.6) return events;
    const names = [...generator.insiders().map(serverOfMember), ...FORGED_DESTINATIONS];
    const forwardTo = [...new Set(Array.from({ length: 1 + Math.floor(random() * 6) }, () => pick(names)))];
    return events.map((event) => ({ ...event, forwardTo }));
  }

  /** Every stored or held forward set names only servers of the chat other than the event's origin, within the bound; answers how many events carry one. */
  async function checkForwardSets(insiders: ReadonlySet<string>): Promise<number> {
    const rows = await driver.query<{ origin: string; forward_to: string[] }>(
      `select origin, forward_to from events where jsonb_array_length(forward_to) > 0
       union all select origin, forward_to from pending_events where jsonb_array_length(forward_to) > 0`,
    );
    for (const { origin, forward_to: forwardTo } of rows) {
      expect(forwardTo.length).toBeLessThanOrEqual(FORWARD_SET_MAX);
      for (const destination of forwardTo) {
        expect(insiders.has(destination), `${destination} in a forward set`).toBe(true);
        expect(destination).not.toBe(origin);
      }
    }
    return rows.length;
  }

  it(`keeps every invariant through ${BATCHES} batches (seed ${SEED})`, async () => {
    const held = new HeldEvents(BOUNDS);
    // The chats' servers: the insider origins (the generator's last origin is never a member).
    const insiders = new Set(generator.insiders().map(serverOfMember));
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
      forwardRoutes: { selfId: 'receiver', runsThrough: (destination) => destination === ROUTED_BACK, knows: (serverId) => insiders.has(serverId) || serverId === ROUTED_BACK },
    });
    await inbound.load();
    const codes = new Map<string, number>();
    let appended = 0;
    let forwarded = 0;
    const lastSent = new Map<string, number>();
    for (let batch = 0; batch < BATCHES; batch++) {
      const now = Date.now();
      const events: Event[] = [];
      for (let runs = 1 + Math.floor(random() * 3); runs > 0; runs--) events.push(...(await generator.run(now)));
      const peer = pick(PEERS);
      // Never throws: every bad event ends as a refusal, and the cursor is stored with the batch.
      const outcome = await inbound.accept(peer, withForgedForwards(events), { peerId: peer, linkSeq: batch + 1 });
      appended += outcome.appended.length;
      for (const refusal of outcome.refused) codes.set(refusal.code, (codes.get(refusal.code) ?? 0) + 1);
      lastSent.set(peer, batch + 1);
      for (const [sender, linkSeq] of lastSent) expect(await store.linkCursor(sender)).toBe(linkSeq);
      await checkInvariants(held, new Set(events.map((event) => event.chatId)));
      forwarded += await checkForwardSets(insiders);
      // PGlite answers in microtasks: let the event loop (and the test runner) breathe now and then.
      if (batch % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    // The generator reached every kind of refusal, and plenty was stored: the test exercised both sides.
    expect([...codes.keys()].sort()).toEqual(expect.arrayContaining(['bad-chain', 'bad-signature', 'chat-exists', 'clock-skew', 'malformed', 'not-a-member', 'too-far-ahead']));
    expect(appended).toBeGreaterThan(500);
    expect(forwarded).toBeGreaterThan(0);
  }, 900_000);
});
