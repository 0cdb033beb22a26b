import type { Redis } from 'ioredis';
import type { LinkLeases } from '../../router/index.js';

/**
 * Trust-link leases of one server's replicas in Redis. The lease is a key holding
 * `<replica>:<token>` with a time to live; the token comes from a per-peer counter, so
 * every acquisition is fenced above all earlier ones. Each step is one Lua script, so a
 * check and its change cannot be split by another replica.
 */
const ACQUIRE = `
local held = redis.call('GET', KEYS[1])
if held then
  local owner, token = string.match(held, '^(.*):(%d+)$')
  if owner == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return tonumber(token) end
  return false
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. token, 'PX', ARGV[2])
return token`;

const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** Where one server's shared state lives in Redis: every key of it starts with this. */
export const keyPrefix = (serverId: string) => `trellis:${serverId}`;

export class RedisLinkLeases implements LinkLeases {
  constructor(
    private readonly redis: Redis,
    private readonly serverId: string,
    readonly replicaId: string,
    readonly ttlMs: number,
  ) {
    if (replicaId.includes(':')) throw new Error(`replica id ${JSON.stringify(replicaId)} must not contain ':'`);
  }

  private leaseKey(peerId: string): string {
    return `${keyPrefix(this.serverId)}:lease:${peerId}`;
  }

  private fenceKey(peerId: string): string {
    return `${keyPrefix(this.serverId)}:fence:${peerId}`;
  }

  async acquire(peerId: string): Promise<number | undefined> {
    const token = await this.redis.eval(ACQUIRE, 2, this.leaseKey(peerId), this.fenceKey(peerId), this.replicaId, this.ttlMs);
    return token === null ? undefined : Number(token);
  }

  async renew(peerId: string, token: number): Promise<boolean> {
    return Number(await this.redis.eval(RENEW, 1, this.leaseKey(peerId), `${this.replicaId}:${token}`, this.ttlMs)) === 1;
  }

  async release(peerId: string, token: number): Promise<void> {
    await this.redis.eval(RELEASE, 1, this.leaseKey(peerId), `${this.replicaId}:${token}`);
  }
}
