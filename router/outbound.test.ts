import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { chainEvent, cryptoReady, EVENT_BODY_BYTES_MAX, identityFromSeed, signEventId } from '../crypto/index.js';
import { EventKind, type Event } from '../proto/gen/trellis/v1/event.js';
import { openEmbeddedStore, type EventStore } from '../store/index.js';
import { BACKFILL_PAGE_EVENTS_MAX, Outbound } from './outbound.js';
import { TAIL_EVENTS_MAX } from './queues/append-tail.js';

const CHAT = 'chat-1';
const SELF = 'server-self';
const PEER = 'server-peer';
const OTHER = 'server-other';

/** Another origin's chain as a relay stores it: signatures kept only where a run ended (`signedAt`). */
function relayedChain(count: number, bodyBytes: number, signedAt: ReadonlySet<number>): Event[] {
  const identity = identityFromSeed(Buffer.alloc(32, 7));
  const events: Event[] = [];
  for (let seq = 1; seq <= count; seq++) {
    const event = chainEvent(OTHER, events.at(-1), {
      chatId: CHAT,
      senderUser: `carol@${OTHER}`,
      senderDevice: 'd',
      kind: seq === 1 ? EventKind.EVENT_KIND_CHAT_CREATED : EventKind.EVENT_KIND_MESSAGE_POSTED,
      members: seq === 1 ? [`carol@${OTHER}`, `alice@${SELF}`, `bob@${PEER}`] : [],
      body: Buffer.alloc(bodyBytes, seq % 251),
    }, { ms: 1_000 + seq, counter: 0 });
    events.push(signedAt.has(seq) ? { ...event, signature: signEventId(identity, event.id) } : event);
  }
  return events;
}

/** Behind the peer, one hop further: reached only through it. */
const FAR = 'server-far';

/** An Outbound whose every destination is its own next hop (all trusts direct and up), but FAR, reached through PEER. */
function relay(store: EventStore, transit: boolean): Outbound {
  const routes = { nextHop: (destination: string) => (destination === FAR ? PEER : destination), destinationsVia: () => [], isTransit: (peerId: string) => peerId === PEER, version: 0 };
  return new Outbound({ selfId: SELF, identity: identityFromSeed(Buffer.alloc(32, 1)), store, transit, routes, rewindAll: () => undefined });
}

/** A fresh embedded store for one describe block, holding what `seed` appends before its tests run. */
function storeOfBlock(seed?: (store: EventStore) => Promise<unknown>): () => EventStore {
  let store: EventStore | undefined;
  beforeAll(async () => {
    await cryptoReady();
    store = await openEmbeddedStore();
    await seed?.(store);
  });
  afterAll(() => store?.close());
  return () => store!;
}

