import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChatEventRecord } from '../../proto/gen/trellis/v1/projection.js';
import { createLogger, type LinkLeases } from '../../router/index.js';
import { REDIS_TEST_URL, redisUnavailable, skipWithout } from '../../test/support/engines.js';
import { keyPrefix, openRedis, RedisLinkLeases } from '../redis/index.js';
import { PUBLISHER_LEASE, ProjectionPublisher } from './publisher.js';
import { appendAll, deliveredPerChain, MemorySink, soloNode, syntheticLog, type SoloNode } from './testing.js';

const skip = await skipWithout('Redis', await redisUnavailable());
const log = createLogger('silent');
const TTL_MS = 600;

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A replica's leases whose Redis can be cut: every call then fails, as when the replica lost its connection or was paused. */
class CuttableLeases implements LinkLeases {
  cut = false;
  constructor(private readonly inner: RedisLinkLeases) {}
  get replicaId() {
    return this.inner.replicaId;
  }
  get ttlMs() {
    return this.inner.ttlMs;
  }
  private check(): void {
    if (this.cut) throw new Error('Redis unreachable');
  }
  async acquire(name: string) {
    this.check();
    return this.inner.acquire(name);
  }
  async renew(name: string, token: number) {
    this.check();
    return this.inner.renew(name, token);
  }
  async release(name: string, token: number) {
    this.check();
    return this.inner.release(name, token);
  }
}

const chatEventsOf = (sink: MemorySink) => sink.acknowledged.filter((record) => record.projection === 'chat-events');

describe.skipIf(skip)('replicas publishing through one lease', () => {
  let redis: Redis;
  let solo: SoloNode;
  const server = `test-${randomUUID()}`;
  beforeAll(async () => {
    redis = await openRedis(REDIS_TEST_URL);
    solo = await soloNode({ logger: log });
  });
  afterAll(async () => {
    await solo?.cleanUp();
    const keys = await redis.keys(`${keyPrefix(server)}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  it('publishes each record from one replica at a time; when it loses the lease the other carries on from the stored cursor', async () => {
    // Two replicas of one server share its store: here one node's store, watched by two publishers.
    const leases = ['replica-1', 'replica-2'].map((id) => new CuttableLeases(new RedisLinkLeases(redis, server, id, TTL_MS)));
    const sinks = [new MemorySink(), new MemorySink()];
    const start = (index: number) => ProjectionPublisher.start(solo.node, { sink: sinks[index]!, cursorPrefix: 'test', describe: 'memory', log, leases: leases[index]! });
    const publishers = [await start(0), await start(1)];
    const first = syntheticLog({ chats: 4, events: 1_500, bodyBytes: 64 });
    await appendAll(solo.node.store, first.events);
    const total = () => chatEventsOf(sinks[0]!).length + chatEventsOf(sinks[1]!).length;
    await until('the first log published', () => total() >= first.events.length);
    const holder = publishers[0]!.publishing ? 0 : 1;
    const other = 1 - holder;
    expect(publishers[holder]!.publishing).toBe(true);
    expect(publishers[other]!.publishing).toBe(false);
    expect(chatEventsOf(sinks[other]!)).toEqual([]);
    expect(chatEventsOf(sinks[holder]!).map((record) => record.position)).toEqual((await solo.node.store.eventsAfter(0, 10_000)).map((event) => event.localSeq));

    // The holder loses Redis: it stops publishing at its next renewal, its lease lapses, the other takes it.
    leases[holder]!.cut = true;
    const second = syntheticLog({ chats: 3, events: 1_000, bodyBytes: 64 });
    await appendAll(solo.node.store, second.events);
    await until('the other replica publishing', () => publishers[other]!.publishing && !publishers[holder]!.publishing);
    const last = await solo.node.store.lastLocalSeq();
    await until('the second log published', () => chatEventsOf(sinks[other]!).some((record) => record.position === last));

    const combined = [...chatEventsOf(sinks[holder]!), ...chatEventsOf(sinks[other]!)];
    const perChain = deliveredPerChain(combined);
    // Every chain complete and in order once copies are dropped; copies only of what was in flight at the handover.
    for (const seqs of perChain.values()) expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
    expect([...perChain.values()].reduce((sum, seqs) => sum + seqs.length, 0)).toBe(first.events.length + second.events.length);
    const positions = combined.map((record) => record.position);
    expect(new Set(positions).size).toBe(last);
    expect(combined.every((record) => ChatEventRecord.decode(record.value).event!.id.length === 32)).toBe(true);

    // Stopping gives the lease up at once: a newcomer gets it without waiting for it to lapse.
    leases[holder]!.cut = false;
    await Promise.all(publishers.map((publisher) => publisher.stop()));
    const newcomer = new RedisLinkLeases(redis, server, 'replica-3', TTL_MS);
    expect(await newcomer.acquire(PUBLISHER_LEASE)).toBeGreaterThan(0);
  });
});
