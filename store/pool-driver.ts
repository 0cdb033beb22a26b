import { createHash } from 'node:crypto';
import pg from 'pg';
import type { SqlDriver, SqlRunner } from './driver.js';
import { StoreError } from './errors.js';

/**
 * Both engines are driven through a node-postgres pool: PostgreSQL over its sockets, PGlite
 * over a socket into the engine (store/pglite-socket.ts, one connection). So both get the same row
 * types and the same prepared statements, and one transaction helper.
 */

/**
 * Integers come back as numbers: every bigint the store keeps (local seq, chain seq, hybrid
 * clock) stays below 2^53 by the shape checks. A value past that is refused rather than rounded.
 */
function bigintAsNumber(text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new StoreError('read-failed', `an integer column holds ${text}, past 2^53`);
  return value;
}

export const rowTypes = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8 ? bigintAsNumber : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/** The store sends a few dozen distinct statements; past this many, a new text runs unprepared rather than grow every connection. */
const PREPARED_STATEMENTS_MAX = 256;
const statementNames = new Map<string, string>();

/**
 * Every statement the store sends is a constant text with parameters, so each is prepared
 * once per connection under a name and then only executed: parsing and planning the
 * append's CTE over fifteen arrays cost more than running it (on PGlite 0.65 of 1.26 ms
 * for a three-event append; on PostgreSQL most of the server's CPU in the one-hop bench).
 */
function statementName(text: string): string | undefined {
  let name = statementNames.get(text);
  if (!name && statementNames.size < PREPARED_STATEMENTS_MAX) statementNames.set(text, (name = `trellis_${createHash('sha256').update(text).digest('hex').slice(0, 16)}`));
  return name;
}

function runner(target: pg.Pool | pg.PoolClient): SqlRunner {
  return {
    query: async <Row>(text: string, params?: unknown[]) => {
      const name = statementName(text);
      return (await target.query({ ...(name ? { name } : {}), text, values: params ?? [] })).rows as Row[];
    },
  };
}

/** A store driver over `pool`; `close` releases the pool and whatever is under it. */
export function poolDriver(pool: pg.Pool, description: string, close: () => Promise<void>): SqlDriver {
  return {
    ...runner(pool),
    transaction: async (work) => {
      const client = await pool.connect();
      try {
        await client.query('begin');
        const result = await work(runner(client));
        await client.query('commit');
        return result;
      } catch (error) {
        await client.query('rollback').catch(() => undefined);
        throw error;
      } finally {
        client.release();
      }
    },
    close,
    description,
  };
}
