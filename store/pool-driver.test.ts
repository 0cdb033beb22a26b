import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPglite, type SqlDriver } from './index.js';

describe('statements through the pool', () => {
  let driver: SqlDriver;
  beforeAll(async () => {
    driver = await openPglite();
  });
  afterAll(async () => {
    await driver.close();
  });

  it('prepares a statement once per connection and then only executes it, also inside transactions', async () => {
    const text = 'select $1::int + 1 as next';
    const answers: number[] = [];
    for (let n = 0; n < 3; n++) answers.push((await driver.query<{ next: number }>(text, [n]))[0]!.next);
    answers.push(await driver.transaction(async (tx) => (await tx.query<{ next: number }>(text, [10]))[0]!.next));
    expect(answers).toEqual([1, 2, 3, 11]);
    const prepared = await driver.query<{ statement: string }>('select statement from pg_prepared_statements');
    expect(prepared.filter((row) => row.statement === text)).toHaveLength(1);
  });

  it('gives bigints as numbers and bytea as bytes', async () => {
    const [row] = await driver.query<{ big: number; bytes: Buffer }>('select $1::bigint as big, $2::bytea as bytes', [2 ** 40, Buffer.from([1, 2, 3])]);
    expect(row!.big).toBe(2 ** 40);
    expect([...row!.bytes]).toEqual([1, 2, 3]);
  });

  it('keeps answering each statement its own rows after one fails', async () => {
    await driver.query('create table if not exists once (n int primary key)');
    const insert = 'insert into once values ($1) returning n';
    expect(await driver.query(insert, [1])).toEqual([{ n: 1 }]);
    await expect(driver.query(insert, [1])).rejects.toThrow(/duplicate key/);
    expect(await driver.query(insert, [2])).toEqual([{ n: 2 }]);
    expect(await driver.query('select n from once order by n')).toEqual([{ n: 1 }, { n: 2 }]);
  });

  it('fails a transaction whole: what it wrote before the error is gone', async () => {
    await driver.query('create table if not exists probe (n int primary key)');
    await expect(
      driver.transaction(async (tx) => {
        await tx.query('insert into probe values (1)');
        await tx.query('insert into probe values (1)');
      }),
    ).rejects.toThrow(/duplicate key/);
    expect(await driver.query('select n from probe')).toEqual([]);
  });
});
