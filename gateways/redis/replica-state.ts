import type { Redis } from 'ioredis';
import type { LinkSession, TrellisNode } from '../../router/index.js';
import { keyPrefix } from './leases.js';

/** One replica as the others and the admin view see it; it lapses unless refreshed. */
export interface ReplicaPresence {
  replica: string;
  pid: number;
  startedAt: string;
  /** The peers whose links this replica holds now. */
  links: string[];
}

/** A trust link's last known state, whichever replica held it. */
export interface SharedLinkStatus {
  peer: string;
  status: 'up' | 'down';
  replica: string;
  at: string;
}

const presenceKey = (serverId: string, replica: string) => `${keyPrefix(serverId)}:replica:${replica}`;
const linksKey = (serverId: string) => `${keyPrefix(serverId)}:links`;

/**
 * Keeps this replica's presence and the status of the links it holds in Redis, for the
 * admin view of a server run as several processes. Writes are best effort: Redis being
 * away never stops a link.
 */
export class ReplicaState {
  private readonly timer: NodeJS.Timeout;
  private readonly startedAt = new Date().toISOString();

  constructor(
    private readonly redis: Redis,
    private readonly node: TrellisNode,
    private readonly replica: string,
    private readonly ttlMs: number,
  ) {
    node.on('link-up', (session: LinkSession) => void this.linkChanged(session.peerId, 'up'));
    node.on('link-down', (session: LinkSession) => void this.linkChanged(session.peerId, 'down'));
    this.timer = setInterval(() => void this.announce(), ttlMs / 3);
    this.timer.unref();
    void this.announce();
  }

  private async announce(): Promise<void> {
    const presence: ReplicaPresence = { replica: this.replica, pid: process.pid, startedAt: this.startedAt, links: this.node.linkStatus().filter((link) => link.status === 'green').map((link) => link.serverId) };
    await this.redis.set(presenceKey(this.node.id, this.replica), JSON.stringify(presence), 'PX', this.ttlMs).catch(() => undefined);
  }

  private async linkChanged(peer: string, status: SharedLinkStatus['status']): Promise<void> {
    const entry: SharedLinkStatus = { peer, status, replica: this.replica, at: new Date().toISOString() };
    await this.redis.hset(linksKey(this.node.id), peer, JSON.stringify(entry)).catch(() => undefined);
    await this.announce();
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.redis.del(presenceKey(this.node.id, this.replica)).catch(() => undefined);
  }
}

/** What Redis holds of a server's replicas: each live one, and each link's last status. */
export async function readReplicaState(redis: Redis, serverId: string): Promise<{ replicas: ReplicaPresence[]; links: SharedLinkStatus[] }> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', presenceKey(serverId, '*'), 'COUNT', 100);
    cursor = next;
    keys.push(...found);
  } while (cursor !== '0');
  const replicas = keys.length > 0 ? (await redis.mget(keys)).filter((value): value is string => value !== null).map((value) => JSON.parse(value) as ReplicaPresence) : [];
  const links = Object.values(await redis.hgetall(linksKey(serverId))).map((value) => JSON.parse(value) as SharedLinkStatus);
  return { replicas, links };
}
