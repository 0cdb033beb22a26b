import { Redis } from 'ioredis';
import { redactUrl } from '../../store/index.js';

/** How long a first connection may take before Redis counts as unreachable. */
const CONNECT_TIMEOUT_MS = 3_000;

export class RedisUnavailable extends Error {
  readonly code = 'redis-unavailable';
  constructor(message: string) {
    super(message);
    this.name = 'RedisUnavailable';
  }
}

function explain(url: string, error: (Error & { code?: string }) | undefined): string {
  const where = `Redis at ${redactUrl(url)}`;
  switch (error?.code) {
    case 'ECONNREFUSED':
      return `${where}: connection refused; check that Redis runs there and the host and port are right`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `${where}: the host name does not resolve; check the host`;
    default:
      if (/WRONGPASS|NOAUTH|invalid password/i.test(error?.message ?? '')) return `${where}: the password was refused; check it`;
      return `${where}: ${error?.message ?? `no answer within ${CONNECT_TIMEOUT_MS / 1000} s`}; check the host, the port and the firewall`;
  }
}

/**
 * A connection to Redis, checked with a PING before it is handed out. Later outages are
 * retried by ioredis (commands fail fast meanwhile), so a node keeps serving its links.
 */
export async function openRedis(url: string): Promise<Redis> {
  if (!/^rediss?:\/\//.test(url)) throw new RedisUnavailable(`${redactUrl(url)} is not a Redis URL: write redis://host:6379`);
  let lastError: (Error & { code?: string }) | undefined;
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: CONNECT_TIMEOUT_MS,
    maxRetriesPerRequest: 1,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
  });
  redis.on('error', (error: Error) => (lastError = error));
  try {
    await redis.connect();
    await redis.ping();
    return redis;
  } catch (error) {
    redis.disconnect();
    throw new RedisUnavailable(explain(url, lastError ?? (error as Error)));
  }
}
