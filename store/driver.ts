import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StoreError } from './errors.js';

/**
 * The SQL the event store needs from an engine: PGlite (store/pglite.ts) and PostgreSQL
 * (store/postgres.ts) implement it over the same schema and migrations. Hot paths are
 * hand-written SQL (one statement per batch, see the speed budget); the schema and its
 * migrations come from drizzle (store/schema.ts).
 */
export interface SqlRunner {
  query<Row>(text: string, params?: unknown[]): Promise<Row[]>;
}

export interface SqlDriver extends SqlRunner {
  transaction<T>(work: (tx: SqlRunner) => Promise<T>): Promise<T>;
  close(): Promise<void>;
  /** What the operator reads at start: the engine and where it is (never a password). */
  readonly description: string;
}

/** store/migrations, found from both the sources (vitest) and the build (dist/store). */
export function migrationsFolder(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 4; depth++, dir = dirname(dir)) {
    const candidate = join(dir, 'store', 'migrations');
    if (existsSync(join(candidate, 'meta', '_journal.json'))) return candidate;
    const beside = join(dir, 'migrations');
    if (existsSync(join(beside, 'meta', '_journal.json'))) return beside;
  }
  throw new StoreError('migration-failed', 'store/migrations not found beside the installed code');
}
