import { afterEach, describe, expect, it } from 'vitest';
import { testEngines } from '../../test/support/engines.js';
import type { EventStore } from '../../store/index.js';
import { appendAll, syntheticLog } from './testing.js';

// What the relays and the in-process feed read, on each store engine.
describe.each(await testEngines())('projection reads on $name', (engine) => {
  let store: EventStore;
  afterEach(() => engine.cleanUp());

  it('reads the whole log in local seq order, every field as stored, a page at a time', async () => {
    store = await engine.open();
    const { events, chats, origin } = syntheticLog({ chats: 3, events: 700, bodyBytes: 300, members: ['alice@server-a', 'bob@server-b'] });
    await appendAll(store, events, 250);
    const pages = [];
    for (let after = 0; ; ) {
      const page = await store.eventsAfter(after, 256);
      if (page.length === 0) break;
      expect(page.length).toBeLessThanOrEqual(256);
      pages.push(...page);
      after = page[page.length - 1]!.localSeq;
    }
    expect(pages.map((event) => event.id.toString('hex'))).toEqual(events.map((event) => event.id.toString('hex')));
    expect(pages.map((event) => event.localSeq)).toEqual([...pages.map((event) => event.localSeq)].sort((x, y) => x - y));
    const stored = await store.chatLog(chats[0]!);
    const read = pages.filter((event) => event.chatId === chats[0]);
    expect(read).toEqual(stored);
    expect(read[0]!.members).toEqual(['alice@server-a', 'bob@server-b']);
    expect(read[1]!.body.length).toBe(300);
    const servers = await store.chatServersOf([...chats, 'no-such-chat']);
    expect([...servers.keys()].sort()).toEqual([...chats].sort());
    expect(servers.get(chats[1]!)).toEqual(['server-a', 'server-b']);
    expect(origin).toBe(read[0]!.origin);
  });

  it('reads the journal after an id, keeps the outbox in the order given, and keeps cursors', async () => {
    store = await engine.open();
    expect(await store.lastAuditId()).toBe(0);
    for (const kind of ['trust-added', 'link-up', 'link-down']) await store.audit({ kind, peer: 'server-b', detail: kind });
    const journal = await store.auditAfter(0, 10);
    expect(journal.map((entry) => entry.kind)).toEqual(['trust-added', 'link-up', 'link-down']);
    expect((await store.auditAfter(journal[0]!.id, 10)).map((entry) => entry.kind)).toEqual(['link-up', 'link-down']);
    expect(await store.lastAuditId()).toBe(journal[2]!.id);
    expect(journal[0]!.at).toBeInstanceOf(Date);

    const payload = (n: number) => Buffer.from([n, 0, 255]);
    await store.enqueueOutbox([3, 1, 2].map((n) => ({ topic: n === 2 ? 'other' : 'routing', key: `k${n}`, payload: payload(n) })));
    const routing = await store.outboxAfter(0, 10, 'routing');
    expect(routing.map((row) => [row.key, [...row.payload]])).toEqual([['k3', [3, 0, 255]], ['k1', [1, 0, 255]]]);
    expect((await store.outboxAfter(0, 10)).map((row) => row.key)).toEqual(['k3', 'k1', 'k2']);
    const last = await store.lastOutboxId();
    expect(await store.trimOutbox(routing[0]!.id, Number.MAX_SAFE_INTEGER)).toBe(1);
    expect(await store.trimOutbox(0, 1)).toBe(1);
    expect((await store.outboxAfter(0, 10)).map((row) => row.id)).toEqual([last]);

    expect(await store.projectionCursor('kafka:x:chat-events')).toBeUndefined();
    await store.saveProjectionCursor('kafka:x:chat-events', 41);
    await store.saveProjectionCursor('kafka:x:chat-events', 42);
    await store.saveProjectionCursor('kafka:x:chat-events', 40);
    expect(await store.projectionCursor('kafka:x:chat-events')).toBe(42);
  });
});
