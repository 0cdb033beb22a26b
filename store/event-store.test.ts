import v8 from 'node:v8';
import { afterEach, describe, expect, it } from 'vitest';
import { chainEvent, eventId, type ChainPosition } from '../crypto/index.js';
import { Event, EventKind } from '../proto/gen/trellis/v1/event.js';
import { testEngines } from '../test/support/engines.js';
import { FORWARD_SET_MAX, heldEventBytes, type StoredEvent } from './index.js';

// V8's own test intrinsic: whether two objects share a hidden class (see the shape test below).
v8.setFlagsFromString('--allow-natives-syntax');
const sameHiddenClass = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;

const CHAT = 'chat-1';
const A = 'server-a';
const B = 'server-b';

/** A chain of `count` events of `origin` after `head`, with clock values that interleave origins. */
function chain(origin: string, count: number, head?: ChainPosition, firstMs = 1000): Event[] {
  const events: Event[] = [];
  for (let i = 0; i < count; i++) {
    const event = chainEvent(origin, events.at(-1) ?? head, {
      chatId: CHAT,
      senderUser: `alice@${origin}`,
      senderDevice: 'd1',
      kind: i === 0 && !head ? EventKind.EVENT_KIND_CHAT_CREATED : EventKind.EVENT_KIND_MESSAGE_POSTED,
      members: i === 0 && !head ? [`alice@${A}`, `bob@${B}`] : [],
      body: Buffer.from(`sealed-${origin}-${i}`),
    }, { ms: firstMs + i * 2, counter: 0 });
    events.push(event);
  }
  return events;
}

