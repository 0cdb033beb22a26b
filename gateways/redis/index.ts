import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { ConfigError, replicationOf, storeLocation, type NodeConfig, type TrellisNode } from '../../router/index.js';
import { redactUrl } from '../../store/index.js';
import { openRedis } from './connection.js';
import { RedisLinkLeases } from './leases.js';
import type { ReplicaView } from '../../proto/gen/trellis/v1/admin.js';
import { readReplicaState, ReplicaState } from './replica-state.js';

export { openRedis, RedisUnavailable } from './connection.js';
export { RedisLinkLeases, keyPrefix } from './leases.js';
export { ReplicaState, readReplicaState, type ReplicaPresence, type SharedLinkStatus } from './replica-state.js';

/** One process's part in running its server as several replicas: the leases to give the node, then its state in Redis. */
export interface Replication {
  readonly leases: RedisLinkLeases;
  readonly description: string;
  /** Starts keeping the node's presence and link status in Redis. */
  attach(node: TrellisNode): void;
  /** Every live replica of the server and the links it holds, for the admin view. */
  replicas(): Promise<ReplicaView[]>;
  close(): Promise<void>;
}

/**
 * Replicas when REDIS_URL (or replicas.redis_url) is set, else undefined. They share one
 * PostgreSQL; an embedded store cannot be shared, so that is refused before anything runs.
 */
export async function openReplication(config: NodeConfig, env: NodeJS.ProcessEnv): Promise<Replication | undefined> {
  const replication = replicationOf(config, env);
  if (!replication) return undefined;
  if (!storeLocation(config.store, env).url) {
    throw new ConfigError('replicas', ['replicas of one server share one PostgreSQL store: set DATABASE_URL or store.url (the embedded store belongs to one process)']);
  }
  const redis: Redis = await openRedis(replication.redisUrl);
  const replicaId = replication.replicaId ?? `${hostname().replace(/[^A-Za-z0-9._-]/g, '-')}-${process.pid}`;
  const leases = new RedisLinkLeases(redis, config.server.id, replicaId, replication.leaseMs);
  let state: ReplicaState | undefined;
  return {
    leases,
    description: `Redis at ${redactUrl(replication.redisUrl)}, replica ${replicaId}, leases of ${replication.leaseMs} ms`,
    attach: (node) => (state = new ReplicaState(redis, node, replicaId, replication.leaseMs)),
    replicas: async () =>
      (await readReplicaState(redis, config.server.id)).replicas.map((replica) => ({ replicaId: replica.replica, pid: replica.pid, startedAt: replica.startedAt, peerIds: replica.links })),
    close: async () => {
      await state?.close();
      redis.disconnect();
    },
  };
}
