import { readFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { dropSchemas, POSTGRES_TEST_URL, postgresUnavailable, skipWithout } from '../test/support/engines.js';
import { migrationsFolder } from './driver.js';
import { StoreError } from './errors.js';
import { openPostgres, redactUrl } from './postgres.js';

const skip = await skipWithout('PostgreSQL', await postgresUnavailable());
const base = new URL(POSTGRES_TEST_URL);
const withUrl = (change: (url: URL) => void): string => {
  const url = new URL(base);
  change(url);
  return url.toString();
};

/** The role scripts/ci-postgres.sh makes PostgreSQL check passwords for (this machine trusts every other local login). */
const PASSWORD_ROLE = 'trellis_pw';

/** Why PASSWORD_ROLE cannot show a refused password here, or undefined when it can. */
async function passwordsUnchecked(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: withUrl((url) => ((url.username = PASSWORD_ROLE), (url.password = 'not-the-password'))) });
  try {
    await client.connect();
    return `PostgreSQL lets ${PASSWORD_ROLE} in without its password (scripts/ci-postgres.sh sets that up)`;
  } catch (error) {
    return (error as { code?: string }).code === '28P01' ? undefined : `no role ${PASSWORD_ROLE} that checks passwords (scripts/ci-postgres.sh makes one): ${(error as Error).message}`;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function refusal(url: string): Promise<StoreError> {
  const error = await openPostgres({ url }).then(
    async (driver) => {
      await driver.close();
      throw new Error(`${url} opened`);
    },
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(StoreError);
  return error as StoreError;
}

describe.skipIf(skip)('PostgreSQL driver', () => {
  const schemas: string[] = [];
  afterAll(() => dropSchemas(POSTGRES_TEST_URL, schemas));

  it.each([
    ['a host that does not resolve', withUrl((url) => (url.hostname = 'no-such-host.invalid')), 'does not resolve'],
    ['a port nothing listens on', withUrl((url) => (url.port = '5999')), 'connection refused'],
    ['a database that does not exist', withUrl((url) => (url.pathname = '/no_such_database')), 'database does not exist'],
    ['a role that does not exist', withUrl((url) => (url.username = 'no_such_role')), 'refused this user'],
  ])('refuses %s with one line that names the URL', async (_case, url, reason) => {
    const error = await refusal(url);
    expect(error.code).toBe('unreachable');
    expect(error.message).toContain(redactUrl(url));
    expect(error.message).toContain(reason);
    expect(error.message).not.toContain('\n');
  });

  it('refuses a wrong password, and never repeats it', async () => {
    const unchecked = await passwordsUnchecked();
    if (await skipWithout('wrong-password', unchecked)) return;
    const url = withUrl((url) => ((url.username = PASSWORD_ROLE), (url.password = 'the-wrong-one')));
    const error = await refusal(url);
    expect(error.code).toBe('unreachable');
    expect(error.message).toContain('password was refused');
    expect(error.message).toContain(`${PASSWORD_ROLE}:***@`);
    expect(error.message).not.toContain('the-wrong-one');
  });

  it('refuses what is not a PostgreSQL URL before connecting', async () => {
    for (const url of ['mysql://root@127.0.0.1/test', 'not a url']) expect((await refusal(url)).code).toBe('open-failed');
  });

  it('migrates once when two replicas start at the same moment', async () => {
    const schema = `t_migrate_${process.pid}_${Date.now().toString(36)}`;
    schemas.push(schema);
    const drivers = await Promise.all([openPostgres({ url: POSTGRES_TEST_URL, schema }), openPostgres({ url: POSTGRES_TEST_URL, schema })]);
    try {
      const journal = JSON.parse(readFileSync(`${migrationsFolder()}/meta/_journal.json`, 'utf8')) as { entries: unknown[] };
      const applied = await drivers[0].query<{ n: number }>(`select count(*)::int as n from ${schema}.__drizzle_migrations`);
      expect(applied[0]?.n).toBe(journal.entries.length);
      // Both work on the same tables.
      await drivers[0].query(`insert into link_cursors (peer_id, stored_link_seq) values ('p', 9007199254740991)`);
      const [row] = await drivers[1].query<{ stored_link_seq: number }>('select stored_link_seq from link_cursors');
      expect(row?.stored_link_seq).toBe(Number.MAX_SAFE_INTEGER);
    } finally {
      await Promise.all(drivers.map((driver) => driver.close()));
    }
  });

  it('refuses to round an integer past 2^53 instead of reading it wrong', async () => {
    const schema = `t_bigint_${process.pid}_${Date.now().toString(36)}`;
    schemas.push(schema);
    const driver = await openPostgres({ url: POSTGRES_TEST_URL, schema });
    try {
      await expect(driver.query('select 9007199254740993::bigint as n')).rejects.toThrow(/past 2\^53/);
    } finally {
      await driver.close();
    }
  });
});