// The store's contract, on every engine: PGlite and the real PostgreSQL server.
describe.each(await testEngines())('event store on $name', (engine) => {
  const open = (place?: string) => engine.open(place);
  afterEach(() => engine.cleanUp());

  it('stores the same event once however often it is appended', async () => {
    const store = await open();
    const events = chain(A, 5);
    expect(await store.append({ events })).toHaveLength(5);
    expect(await store.append({ events })).toHaveLength(0);
    expect(await store.append({ events: events.slice(3) })).toHaveLength(0);
    expect(await store.countEvents()).toBe(5);
    expect((await store.head(CHAT, A))?.seq).toBe(5);
    // An event named twice in one request (two paths brought it in one round) is new once.
    const more = chain(A, 7).slice(5);
    const appended = await store.append({ events: [...more, ...more] });
    expect(appended.map((event) => event.seq)).toEqual([6, 7]);
    expect(new Set(appended.map((event) => event.localSeq)).size).toBe(2);
  });

  it('orders a chat canonically, so two stores with the same events in another arrival order agree', async () => {
    const fromA = chain(A, 4, undefined, 1000);
    const fromB = chain(B, 4, undefined, 1001);
    const first = await open();
    const second = await open();
    await first.append({ events: fromA });
    await first.append({ events: fromB });
    await second.append({ events: fromB });
    await second.append({ events: fromA });
    const order = (await first.chatLog(CHAT)).map((e) => `${e.origin}:${e.seq}`);
    expect(order).toEqual(['server-a:1', 'server-b:1', 'server-a:2', 'server-b:2', 'server-a:3', 'server-b:3', 'server-a:4', 'server-b:4']);
    expect((await first.chatDigest(CHAT)).equals(await second.chatDigest(CHAT))).toBe(true);
    await second.append({ events: chain(A, 1, fromA.at(-1), 5000) });
    expect((await first.chatDigest(CHAT)).equals(await second.chatDigest(CHAT))).toBe(false);
  });

  it('keeps the link cursor with the events, never moving it back', async () => {
    const store = await open();
    await store.append({ events: chain(A, 2), cursor: { peerId: B, linkSeq: 40 } });
    await store.append({ events: [], cursor: { peerId: B, linkSeq: 12 } });
    expect(await store.linkCursor(B)).toBe(40);
    expect(await store.linkCursor('nobody')).toBe(0);
  });

  it('projects members to servers and selects outbound events for a peer', async () => {
    const store = await open();
    const events = chain(A, 3);
    await store.append({ events });
    expect(await store.chatServers(CHAT)).toEqual([A, B]);
    const outbound = await store.outboundEvents(A, [B], 0, 10);
    expect(outbound.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(await store.outboundEvents(A, [B], outbound[1]!.localSeq, 10)).toHaveLength(1);
    expect(await store.outboundEvents(A, ['server-c'], 0, 10)).toHaveLength(0);
  });

  it('holds events beyond a gap per peer, reads back only what follows a seq, and drops what was placed', async () => {
    const store = await open();
    const events = chain(A, 8);
    await store.hold(events.slice(4, 6).map((event) => ({ event, peer: B })));
    await store.hold(events.slice(6).map((event) => ({ event, peer: 'server-c' })));
    const summary = await store.heldSummary();
    expect(summary.map(({ peer, events: n, minSeq }) => ({ peer, n, minSeq })).sort((x, y) => x.minSeq - y.minSeq)).toEqual([
      { peer: B, n: 2, minSeq: 5 },
      { peer: 'server-c', n: 2, minSeq: 7 },
    ]);
    expect(summary.every((share) => share.bytes > 0)).toBe(true);
    expect((await store.heldAfter(CHAT, A, 5, 10)).map(({ event, peer }) => `${event.seq} from ${peer}`)).toEqual([`6 from ${B}`, '7 from server-c', '8 from server-c']);
    expect((await store.heldAfter(CHAT, A, 4, 2)).map(({ event }) => event.id.toString('hex'))).toEqual(events.slice(4, 6).map((e) => e.id.toString('hex')));
    const { dropped, nextSeq } = await store.dropHeld(CHAT, A, 6);
    expect(dropped).toEqual([{ peer: B, events: 2, bytes: summary.find((share) => share.peer === B)!.bytes }]);
    expect(nextSeq).toBe(7);
    expect((await store.dropHeld(CHAT, A, 8)).nextSeq).toBeUndefined();
    expect(await store.heldSummary()).toEqual([]);
  });

  it('counts a held event by what it keeps of it, members and forward set included, as heldEventBytes says', async () => {
    const store = await open();
    const [, second, third] = chain(A, 3);
    const longList = { ...second!, members: Array.from({ length: 50 }, (_, i) => `user-${i}@${B}`) };
    const forwarded = { ...third!, forwardTo: ['server-c', 'server-d'] };
    const rows = await store.hold([longList, forwarded].map((event) => ({ event, peer: B })));
    expect(rows.map((row) => row.bytes)).toEqual([heldEventBytes(longList), heldEventBytes(forwarded)]);
    expect(heldEventBytes(longList)).toBeGreaterThan(longList.members.join('').length);
    expect(heldEventBytes(forwarded)).toBeGreaterThan(heldEventBytes(third!));
    expect((await store.heldSummary()).reduce((sum, share) => sum + share.bytes, 0)).toBe(heldEventBytes(longList) + heldEventBytes(forwarded));
  });

  it('stores every value the wire allows: a uint32 clock counter and kinds of newer servers', async () => {
    const store = await open();
    const [event] = chain(A, 1);
    const wide = { ...event!, hlcCounter: 0xffff_ffff, kind: 0x7fff_ffff };
    await store.append({ events: [{ ...wide, id: eventId(wide) }] });
    const [stored] = await store.chatLog(CHAT);
    expect([stored!.hlcCounter, stored!.kind]).toEqual([0xffff_ffff, 0x7fff_ffff]);
  });

  it('keeps its log, cursors and pinned keys across a restart from its data directory', async () => {
    const dir = engine.place();
    const before = await open(dir);
    await before.append({ events: chain(A, 3), cursor: { peerId: B, linkSeq: 7 } });
    await before.pinKey(B, Buffer.alloc(32, 9));
    await before.audit({ kind: 'link-up', peer: B, detail: 'linked' });
    const digest = await before.chatDigest(CHAT);
    await before.close();
    const after = await open(dir);
    expect((await after.chatDigest(CHAT)).equals(digest)).toBe(true);
    expect(await after.linkCursor(B)).toBe(7);
    expect(await after.pinnedKey(B)).toEqual(Buffer.alloc(32, 9));
    expect((await after.auditLog()).map((a) => a.kind)).toEqual(['link-up']);
  });

  it('writes for a link only while its fence holds: a replica that lost the lease writes nothing', async () => {
    const store = await open();
    const [first, second] = [chain(A, 4).slice(0, 2), chain(A, 4).slice(2)];
    expect(await store.raiseFence({ peerId: A, token: 1 })).toBe(true);
    expect(await store.append({ events: first, cursor: { peerId: A, linkSeq: 2 }, fence: { peerId: A, token: 1 } })).toHaveLength(2);
    // Another replica takes the lease: its token is the fence now, and an older one cannot come back.
    expect(await store.raiseFence({ peerId: A, token: 2 })).toBe(true);
    expect(await store.raiseFence({ peerId: A, token: 1 })).toBe(false);
    await expect(store.append({ events: second, cursor: { peerId: A, linkSeq: 4 }, fence: { peerId: A, token: 1 } })).rejects.toMatchObject({ code: 'fenced' });
    expect(await store.countEvents()).toBe(2);
    expect(await store.linkCursor(A)).toBe(2);
    expect(await store.append({ events: second, cursor: { peerId: A, linkSeq: 4 }, fence: { peerId: A, token: 2 } })).toHaveLength(2);
    expect(await store.linkCursor(A)).toBe(4);
  });

  it('holds, adds destinations and drops held events for a link only while its fence holds, as it appends', async () => {
    const store = await open();
    const events = chain(A, 6);
    const [first, second] = [{ peerId: B, token: 1 }, { peerId: B, token: 2 }];
    expect(await store.raiseFence(first)).toBe(true);
    await store.append({ events: events.slice(0, 2), fence: first });
    expect(await store.hold([{ event: events[3]!, peer: B }], first)).toHaveLength(1);
    expect(await store.addForwards([{ id: events[0]!.id, forwardTo: [B] }], first)).toHaveLength(1);
    // Another replica takes the lease: every write of the old one's link fails as its append does, and writes nothing.
    expect(await store.raiseFence(second)).toBe(true);
    await expect(store.append({ events: events.slice(2, 3), fence: first })).rejects.toMatchObject({ code: 'fenced' });
    await expect(store.hold([{ event: events[4]!, peer: B }], first)).rejects.toMatchObject({ code: 'fenced' });
    await expect(store.addForwards([{ id: events[1]!.id, forwardTo: [B] }], first)).rejects.toMatchObject({ code: 'fenced' });
    await expect(store.dropHeld(CHAT, A, 4, first)).rejects.toMatchObject({ code: 'fenced' });
    const held = async () => (await store.heldSummary()).map(({ peer, events: n, minSeq }) => `${n} from ${peer} at ${minSeq}`);
    expect(await held()).toEqual([`1 from ${B} at 4`]);
    expect((await store.chatLog(CHAT)).map((event) => event.forwardTo)).toEqual([[B], []]);
    // The new owner's fence holds.
    expect(await store.hold([{ event: events[4]!, peer: B }], second)).toHaveLength(1);
    expect(await store.addForwards([{ id: events[1]!.id, forwardTo: [B] }], second)).toHaveLength(1);
    expect((await store.dropHeld(CHAT, A, 4, second)).dropped).toEqual([{ peer: B, events: 1, bytes: expect.any(Number) }]);
    expect(await held()).toEqual([`1 from ${B} at 5`]);
  });

  it(`keeps at most ${FORWARD_SET_MAX} destinations per event and writes nothing for a set that gains nothing`, async () => {
    const store = await open();
    const events = chain(A, 3);
    await store.append({ events: events.slice(0, 2) });
    const servers = (from: number, count: number) => Array.from({ length: count }, (_, i) => `server-${String(from + i).padStart(4, '0')}`);
    expect(await store.addForwards([{ id: events[0]!.id, forwardTo: [B] }])).toHaveLength(1);
    // Named again, or a part of it: no event grows.
    expect(await store.addForwards([{ id: events[0]!.id, forwardTo: [B] }, { id: events[1]!.id, forwardTo: [] }])).toEqual([]);
    const [grown] = await store.addForwards([{ id: events[0]!.id, forwardTo: servers(0, FORWARD_SET_MAX + 10) }]);
    expect(grown!.forwardTo).toHaveLength(FORWARD_SET_MAX);
    expect(grown!.forwardTo).toContain(B);
    // A full set takes no more.
    expect(await store.addForwards([{ id: events[0]!.id, forwardTo: servers(5_000, 3) }])).toEqual([]);
    // A held copy's destinations carry over to its stored twin only where they are servers of the chat.
    await store.hold([{ event: { ...events[1]!, forwardTo: [B, 'server-outside'] }, peer: B }]);
    expect((await store.dropHeld(CHAT, A, 2)).reforwarded.map((event) => event.forwardTo)).toEqual([[B]]);
  });

  it('answers every appended event in one shape, also events decoded from a frame', async () => {
    const store = await open();
    const decoded = chain(A, 50).map((event) => Event.decode(Event.encode(event).finish()));
    const stored: StoredEvent[] = [];
    for (const event of decoded) stored.push(...(await store.append({ events: [event] })));
    expect(stored).toHaveLength(50);
    // A receiver keeps recent events in memory (router/queues/append-tail.ts): one hidden class for all, not one each.
    expect(stored.filter((event, i) => i > 0 && !sameHiddenClass(event, stored[i - 1]!))).toHaveLength(0);
  });

  it('chains own events on the stored heads, so writers sharing a store never take one seq twice', async () => {
    const place = engine.place();
    // PostgreSQL: two connections pools to one schema, as two replicas have; PGlite: one store (one process).
    const writers = engine.name === 'postgres' ? [await open(place), await open(place)] : [await open(place)];
    const post = (writer: (typeof writers)[number], n: number) =>
      writer.appendOwn(A, [CHAT], (heads) => {
        const events: Event[] = [];
        for (let i = 0; i < n; i++) {
          events.push(chainEvent(A, events.at(-1) ?? heads.get(CHAT), {
            chatId: CHAT, senderUser: `alice@${A}`, senderDevice: 'd1',
            kind: heads.has(CHAT) || i > 0 ? EventKind.EVENT_KIND_MESSAGE_POSTED : EventKind.EVENT_KIND_CHAT_CREATED,
            members: heads.has(CHAT) || i > 0 ? [] : [`alice@${A}`, `bob@${B}`], body: Buffer.from(`post ${i}`),
          }, { ms: 1000 + i, counter: 0 }));
        }
        return events;
      });
    const rounds = 20;
    await Promise.all(Array.from({ length: rounds }, (_, round) => post(writers[round % writers.length]!, 5)));
    const log = await writers[0]!.originEvents(CHAT, A, 1, 1_000);
    expect(log.map((event) => event.seq)).toEqual(Array.from({ length: rounds * 5 }, (_, i) => i + 1));
    for (let i = 1; i < log.length; i++) expect(log[i]!.prev.equals(log[i - 1]!.id)).toBe(true);
    // Local seqs follow commit order: each one's chain predecessor has a lower one.
    for (let i = 1; i < log.length; i++) expect(log[i]!.localSeq).toBeGreaterThan(log[i - 1]!.localSeq);
  });
});
