import { afterEach, describe, expect, it, vi } from 'vitest';
import { ChatEventRecord } from '../../proto/gen/trellis/v1/projection.js';
import { createLogger } from '../../router/index.js';
import { openEmbeddedStore, type AuditRecord, type EventStore } from '../../store/index.js';
import { createdDraft, messageDraft, newChat } from '../devices/index.js';
import { ProjectionPublisher } from './publisher.js';
import { Relay, type RecordSink } from './relay.js';
import { ChatEventSource, JOURNAL_HOLE_SETTLE_MS, JournalSource, type OutgoingRecord } from './sources.js';
import { appendAll, deliveredPerChain, MemorySink, soloNode, syntheticLog, type SoloNode } from './testing.js';

const log = createLogger('silent');

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const chatRelay = (store: EventStore, sink: RecordSink, serverId = 'server-a') =>
  new Relay({ cursorName: 'test:chat-events', source: new ChatEventSource(store, serverId), sink, store, log });

describe('the chat-events relay', () => {
  let store: EventStore;
  afterEach(async () => store?.close());

  it('publishes every stored event once, in local seq order, keyed by chat, and keeps its cursor only once acknowledged', async () => {
    store = await openEmbeddedStore();
    const { events, chats, origin } = syntheticLog({ chats: 7, events: 3_000, bodyBytes: 256 });
    await appendAll(store, events);
    const sink = new MemorySink();
    const relay = chatRelay(store, sink);
    await relay.start();
    const last = await store.lastLocalSeq();
    await until('everything published', () => relay.publishedPosition === last);
    await relay.stop(1_000);

    expect(sink.acknowledged.map((record) => record.position)).toEqual((await store.eventsAfter(0, 10_000)).map((event) => event.localSeq));
    const decoded = sink.acknowledged.map((record) => ({ key: record.key, record: ChatEventRecord.decode(record.value) }));
    expect(decoded.map(({ record }) => record.event!.id.toString('hex'))).toEqual(events.map((event) => event.id.toString('hex')));
    expect(decoded.every(({ key, record }) => key === record.event!.chatId && record.serverId === 'server-a')).toBe(true);
    expect(new Set(decoded.map(({ key }) => key))).toEqual(new Set(chats));
    // Destinations: the servers the chat has members on (the synthetic chats live on the origin only).
    expect(decoded.every(({ record }) => record.destinations.length === 1 && record.destinations[0] === origin)).toBe(true);
    expect(decoded[0]!.record.event!.body).toEqual(events[0]!.body);
    expect(await store.projectionCursor('test:chat-events')).toBe(last);
  });

  it('retries a failed publish as the same batch, with nothing skipped and nothing doubled', async () => {
    store = await openEmbeddedStore();
    await appendAll(store, syntheticLog({ chats: 3, events: 2_500, bodyBytes: 64 }).events);
    const sink = new MemorySink();
    sink.failNext = 3;
    const relay = chatRelay(store, sink);
    await relay.start();
    await until('everything published', async () => relay.publishedPosition === (await store.lastLocalSeq()));
    await relay.stop(1_000);
    expect(sink.attempts.slice(0, 4)).toEqual([1, 1, 1, 1]);
    const positions = sink.acknowledged.map((record) => record.position);
    expect(new Set(positions).size).toBe(positions.length);
    expect(positions.length).toBe(await store.countEvents());
  });

  it('after a crash before its cursor moved, republishes from the cursor: copies, in order, none lost', async () => {
    store = await openEmbeddedStore();
    const { events } = syntheticLog({ chats: 5, events: 4_000, bodyBytes: 64 });
    await appendAll(store, events);
    const sink = new MemorySink();
    // The crash: a publish in flight never returns, and this relay is never stopped.
    sink.hangAfter = 2_000;
    const first = chatRelay(store, sink);
    await first.start();
    await until('a few batches published', () => sink.attempts.length > 2);
    const cursor = (await store.projectionCursor('test:chat-events')) ?? 0;
    expect(cursor).toBeLessThanOrEqual(first.publishedPosition);

    const replayed = new MemorySink();
    const second = chatRelay(store, replayed);
    await second.start();
    await until('everything published again', async () => second.publishedPosition === (await store.lastLocalSeq()));
    await second.stop(1_000);
    expect(replayed.acknowledged[0]!.position).toBe(cursor + 1);

    const combined = [...sink.acknowledged, ...replayed.acknowledged];
    const perChain = deliveredPerChain(combined);
    // Every chain complete and in order after dropping copies: 1 (chat-created), 2, 3, ...
    for (const seqs of perChain.values()) expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
    expect([...perChain.values()].reduce((sum, seqs) => sum + seqs.length, 0)).toBe(events.length);
  });
});

describe('the journal source', () => {
  it('stops before a hole in the ids until it has stayed long enough to be a used-up id', async () => {
    const entry = (id: number): AuditRecord => ({ id, at: new Date(0), kind: 'link-up', detail: 'up' });
    let nowMs = 0;
    const rows = [entry(1), entry(2), entry(4)];
    const source = new JournalSource({ auditAfter: async (after) => rows.filter((row) => row.id > after), lastAuditId: async () => 4 }, 'server-a', () => nowMs);
    expect((await source.read(0, 10)).position).toBe(2);
    nowMs += JOURNAL_HOLE_SETTLE_MS / 2;
    expect((await source.read(2, 10)).records).toEqual([]);
    // The late commit fills the hole: it is published, not skipped.
    rows.splice(2, 0, entry(3));
    expect((await source.read(2, 10)).records.map((record) => record.position)).toEqual([3, 4]);
    rows.push(entry(6));
    expect((await source.read(4, 10)).records).toEqual([]);
    nowMs += JOURNAL_HOLE_SETTLE_MS;
    expect((await source.read(4, 10)).records.map((record) => record.position)).toEqual([6]);
  });
});

describe('the publisher on a running node', () => {
  let solo: SoloNode | undefined;
  afterEach(async () => solo?.cleanUp());

  it('publishes what the node appends from memory, without reading the log back, and journals its start and stop', async () => {
    solo = await soloNode({ logger: log });
    const { node } = solo;
    const sink = new MemorySink();
    const publisher = await ProjectionPublisher.start(node, { sink, cursorPrefix: 'test', describe: 'memory', log });
    const reads = vi.spyOn(node.store, 'eventsAfter');
    const chat = newChat([`alice@${node.id}`]);
    await node.post(createdDraft(chat, `alice@${node.id}`));
    for (let round = 0; round < 20; round++) await Promise.all(Array.from({ length: 50 }, (_, i) => node.post(messageDraft(chat, `alice@${node.id}`, `m${round}.${i}`))));
    await until('1,001 events published', () => sink.acknowledged.filter((r) => r.projection === 'chat-events').length === 1_001);
    expect(reads).not.toHaveBeenCalled();
    await publisher.stop();
    const journal = sink.acknowledged.filter((r) => r.projection === 'system-events').map((r) => r.position);
    expect(journal.length).toBe(2);
    const kinds = (await node.store.auditAfter(0, 100)).map((entry) => entry.kind);
    expect(kinds).toEqual(['node-started', 'node-stopped']);
  });
});
