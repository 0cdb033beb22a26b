import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { openStore, type EventStore } from '../../store/index.js';

/**
 * The store engines a test runs on. PostgreSQL is the real server on this machine
 * (database `test`); each store gets a schema of its own, so runs and parallel test
 * files never see each other's rows. Without a server the PostgreSQL cases skip with
 * the reason printed, except under CI, where a missing engine fails the run.
 */
export const POSTGRES_TEST_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Runs `work` on a connection of its own to `url`, closed after. */
export async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
    return await work(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Why PostgreSQL cannot be used here, or undefined when it can. */
export async function postgresUnavailable(url = POSTGRES_TEST_URL): Promise<string | undefined> {
  return withClient(url, (client) => client.query('select 1')).then(
    () => undefined,
    (error: Error) => `PostgreSQL at ${url} is not reachable (${error.message})`,
  );
}

/**
 * Resolves to whether a test that needs an engine should skip: prints why when it does,
 * and throws under CI, where every engine must be there.
 */
export async function skipWithout(engine: string, reason: string | undefined): Promise<boolean> {
  if (!reason) return false;
  if (process.env.CI === 'true') throw new Error(`${engine} is required under CI: ${reason}`);
  console.warn(`skipping the ${engine} tests: ${reason}`);
  return true;
}

export const REDIS_TEST_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Why Redis cannot be used here, or undefined when it can. */
export async function redisUnavailable(url = REDIS_TEST_URL): Promise<string | undefined> {
  const { openRedis } = await import('../../gateways/redis/index.js');
  try {
    (await openRedis(url)).disconnect();
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

/** A store that can be reopened where it was: a PGlite data directory, or a PostgreSQL schema. */
export interface TestEngine {
  name: 'pglite' | 'postgres';
  /** Opens a fresh store, or the store at `place` (from `place()`) again. */
  open(place?: string): Promise<EventStore>;
  /** A new place to open (and reopen) a store at. */
  place(): string;
  /** Closes every store opened and removes every place made. */
  cleanUp(): Promise<void>;
}

let schemaCount = 0;
const uniqueSchema = () => `t_${process.pid}_${Date.now().toString(36)}_${(schemaCount++).toString(36)}`;

export function pgliteEngine(): TestEngine {
  const stores: EventStore[] = [];
  const dirs: string[] = [];
  return {
    name: 'pglite',
    async open(place) {
      const store = await openStore(place ? { dataDir: place } : {});
      stores.push(store);
      return store;
    },
    place() {
      const dir = mkdtempSync(join(tmpdir(), 'trellis-store-'));
      dirs.push(dir);
      return dir;
    },
    async cleanUp() {
      await Promise.all(stores.splice(0).map((store) => store.close().catch(() => undefined)));
      for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function postgresEngine(url = POSTGRES_TEST_URL): TestEngine {
  const stores: EventStore[] = [];
  const schemas: string[] = [];
  const place = () => {
    const schema = uniqueSchema();
    schemas.push(schema);
    return schema;
  };
  return {
    name: 'postgres',
    async open(schema) {
      const store = await openStore({ url, schema: schema ?? place() });
      stores.push(store);
      return store;
    },
    place,
    async cleanUp() {
      await Promise.all(stores.splice(0).map((store) => store.close().catch(() => undefined)));
      await dropSchemas(url, schemas.splice(0));
    },
  };
}

export async function dropSchemas(url: string, schemas: readonly string[]): Promise<void> {
  if (schemas.length === 0) return;
  await withClient(url, async (client) => {
    for (const schema of schemas) await client.query(`drop schema if exists ${schema} cascade`);
  });
}

let databaseCount = 0;

/** A database of its own on the test server (what separate servers or replicas of one server are given), and how to drop it. */
export async function freshDatabase(url = POSTGRES_TEST_URL): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `trellis_test_${process.pid}_${Date.now().toString(36)}_${(databaseCount++).toString(36)}`;
  const admin = (sql: string) => withClient(url, (client) => client.query(sql)).then(() => undefined);
  await admin(`create database ${name}`);
  const at = new URL(url);
  at.pathname = `/${name}`;
  return { url: at.toString(), drop: () => admin(`drop database if exists ${name} with (force)`) };
}

/** The engines available to this run: PGlite always, PostgreSQL when reachable (required under CI). */
export async function testEngines(): Promise<TestEngine[]> {
  const engines = [pgliteEngine()];
  if (!(await skipWithout('PostgreSQL', await postgresUnavailable()))) engines.push(postgresEngine());
  return engines;
}
