import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../router/index.js';
import { skipWithout } from '../../test/support/engines.js';
import { postMessages, TestPair, waitFor } from '../../test/support/federation.js';
import { createdDraft, newChat, type DeviceChat } from '../devices/index.js';
import { KafkaFeed, startKafkaPublisher, type KafkaPublisher } from '../kafka/index.js';
import { deleteTestTopics, kafkaUnavailable, testKafkaSettings } from '../kafka/testing.js';
import { InProcessFeed, type Delivered, type ProjectionFeed, type ProjectionName, type Subscription } from './index.js';

const log = createLogger('silent');

/** A bus under test: a feed for node A of a pair (and, for Kafka, A's publisher). */
interface Bus {
  name: string;
  open(pair: TestPair): Promise<{ feed: ProjectionFeed; close(): Promise<void> }>;
}

const inProcess: Bus = {
  name: 'the in-process feed',
  async open(pair) {
    const feed = new InProcessFeed(pair.a, log);
    return { feed, close: () => feed.close() };
  },
};

const kafka: Bus = {
  name: 'Kafka',
  async open(pair) {
    const settings = testKafkaSettings('contract');
    const publisher: KafkaPublisher = await startKafkaPublisher(pair.a, settings, log);
    return {
      feed: new KafkaFeed(settings, log),
      close: async () => {
        await publisher.stop();
        await deleteTestTopics(settings);
      },
    };
  },
};

async function buses(): Promise<Bus[]> {
  return (await skipWithout('Kafka', await kafkaUnavailable())) ? [inProcess] : [inProcess, kafka];
}

/** Subscribes and keeps what arrives; `fail` makes the next handler calls throw. */
async function collect<P extends ProjectionName>(feed: ProjectionFeed, projection: P, group: string, from?: 'earliest' | 'latest') {
  const got: Array<Delivered<P>> = [];
  const state = { fail: 0, calls: 0 };
  const subscription: Subscription = await feed.subscribe({
    projection,
    group,
    ...(from ? { from } : {}),
    onRecords: async (records) => {
      state.calls += 1;
      if (state.fail > 0) {
        state.fail -= 1;
        throw new Error('subscriber not ready');
      }
      got.push(...records);
    },
  });
  return { got, state, subscription };
}

/** Per (chat, origin), the chain seqs in the order delivered. */
function chains(delivered: ReadonlyArray<Delivered<'chat-events'>>): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const { record } of delivered) {
    const key = `${record.event!.chatId}/${record.event!.origin}`;
    out.set(key, [...(out.get(key) ?? []), record.event!.seq]);
  }
  return out;
}

