/**
 * A trust link moving between two replicas of one server (PostgreSQL and Redis on this
 * machine): the replica holding it is killed with SIGKILL, and the time until the partner
 * has the link again, from the other replica, is measured beside its bound, the lease
 * time plus one redial.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { askAgainMs, createLogger, parseConfig, TrellisNode } from '../router/index.js';
import { keyFile } from './chain.js';
import { sharedNowMs } from './clock.js';
import { postgresBench } from './engines.js';
import { Replica } from './replica-process.js';

export const BENCH_REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const STEP_LIMIT_MS = 60_000;

export interface FailoverResult {
  leaseMs: number;
  /** How often the other replica asks for the link (router/replicas.ts). */
  askEveryMs: number;
  /** The redial's first backoff (link.reconnect_min_ms). */
  redialMs: number;
  /** From the SIGKILL of the holder to the partner's link from the other replica. */
  failoverMs: number;
}

async function until(what: string, check: () => boolean): Promise<void> {
  for (const deadline = sharedNowMs() + STEP_LIMIT_MS; !check(); await sleep(5)) {
    if (sharedNowMs() > deadline) throw new Error(`failover bench: ${what} not within ${STEP_LIMIT_MS} ms`);
  }
}

export async function measureFailover(dir: string): Promise<FailoverResult> {
  mkdirSync(dir, { recursive: true });
  const database = postgresBench();
  const replicas: Replica[] = [];
  let partner: TrellisNode | undefined;
  try {
    const [xId, pId] = [randomUUID(), randomUUID()];
    const tokens = { x: randomBytes(24).toString('base64url'), p: randomBytes(24).toString('base64url') };
    partner = await TrellisNode.start(
      parseConfig({
        server: { id: pId, name: 'partner', kind: 'CTS' }, listen: '127.0.0.1:0', identity_key_file: keyFile(dir, 'partner'), store: { memory: true }, log_level: 'silent',
        trusts: [{ server_id: xId, name: 'x', token_for_accepting: tokens.p, token_for_connecting: tokens.x }],
      }),
      { logger: createLogger('silent') },
    );
    let linksUp = 0;
    partner.on('link-up', () => (linksUp += 1));
    const { config: store } = await database.fresh(dir, 'x');
    const xKey = keyFile(dir, 'x');
    const xConfig = (n: number) =>
      parseConfig({
        server: { id: xId, name: 'x', kind: 'CTS' }, listen: '127.0.0.1:0', identity_key_file: xKey, store, log_level: 'warn',
        // The config's defaults for the lease and the redial, so the figure is the one an operator gets.
        replicas: { redis_url: BENCH_REDIS_URL, replica_id: `x-${n}` },
        trusts: [{ server_id: pId, name: 'partner', endpoint: `127.0.0.1:${partner!.port}`, token_for_accepting: tokens.x, token_for_connecting: tokens.p }],
      });
    const configs = [1, 2].map(xConfig);
    replicas.push(...configs.map((config, n) => Replica.start(config, join(dir, `x-${n + 1}.log`))));
    await Promise.all(replicas.map((replica) => replica.ready));
    await until('a replica holding the link', () => replicas.some((replica) => replica.links.has(pId)));
    // The lease was renewed at most a third of it ago: it lapses between 2/3 and all of its length after the kill.
    const holder = replicas.find((replica) => replica.links.has(pId))!;
    const before = linksUp;
    holder.child.kill('SIGKILL');
    const killedAt = sharedNowMs();
    await until('the link from the other replica', () => linksUp > before && partner!.link(xId) !== undefined);
    const leaseMs = configs[0]!.replicas!.lease_ms;
    return { leaseMs, askEveryMs: askAgainMs(leaseMs), redialMs: configs[0]!.link.reconnect_min_ms, failoverMs: sharedNowMs() - killedAt };
  } finally {
    for (const replica of replicas) replica.stop();
    await partner?.stop().catch(() => undefined);
    await database.cleanUp().catch(() => undefined);
  }
}
