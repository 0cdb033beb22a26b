import { BinaryReader, BinaryWriter } from '@bufbuild/protobuf/wire';
import { ChatEventRecord, JournalRecord, RoutingRecord } from '../../proto/gen/trellis/v1/projection.js';
import type { AuditRecord, StoredEvent } from '../../store/index.js';
import type { ProjectionName } from './topics.js';

/** What each projection's records are (proto/trellis/v1/projection.proto). */
export interface RecordOf {
  'chat-events': ChatEventRecord;
  routing: RoutingRecord;
  'admin-events': JournalRecord;
  'system-events': JournalRecord;
}

const asBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/** Wraps each record of a batch while encoding it (field 1, length-delimited), so one buffer holds them all. */
const BATCH_ENTRY_TAG = (1 << 3) | 2;

/**
 * Chat-event records, each a view into one buffer made for the whole batch: encoding them
 * one by one made each writer grow from empty and copy its bytes out, which cost more
 * than the rest of encoding (bench/publish.ts). The batch is written as if it were a
 * message of repeated records, then split at the length prefixes.
 */
export function encodeChatEvents(serverId: string, events: readonly StoredEvent[], destinationsOf: (chatId: string) => readonly string[]): Buffer[] {
  const writer = new BinaryWriter();
  for (const event of events) {
    writer.uint32(BATCH_ENTRY_TAG).fork();
    // The stored event goes in as it is: the encoder writes an Event's fields and ignores the store's extras.
    ChatEventRecord.encode({ serverId, localSeq: event.localSeq, event, destinations: destinationsOf(event.chatId) as string[] }, writer);
    writer.join();
  }
  const all = writer.finish();
  const reader = new BinaryReader(all);
  const records: Buffer[] = [];
  while (reader.pos < all.length) {
    reader.uint32();
    records.push(asBuffer(reader.bytes()));
  }
  return records;
}

export function encodeJournal(serverId: string, entry: AuditRecord): Buffer {
  return asBuffer(
    JournalRecord.encode({ serverId, position: entry.id, atMs: entry.at.getTime(), kind: entry.kind, peer: entry.peer ?? '', code: entry.code ?? '', detail: entry.detail }).finish(),
  );
}

/** A routing change as the outbox keeps it: without the server and position, which publishing fills in. */
export function encodeRoutingChange(atMs: number, change: RoutingRecord['change']): Buffer {
  return asBuffer(RoutingRecord.encode({ serverId: '', position: 0, atMs, change }).finish());
}

export function encodeRouting(serverId: string, position: number, stored: Uint8Array): Buffer {
  return asBuffer(RoutingRecord.encode({ ...RoutingRecord.decode(stored), serverId, position }).finish());
}

const DECODERS: { [P in ProjectionName]: (bytes: Uint8Array) => RecordOf[P] } = {
  'chat-events': (bytes) => ChatEventRecord.decode(bytes),
  routing: (bytes) => RoutingRecord.decode(bytes),
  'admin-events': (bytes) => JournalRecord.decode(bytes),
  'system-events': (bytes) => JournalRecord.decode(bytes),
};

/** Decodes a projection's record; throws on bytes that are not one. */
export function decodeRecord<P extends ProjectionName>(projection: P, bytes: Uint8Array): RecordOf[P] {
  return DECODERS[projection](bytes);
}

/**
 * Where a record sits in its chain, for de-duplication: a chat event by its origin's chain
 * in the chat (chain seq), any other record by its publishing server (position).
 */
export function chainOf<P extends ProjectionName>(projection: P, record: RecordOf[P]): { chain: string; seq: number } | undefined {
  if (projection === 'chat-events') {
    const event = (record as ChatEventRecord).event;
    return event ? { chain: `${event.chatId}\u0000${event.origin}`, seq: event.seq } : undefined;
  }
  const { serverId, position } = record as RoutingRecord | JournalRecord;
  return { chain: serverId, seq: position };
}