describe('backfill pages of another origin\'s chain', () => {
  const store = storeOfBlock();

  it('are cut by size, end at a signature, are never empty while events remain, and say when more follow', async () => {
    // 100 events of the largest body (6.4 MiB, past the 4 MiB page budget), signed at 30 and 100 only.
    await store().append({ events: relayedChain(100, EVENT_BODY_BYTES_MAX, new Set([30, 100])) });
    const outbound = relay(store(), true);

    const first = (await outbound.backfill(PEER, { chatId: CHAT, origin: OTHER, fromSeq: 1 }))![0]!;
    expect(first.events.map((e) => e.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(first.events.at(-1)!.signature.length).toBe(64);
    expect(first.more).toBe(true);

    // From 31 the size cut leaves no signature: the page runs on to the next one instead of coming back empty.
    const second = (await outbound.backfill(PEER, { chatId: CHAT, origin: OTHER, fromSeq: 31 }))![0]!;
    expect(second.events.map((e) => e.seq)).toEqual(Array.from({ length: 70 }, (_, i) => i + 31));
    expect(second.events.at(-1)!.signature.length).toBe(64);
    expect(second.more).toBe(false);
    expect(second.events.length).toBeLessThanOrEqual(BACKFILL_PAGE_EVENTS_MAX);

    // A whole-chat request (empty origin) answers a page per origin; a server outside the chat gets nothing.
    expect((await outbound.backfill(PEER, { chatId: CHAT, origin: '', fromSeq: 1 }))!.map((answer) => answer.origin)).toEqual([OTHER]);
    expect(await outbound.backfill('server-stranger', { chatId: CHAT, origin: OTHER, fromSeq: 1 })).toBeUndefined();
  });
});

describe('the send path of a relay', () => {
  // Brought by a hop that asked us to pass it on to PEER and FAR.
  const store = storeOfBlock((seeded) => seeded.append({ events: relayedChain(100, 64, new Set([30, 100])).map((event) => ({ ...event, forwardTo: [PEER, FAR] })) }));

  it('passes another origin\'s events on only up to a signature they carry, reading on when the limit falls short of it', async () => {
    const outbound = relay(store(), true);
    await outbound.load();
    const first = await outbound.batchFor(PEER, 0, 40);
    expect(first.events.map((e) => e.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(first.events.at(-1)!.signature.length).toBe(64);
    // PEER is told to pass them on to FAR, which lies behind it; PEER itself needs no telling.
    expect(first.forwards).toEqual([{ first: 0, count: 30, destinations: [FAR] }]);
    const second = await outbound.batchFor(PEER, first.events.at(-1)!.localSeq, 40);
    expect(second.events.map((e) => e.seq)).toEqual(Array.from({ length: 70 }, (_, i) => i + 31));
    // Nothing goes back to the origin, and a CTS (no transit) passes on no other origin's events.
    expect((await outbound.batchFor(OTHER, 0, 512)).events).toEqual([]);
    const cts = relay(store(), false);
    await cts.load();
    expect((await cts.batchFor(PEER, 0, 512)).events).toEqual([]);
  });
});

describe('a relay whose peer is served only part of a run', () => {
  // The route to PEER moved onto us at seq 50: only 1..50 are to be passed on, and the run's signature is at 100.
  const store = storeOfBlock((seeded) => seeded.append({ events: relayedChain(100, 64, new Set([100])).map((event) => (event.seq <= 50 ? { ...event, forwardTo: [PEER, FAR] } : event)) }));

  it('carries the run on to its signature, without moving the link past what was served', async () => {
    const outbound = relay(store(), true);
    await outbound.load();
    const batch = await outbound.batchFor(PEER, 0, 512);
    expect(batch.events.map((e) => e.seq)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(batch.events.at(-1)!.signature.length).toBe(64);
    // Only what PEER was served names FAR; the position stops at the last served event.
    expect(batch.forwards).toEqual([{ first: 0, count: 50, destinations: [FAR] }]);
    expect(batch.lastLinkSeq).toBe(batch.events[49]!.localSeq);
  });
});

describe('a CTS receiving another origin\'s events', () => {
  const store = storeOfBlock();

  it('keeps its own events in the tail however many others arrive, and sends them without reading the store', async () => {
    const cts = relay(store(), false);
    await cts.load();
    const own = await store().append({ events: [chainEvent(SELF, undefined, {
      chatId: 'chat-own', senderUser: `alice@${SELF}`, senderDevice: 'd', kind: EventKind.EVENT_KIND_CHAT_CREATED,
      members: [`alice@${SELF}`, `bob@${PEER}`], body: Buffer.from('sealed'),
    }, { ms: 1_000, counter: 0 })] });
    cts.observe(own);
    // More of another origin's events than the tail holds, as a partner's busy chat brings them.
    const lastOwn = own.at(-1)!.localSeq;
    const others = relayedChain(TAIL_EVENTS_MAX + 1, 16, new Set()).map((event, i) => ({ ...event, localSeq: lastOwn + 1 + i, forwardTo: [] }));
    cts.observe(others);
    const read = vi.spyOn(store(), 'outboundEvents');
    const batch = await cts.batchFor(PEER, 0, 512);
    expect(batch.events.map((event) => event.id)).toEqual(own.map((event) => event.id));
    expect(read).not.toHaveBeenCalled();
  });
});
