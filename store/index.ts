export { type SqlDriver, type SqlRunner } from './driver.js';
export { type PgliteOptions, openPglite } from './pglite.js';
export { type PostgresOptions, openPostgres, redactUrl } from './postgres.js';
export { StoreError, type StoreErrorCode } from './errors.js';
export {
  type EventStore,
  type DestinationCursor,
  type StoredEvent,
  type CarriedEvent,
  type ChainHead,
  type ChatSummary,
  type AppendRequest,
  type LinkFence,
  type ChainOwn,
  type AuditEntry,
  type AuditRecord,
  type OutboxEntry,
  type OutboxRecord,
  type HeldEvent,
  type HeldRow,
  type HeldShare,
  type HeldSummary,
  type DroppedHeld,
  SqlEventStore,
  FORWARD_SET_MAX,
  serverOfMember,
  compareLogPlace,
  type LogPlace,
  isDataError,
  heldEventBytes,
} from './event-store.js';

import { openPglite, type PgliteOptions } from './pglite.js';
import { openPostgres } from './postgres.js';
import { SqlEventStore, type EventStore } from './event-store.js';

/** The embedded store: PGlite in memory, or in `dataDir` so a restarted node keeps its log. */
export async function openEmbeddedStore(options: PgliteOptions = {}): Promise<EventStore> {
  return new SqlEventStore(await openPglite(options));
}

/** Where a node keeps its log: PostgreSQL at `url`, else PGlite in `dataDir`, else PGlite in memory. */
export interface StoreLocation extends PgliteOptions {
  url?: string;
  /** PostgreSQL only: the schema to keep the tables in. */
  schema?: string;
}

export async function openStore(location: StoreLocation): Promise<EventStore> {
  if (location.url) return new SqlEventStore(await openPostgres({ url: location.url, ...(location.schema ? { schema: location.schema } : {}) }));
  return openEmbeddedStore(location);
}
