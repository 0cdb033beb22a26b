import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REDIS_TEST_URL, redisUnavailable, skipWithout } from '../../test/support/engines.js';
import { keyPrefix, openRedis, RedisLinkLeases, RedisUnavailable } from './index.js';

const skip = await skipWithout('Redis', await redisUnavailable());
const TTL_MS = 400;

describe.skipIf(skip)('link leases in Redis', () => {
  let redis: Redis;
  const server = `test-${randomUUID()}`;
  beforeAll(async () => void (redis = await openRedis(REDIS_TEST_URL)));
  afterAll(async () => {
    const keys = await redis.keys(`${keyPrefix(server)}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  it('gives a link to one replica at a time, each new holder a higher fencing token', async () => {
    const [first, second] = ['replica-1', 'replica-2'].map((id) => new RedisLinkLeases(redis, server, id, TTL_MS));
    const peer = randomUUID();
    const token = await first!.acquire(peer);
    expect(token).toBeGreaterThan(0);
    expect(await second!.acquire(peer)).toBeUndefined();
    expect(await first!.acquire(peer)).toBe(token);
    expect(await first!.renew(peer, token!)).toBe(true);
    // The holder stops renewing (killed, paused): the lease lapses and the other takes it, fenced above.
    await new Promise((resolve) => setTimeout(resolve, TTL_MS * 2));
    const taken = await second!.acquire(peer);
    expect(taken).toBeGreaterThan(token!);
    expect(await first!.renew(peer, token!)).toBe(false);
    await first!.release(peer, token!);
    expect(await first!.acquire(peer)).toBeUndefined();
    await second!.release(peer, taken!);
    expect(await first!.acquire(peer)).toBeGreaterThan(taken!);
  });

  it('refuses an unreachable or malformed Redis URL in one line that names it', async () => {
    for (const [url, reason] of [['redis://127.0.0.1:1', 'connection refused'], ['redis://no-such-host.invalid:6379', 'does not resolve'], ['http://127.0.0.1:6379', 'not a Redis URL']] as const) {
      const error = await openRedis(url).then((connection) => (connection.disconnect(), undefined), (caught: unknown) => caught);
      expect(error).toBeInstanceOf(RedisUnavailable);
      expect((error as Error).message).toContain(reason);
      expect((error as Error).message).not.toContain('\n');
    }
  });
});
