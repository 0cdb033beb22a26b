import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import { drizzle } from 'drizzle-orm/pglite';
import { migrate } from 'drizzle-orm/pglite/migrator';
import { StoreError } from './errors.js';

/**
 * The SQL the event store needs from an engine. PGlite implements it now; a
 * PostgreSQL driver (pg) implements the same two calls over the same schema.
 * Hot paths are hand-written SQL (one statement per batch, see the speed budget);
 * the schema and its migrations come from drizzle (store/schema.ts).
 */
export interface SqlRunner {
  query<Row>(text: string, params?: unknown[]): Promise<Row[]>;
}

export interface SqlDriver extends SqlRunner {
  transaction<T>(work: (tx: SqlRunner) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** store/migrations, found from both the sources (vitest) and the build (dist/store). */
function migrationsFolder(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 4; depth++, dir = dirname(dir)) {
    const candidate = join(dir, 'store', 'migrations');
    if (existsSync(join(candidate, 'meta', '_journal.json'))) return candidate;
    const beside = join(dir, 'migrations');
    if (existsSync(join(beside, 'meta', '_journal.json'))) return beside;
  }
  throw new StoreError('migration-failed', 'store/migrations not found beside the installed code');
}

export interface PgliteOptions {
  /** A directory keeps the log across restarts; absent means in memory. */
  dataDir?: string;
}

export async function openPglite(options: PgliteOptions = {}): Promise<SqlDriver> {
  let db: PGlite;
  try {
    db = options.dataDir ? await PGlite.create(options.dataDir) : await PGlite.create();
  } catch (cause) {
    throw new StoreError('open-failed', `cannot open the embedded store at ${options.dataDir ?? 'memory'}`, { cause });
  }
  try {
    await migrate(drizzle(db), { migrationsFolder: migrationsFolder() });
  } catch (cause) {
    await db.close();
    throw new StoreError('migration-failed', 'applying the store migrations failed', { cause });
  }
  const runner = (target: Pick<PGlite, 'query'>): SqlRunner => ({
    query: async <Row>(text: string, params?: unknown[]) => (await target.query<Row>(text, params)).rows,
  });
  return {
    ...runner(db),
    transaction: (work) => db.transaction((tx) => work(runner(tx))),
    close: () => db.close(),
  };
}