const oneToN = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
const groupName = (label: string) => `${label}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

describe.each(await buses())('projections on $name', (bus) => {
  let pair: TestPair | undefined;
  let opened: { feed: ProjectionFeed; close(): Promise<void> } | undefined;
  const subscriptions: Subscription[] = [];
  afterEach(async () => {
    await Promise.allSettled(subscriptions.splice(0).map((s) => s.close()));
    await opened?.close();
    await pair?.stop();
    pair = opened = undefined;
  });

  async function startChat(): Promise<DeviceChat> {
    const chat = newChat([`alice@${pair!.a.id}`, `bob@${pair!.b.id}`]);
    await pair!.a.post(createdDraft(chat, `alice@${pair!.a.id}`));
    return chat;
  }

  it('hands every event of every chain to a new group once, in chain order, the ones after it subscribed too', async () => {
    pair = await TestPair.start();
    opened = await bus.open(pair);
    const [first, second] = [await startChat(), await startChat()];
    await Promise.all([postMessages(pair.a, first, `alice@${pair.a.id}`, 300), postMessages(pair.b, first, `bob@${pair.b.id}`, 200)]);
    const reader = await collect(opened.feed, 'chat-events', groupName('all'));
    subscriptions.push(reader.subscription);
    await postMessages(pair.a, second, `alice@${pair.a.id}`, 250);
    const total = 1 + 300 + 200 + 1 + 250;
    await waitFor(`${total} chat events`, () => reader.got.length >= total, 60_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(reader.got).toHaveLength(total);

    const perChain = chains(reader.got);
    expect(perChain.get(`${first.id}/${pair.a.id}`)).toEqual(oneToN(301));
    expect(perChain.get(`${first.id}/${pair.b.id}`)).toEqual(oneToN(200));
    expect(perChain.get(`${second.id}/${pair.a.id}`)).toEqual(oneToN(251));
    // What A's log holds, as A stored it: the same events, its local seqs increasing per partition.
    const stored = new Map((await pair.a.store.eventsAfter(0, 10_000)).map((event) => [event.id.toString('hex'), event]));
    for (const { key, record, partition, offset } of reader.got) {
      const event = stored.get(record.event!.id.toString('hex'));
      expect(event?.localSeq, `${partition}/${offset}`).toBe(record.localSeq);
      expect(key).toBe(record.event!.chatId);
      expect(record.serverId).toBe(pair.a.id);
      expect(Buffer.from(record.event!.body).equals(event!.body)).toBe(true);
      expect(new Set(record.destinations)).toEqual(new Set([pair.a.id, pair.b.id]));
    }
  });

  it('resumes a group after what it acknowledged, and hands a batch it failed over again', async () => {
    pair = await TestPair.start();
    opened = await bus.open(pair);
    const chat = await startChat();
    await postMessages(pair.a, chat, `alice@${pair.a.id}`, 199);
    const group = groupName('resume');
    const reader = await collect(opened.feed, 'chat-events', group);
    reader.state.fail = 2;
    await waitFor('200 chat events', () => reader.got.length >= 200, 60_000);
    expect(reader.state.calls).toBeGreaterThan(2);
    await reader.subscription.close();
    expect(chains(reader.got).get(`${chat.id}/${pair.a.id}`)).toEqual(oneToN(200));

    await postMessages(pair.a, chat, `alice@${pair.a.id}`, 100);
    const again = await collect(opened.feed, 'chat-events', group);
    subscriptions.push(again.subscription);
    await waitFor('the 100 new events', () => again.got.length >= 100, 60_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(again.got.map(({ record }) => record.event!.seq)).toEqual(oneToN(100).map((n) => 200 + n));

    // From given offsets: a partition's records from that offset on.
    const pick = again.got[40]!;
    const seen: Array<Delivered<'chat-events'>> = [];
    const fromOffsets = await opened.feed.subscribe({
      projection: 'chat-events',
      group: groupName('offsets'),
      from: { offsets: { [pick.partition]: pick.offset } },
      onRecords: async (records) => void seen.push(...records.filter((r) => r.partition === pick.partition)),
    });
    subscriptions.push(fromOffsets);
    await waitFor('the records from the offset', () => seen.length >= 60, 60_000);
    expect(seen[0]!.offset).toBe(pick.offset);
    expect(seen.map(({ record }) => record.event!.seq).slice(0, 60)).toEqual(oneToN(60).map((n) => 240 + n));

    const late = await collect(opened.feed, 'chat-events', groupName('latest'), 'latest');
    subscriptions.push(late.subscription);
    // A group from the latest sees only what comes after it joined (Kafka: once it has its partitions).
    await new Promise((resolve) => setTimeout(resolve, bus === kafka ? 4_000 : 300));
    await postMessages(pair.a, chat, `alice@${pair.a.id}`, 10);
    await waitFor('the 10 newest events', () => late.got.length >= 10, 60_000);
    expect(late.got.map(({ record }) => record.event!.seq)).toEqual(oneToN(10).map((n) => 300 + n));
  });

  it('carries link changes to routing, trust changes to admin-events and connections to system-events', async () => {
    pair = await TestPair.start();
    await waitFor('the link', () => pair!.a.link(pair!.b.id) !== undefined);
    opened = await bus.open(pair);
    const [routing, admin, system] = [
      await collect(opened.feed, 'routing', groupName('routing')),
      await collect(opened.feed, 'admin-events', groupName('admin')),
      await collect(opened.feed, 'system-events', groupName('system')),
    ];
    subscriptions.push(routing.subscription, admin.subscription, system.subscription);
    await pair.a.setTrustStatus(pair.b.id, 'disabled');
    await waitFor('the link down', () => pair!.a.link(pair!.b.id) === undefined);
    await pair.a.setTrustStatus(pair.b.id, 'enabled');
    await waitFor('the link up again', () => pair!.a.link(pair!.b.id) !== undefined, 30_000);

    const mine = <P extends ProjectionName>(records: Array<Delivered<P>>) => records.filter(({ record }) => record.serverId === pair!.a.id);
    const links = () => mine(routing.got).flatMap(({ record }) => (record.change?.$case === 'link' ? [record.change.value] : []));
    await waitFor('link down and up on routing', () => links().some((l) => !l.up) && links().some((l, i, all) => l.up && all.slice(0, i).some((d) => !d.up)), 30_000);
    // Down, then up (a redial may replace its own new link: up again, never down in between).
    const ups = links().filter((l) => l.peerId === pair!.b.id).map((l) => l.up);
    expect(ups[0]).toBe(false);
    expect(ups.length).toBeGreaterThan(1);
    expect(ups.slice(1).every(Boolean)).toBe(true);
    const moves = mine(routing.got).flatMap(({ record }) => (record.change?.$case === 'routes' ? record.change.value.moves : []));
    expect(moves).toContainEqual({ destination: pair.b.id, fromHop: pair.b.id, toHop: '' });
    expect(moves).toContainEqual({ destination: pair.b.id, fromHop: '', toHop: pair.b.id });

    await waitFor('two trust changes on admin-events', () => mine(admin.got).length >= 2, 30_000);
    expect(mine(admin.got).map(({ record }) => [record.kind, record.peer])).toEqual([
      ['trust-changed', pair.b.id],
      ['trust-changed', pair.b.id],
    ]);
    await waitFor('the link journalled on system-events', () => mine(system.got).some(({ record }) => record.kind === 'link-up'), 30_000);
    expect(mine(system.got).every(({ record }) => record.kind !== 'trust-changed')).toBe(true);
    const positions = mine(system.got).map(({ record }) => record.position);
    expect(positions).toEqual([...positions].sort((x, y) => x - y));
  });
});
