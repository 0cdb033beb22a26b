import { PGlite } from '@electric-sql/pglite';
import { drizzle } from 'drizzle-orm/pglite';
import { migrate } from 'drizzle-orm/pglite/migrator';
import { migrationsFolder, type SqlDriver, type SqlRunner } from './driver.js';
import { StoreError } from './errors.js';

export interface PgliteOptions {
  /** A directory keeps the log across restarts; absent means in memory. */
  dataDir?: string;
  /**
   * fsync: a commit is on disk (fsynced) before it is acknowledged, so it survives a power
   * loss; os: written to the operating system only, so it survives a crash of the process.
   */
  durability?: 'fsync' | 'os';
}

/** The embedded engine: PostgreSQL compiled to WebAssembly, in this process. */
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
    description: `embedded PGlite at ${options.dataDir ?? 'memory'}`,
  };
}
