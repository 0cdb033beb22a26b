export { type SqlDriver, type SqlRunner, type PgliteOptions, openPglite } from './driver.js';
export { StoreError, type StoreErrorCode } from './errors.js';
export {
  type EventStore,
  type StoredEvent,
  type CarriedEvent,
  type ChainHead,
  type ChatSummary,
  type AppendRequest,
  type AuditEntry,
  type AuditRecord,
  type HeldEvent,
  type HeldRow,
  type HeldShare,
  type HeldSummary,
  type DroppedHeld,
  SqlEventStore,
  serverOfMember,
  isDataError,
} from './event-store.js';

import { openPglite, type PgliteOptions } from './driver.js';
import { SqlEventStore, type EventStore } from './event-store.js';

/** The embedded store: PGlite in memory, or in `dataDir` so a restarted node keeps its log. */
export async function openEmbeddedStore(options: PgliteOptions = {}): Promise<EventStore> {
  return new SqlEventStore(await openPglite(options));
}
