/**
 * The store engine each bench server runs on: PGlite in a data directory of its own, or
 * a database of its own on the PostgreSQL server (BENCH_DATABASE_URL, default the local
 * one), as separate servers would have. Databases made here are dropped at the end.
 */
import { join } from 'node:path';
import pg from 'pg';
import type { StoreLocation } from '../store/index.js';

export type EngineName = 'PGlite' | 'PostgreSQL';

export interface BenchEngine {
  readonly name: EngineName;
  /** Set on the embedded store without fsync (a bound, never a result): 'os'. */
  readonly durability?: 'os';
  /** A fresh store for the server `name`: where it is, and the config's `store` section for it. */
  fresh(dir: string, name: string): Promise<{ location: StoreLocation; config: Record<string, string> }>;
  cleanUp(): Promise<void>;
}

/** PGlite in a data directory per server, at the default durability, or at 'os' (no fsync on the path: a bound). */
function pgliteEngine(durability?: 'os'): BenchEngine {
  const setting: { durability?: 'os' } = durability ? { durability } : {};
  return {
    name: 'PGlite',
    ...setting,
    fresh: async (dir, name) => ({ location: { dataDir: join(dir, name), ...setting }, config: { data_dir: join(dir, name), ...setting } }),
    cleanUp: async () => undefined,
  };
}

export const pgliteBench = pgliteEngine();
/** Every server's store with store.durability: os: what a paced run's latency is without any fsync on its path. */
export const pgliteOsBench = pgliteEngine('os');

const POSTGRES_BENCH_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

async function withAdmin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: POSTGRES_BENCH_URL, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Why the PostgreSQL cases cannot run here, or undefined when they can. */
export async function postgresBenchUnavailable(): Promise<string | undefined> {
  return withAdmin(async (client) => void (await client.query('select 1'))).then(
    () => undefined,
    (error: Error) => `no PostgreSQL at ${POSTGRES_BENCH_URL} (${error.message})`,
  );
}

export function postgresBench(): BenchEngine {
  const made: string[] = [];
  return {
    name: 'PostgreSQL',
    async fresh(_dir, name) {
      const database = `trellis_bench_${process.pid}_${made.length}_${name.replace(/\W/g, '_')}`;
      await withAdmin((client) => client.query(`create database ${database}`));
      made.push(database);
      const url = new URL(POSTGRES_BENCH_URL);
      url.pathname = `/${database}`;
      return { location: { url: url.toString() }, config: { url: url.toString() } };
    },
    async cleanUp() {
      const databases = made.splice(0);
      if (databases.length > 0) await withAdmin(async (client) => {
        for (const database of databases) await client.query(`drop database if exists ${database} with (force)`);
      });
    },
  };
}
