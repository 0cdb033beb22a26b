import pg from 'pg';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import { migrationsFolder, type SqlDriver } from './driver.js';
import { poolDriver, rowTypes } from './pool-driver.js';
import { StoreError } from './errors.js';

export interface PostgresOptions {
  /** postgres://user:password@host:port/database */
  url: string;
  /** Tables go into this schema (created if missing) instead of the URL's default; tests use one per run. */
  schema?: string;
  /** Connections kept open; the node writes through one serial queue, reads may overlap. */
  poolSize?: number;
}

/** How long a first connection may take before the engine counts as unreachable. */
const CONNECT_TIMEOUT_MS = 5_000;
const DEFAULT_POOL_SIZE = 8;
/** Serialises migrations of replicas that start at once (any fixed key; this is "trellis" in ASCII). */
const MIGRATION_LOCK_KEY = 0x7472656c6c6973n;
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** The URL as an operator may read it: the password never appears. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '<a URL that does not parse>';
  }
}

/** One line that says what failed and what to check, for each way a first connection fails. */
export function explainConnectError(url: string, error: unknown): string {
  const where = `PostgreSQL at ${redactUrl(url)}`;
  const code = (error as { code?: string } | undefined)?.code;
  const message = error instanceof Error ? error.message : String(error);
  switch (code) {
    case 'ECONNREFUSED':
      return `${where}: connection refused; check that PostgreSQL runs there and the host and port are right`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `${where}: the host name does not resolve; check the host`;
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `${where}: no answer from the host; check the host, the port and the firewall`;
    case '28P01':
      return `${where}: the password was refused; check the user and password`;
    case '28000':
      return `${where}: the server refused this user (${message}); check the user and pg_hba.conf`;
    case '3D000':
      return `${where}: the database does not exist (${message}); create it, or fix the URL's database name`;
    case '3F000':
      return `${where}: the schema does not exist (${message})`;
    default:
      if (/timeout/i.test(message)) return `${where}: no answer within ${CONNECT_TIMEOUT_MS / 1000} s; check the host, the port and the firewall`;
      return `${where}: ${message}${code ? ` (${code})` : ''}`;
  }
}

function checkUrl(url: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new StoreError('open-failed', `${redactUrl(url)} is not a PostgreSQL URL: write postgres://user:password@host:5432/database`);
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:')
    throw new StoreError('open-failed', `${redactUrl(url)} is not a PostgreSQL URL: it must start with postgres://`);
}

/** PostgreSQL over pg: the same schema, migrations and SQL as the embedded engine. */
export async function openPostgres(options: PostgresOptions): Promise<SqlDriver> {
  checkUrl(options.url);
  if (options.schema !== undefined && !SCHEMA_NAME.test(options.schema))
    throw new StoreError('open-failed', `schema ${JSON.stringify(options.schema)} must be a lower-case SQL name`);
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolSize ?? DEFAULT_POOL_SIZE,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    types: rowTypes,
    ...(options.schema ? { options: `-c search_path=${options.schema}` } : {}),
  });
  // An idle connection that the server drops must not crash the process; the next query reconnects.
  pool.on('error', () => undefined);
  try {
    await migrateOnce(pool, options.schema);
  } catch (error) {
    await pool.end().catch(() => undefined);
    if (error instanceof StoreError) throw error;
    const code = (error as { code?: string }).code;
    const connecting = !code || /^(E[A-Z]+|28|3D)/.test(code) || /timeout|terminated/i.test(String(error));
    if (connecting) throw new StoreError('unreachable', explainConnectError(options.url, error), { cause: error });
    throw new StoreError('migration-failed', `applying the store migrations to ${redactUrl(options.url)} failed: ${(error as Error).message}`, { cause: error });
  }
  return poolDriver(pool, `PostgreSQL at ${redactUrl(options.url)}${options.schema ? ` (schema ${options.schema})` : ''}`, () => pool.end());
}

/**
 * Applies the migrations under a session advisory lock, so replicas that start at once
 * take turns: the second finds the journal up to date and applies nothing.
 */
async function migrateOnce(pool: pg.Pool, schema: string | undefined): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_KEY.toString()]);
    try {
      if (schema) await client.query(`create schema if not exists ${schema}`);
      await migrate(drizzle(client), { migrationsFolder: migrationsFolder(), ...(schema ? { migrationsSchema: schema } : {}) });
    } finally {
      await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY.toString()]).catch(() => undefined);
    }
  } finally {
    client.release();
  }
}
