import type { AuditRecord, EventStore } from '../../store/index.js';
import { ChatDestinations } from './destinations.js';
import { encodeChatEvents, encodeJournal, encodeRouting } from './records.js';
import type { AppendTail } from '../../router/index.js';
import { journalProjection, ROUTING_OUTBOX_TOPIC, type ProjectionName } from './topics.js';

/** A record on its way to a projection: its key orders it (one key, one partition). */
export interface OutgoingRecord {
  projection: ProjectionName;
  key: string;
  value: Buffer;
  /** Its place in the source (local seq, journal id, outbox id): the in-process feed's offset. */
  position: number;
}

export interface SourceBatch {
  records: OutgoingRecord[];
  /** The source position the batch reaches: a relay's cursor moves here once the batch is published. */
  position: number;
}

/** One table read in order after a position: the log, the journal or the outbox. */
export interface ProjectionSource {
  readonly name: string;
  read(after: number, limit: number): Promise<SourceBatch>;
  /** The newest position in the source now (where a relay drains to, and 'latest' starts). */
  head(): Promise<number>;
}

/** What a batch may weigh: below Kafka's default 1 MiB for a record batch, whatever the bodies (≤ 64 KiB each). */
export const SOURCE_BATCH_BYTES_MAX = 768 * 1024;

/**
 * The event log, in local seq order: every stored event, keyed by chat. Recent appends
 * come from memory (the tail the node's 'appended' event fills); older ones from the store.
 */
export class ChatEventSource implements ProjectionSource {
  readonly name = 'chat-events';
  private readonly destinations: ChatDestinations;

  constructor(
    private readonly store: Pick<EventStore, 'eventsAfter' | 'chatServersOf' | 'lastLocalSeq'>,
    private readonly serverId: string,
    private readonly recent?: AppendTail,
  ) {
    this.destinations = new ChatDestinations(store);
  }

  async read(after: number, limit: number): Promise<SourceBatch> {
    const events = (await this.recent?.after(after, limit))?.events ?? (await this.store.eventsAfter(after, limit));
    if (events.length === 0) return { records: [], position: after };
    const destinations = await this.destinations.of(events);
    const values = encodeChatEvents(this.serverId, events, (chatId) => destinations.get(chatId) ?? []);
    const records: OutgoingRecord[] = [];
    let bytes = 0;
    for (let index = 0; index < events.length; index++) {
      const [event, value] = [events[index]!, values[index]!];
      if (records.length > 0 && bytes + value.length > SOURCE_BATCH_BYTES_MAX) break;
      bytes += value.length;
      records.push({ projection: 'chat-events', key: event.chatId, value, position: event.localSeq });
    }
    return { records, position: records[records.length - 1]!.position };
  }

  head(): Promise<number> {
    return this.store.lastLocalSeq();
  }
}

/** A hole in the journal's ids younger than this may be a commit still on its way (PostgreSQL, concurrent writers). */
export const JOURNAL_HOLE_SETTLE_MS = 1_000;

/**
 * The audit journal, in id order, to admin-events or system-events by kind, keyed by the
 * server. Journal entries are written concurrently (on PostgreSQL, by several
 * connections), so a later id can commit first: a read stops before a hole in the ids
 * until the hole has stayed for JOURNAL_HOLE_SETTLE_MS (then it is an id a failed write
 * used up), and the entry that fills it is not skipped.
 */
export class JournalSource implements ProjectionSource {
  readonly name = 'journal';
  private hole: { after: number; seenAtMs: number } | undefined;

  constructor(
    private readonly store: Pick<EventStore, 'auditAfter' | 'lastAuditId'>,
    private readonly serverId: string,
    private readonly nowMs: () => number = Date.now,
  ) {}

  async read(after: number, limit: number): Promise<SourceBatch> {
    const entries = this.untilHole(after, await this.store.auditAfter(after, limit));
    if (entries.length === 0) return { records: [], position: after };
    const records = entries.map((entry) => ({ projection: journalProjection(entry.kind), key: this.serverId, value: encodeJournal(this.serverId, entry), position: entry.id }));
    return { records, position: entries[entries.length - 1]!.id };
  }

  private untilHole(after: number, entries: AuditRecord[]): AuditRecord[] {
    let expected = after + 1;
    for (let index = 0; index < entries.length; index++, expected++) {
      const id = entries[index]!.id;
      if (id === expected) continue;
      const holeAfter = expected - 1;
      if (this.hole?.after !== holeAfter) this.hole = { after: holeAfter, seenAtMs: this.nowMs() };
      if (this.nowMs() - this.hole.seenAtMs < JOURNAL_HOLE_SETTLE_MS) return entries.slice(0, index);
      expected = id;
    }
    return entries;
  }

  head(): Promise<number> {
    return this.store.lastAuditId();
  }
}

/**
 * The outbox's routing records, in id order, keyed by the server. The routing recorder
 * is their one writer and writes one statement at a time, so ids commit in order.
 */
export class RoutingSource implements ProjectionSource {
  readonly name = 'routing';

  constructor(
    private readonly store: Pick<EventStore, 'outboxAfter' | 'lastOutboxId'>,
    private readonly serverId: string,
  ) {}

  async read(after: number, limit: number): Promise<SourceBatch> {
    const rows = await this.store.outboxAfter(after, limit, ROUTING_OUTBOX_TOPIC);
    if (rows.length === 0) return { records: [], position: after };
    const records = rows.map((row) => ({ projection: 'routing' as const, key: this.serverId, value: encodeRouting(this.serverId, row.id, row.payload), position: row.id }));
    return { records, position: rows[rows.length - 1]!.id };
  }

  head(): Promise<number> {
    return this.store.lastOutboxId();
  }
}
