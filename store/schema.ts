import { sql } from 'drizzle-orm';
import { bigint, bigserial, customType, index, integer, jsonb, pgTable, primaryKey, text, timestamp, unique } from 'drizzle-orm/pg-core';

/**
 * The one schema of both engines (PGlite embedded, PostgreSQL at scale). Migrations in
 * store/migrations are generated from it by `npm run db:generate` and committed.
 */
const bytea = customType<{ data: Uint8Array }>({ dataType: () => 'bytea' });

/** The append-only log. `local_seq` is this node's append order: the link sequence it sends by. */
export const events = pgTable(
  'events',
  {
    localSeq: bigserial('local_seq', { mode: 'number' }).primaryKey(),
    id: bytea('id').notNull(),
    chatId: text('chat_id').notNull(),
    origin: text('origin').notNull(),
    seq: bigint('seq', { mode: 'number' }).notNull(),
    prev: bytea('prev').notNull(),
    hlcMs: bigint('hlc_ms', { mode: 'number' }).notNull(),
    // uint32 on the wire: bigint holds all of it (integer stops at 2^31 - 1).
    hlcCounter: bigint('hlc_counter', { mode: 'number' }).notNull(),
    senderUser: text('sender_user').notNull(),
    senderDevice: text('sender_device').notNull(),
    // int32 on the wire, kinds of newer servers included.
    kind: integer('kind').notNull(),
    members: jsonb('members').$type<string[]>().notNull(),
    body: bytea('body').notNull(),
    // Only verified signatures are kept; null inside a run signed at its end.
    signature: bytea('signature'),
    // Set on chat-created only (0: the default policy).
    routingPolicy: integer('routing_policy').notNull().default(0),
    /** On a transit: the destination servers it answers for, as the hop that brought the event named them. */
    forwardTo: jsonb('forward_to').$type<string[]>().notNull().default([]),
  },
  (t) => [
    unique('events_id_key').on(t.id),
    unique('events_chain_key').on(t.chatId, t.origin, t.seq),
    index('events_canonical_order').on(t.chatId, t.hlcMs, t.hlcCounter, t.origin, t.seq),
    // A chat's membership events in log order (chat created, members added, removed): an event is judged against the members at its place.
    index('events_membership')
      .on(t.chatId, t.hlcMs, t.hlcCounter, t.origin, t.seq)
      .where(sql`${t.kind} in (1, 2, 3)`),
  ],
);

/**
 * Authentic events held until they can be placed: beyond a gap in their origin's chain
 * (until backfill closes it), or of a chat whose creation has not arrived yet. Bounded
 * per chain and per peer that brought them (router/held-events.ts).
 */
export const pendingEvents = pgTable(
  'pending_events',
  {
    chatId: text('chat_id').notNull(),
    origin: text('origin').notNull(),
    seq: bigint('seq', { mode: 'number' }).notNull(),
    // The event as it came, protobuf-encoded: it is only ever read back whole.
    event: bytea('event').notNull(),
    /** The peer that brought it: its share of the held bound. */
    peer: text('peer').notNull().default(''),
    /** Encoded size, counted against the byte bounds. */
    bytes: integer('bytes').notNull().default(0),
    /** What the event is to be passed on to, once placed (see events.forward_to). */
    forwardTo: jsonb('forward_to').$type<string[]>().notNull().default([]),
  },
  (t) => [primaryKey({ columns: [t.chatId, t.origin, t.seq] })],
);

/** Projection: the current member list of each chat (from the latest membership event, canonical order). */
export const chats = pgTable('chats', {
  chatId: text('chat_id').primaryKey(),
  members: jsonb('members').$type<string[]>().notNull(),
  versionHlcMs: bigint('version_hlc_ms', { mode: 'number' }).notNull(),
  versionHlcCounter: bigint('version_hlc_counter', { mode: 'number' }).notNull(),
  versionOrigin: text('version_origin').notNull(),
  versionSeq: bigint('version_seq', { mode: 'number' }).notNull(),
  /** From the chat-created event: how the chat's events may travel. */
  routingPolicy: integer('routing_policy').notNull().default(0),
});

/** Projection: the servers a chat has members on, i.e. where its events must go. */
export const chatServers = pgTable(
  'chat_servers',
  {
    chatId: text('chat_id').notNull(),
    serverId: text('server_id').notNull(),
  },
  (t) => [primaryKey({ columns: [t.serverId, t.chatId] })],
);

/** The last link sequence of each peer's stream that is durably stored here. */
export const linkCursors = pgTable('link_cursors', {
  peerId: text('peer_id').primaryKey(),
  storedLinkSeq: bigint('stored_link_seq', { mode: 'number' }).notNull(),
});

/**
 * Replicas of one server: per peer, the fencing token of the newest lease on its link. An
 * append for the link commits only while its token is the one stored here (event-store.ts).
 */
export const linkLeases = pgTable('link_leases', {
  peerId: text('peer_id').primaryKey(),
  fence: bigint('fence', { mode: 'number' }).notNull(),
});

/** Identity keys pinned at a peer's first successful handshake. */
export const peerKeys = pgTable('peer_keys', {
  serverId: text('server_id').primaryKey(),
  identityKey: bytea('identity_key').notNull(),
  pinnedAt: timestamp('pinned_at', { withTimezone: true }).notNull().defaultNow(),
});

/** The audit journal: connections, refusals and administrative actions. Never holds a token or a body. */
export const auditLog = pgTable(
  'audit_log',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    at: timestamp('at', { withTimezone: true }).notNull().defaultNow(),
    kind: text('kind').notNull(),
    peer: text('peer'),
    code: text('code'),
    detail: text('detail').notNull(),
  },
  (t) => [index('audit_log_peer').on(t.peer, t.id)],
);

/**
 * The server directory: the newest record each server signed of itself (router/routing).
 * The key a record may carry is the one pinned in peer_keys at first sight.
 */
export const serverRecords = pgTable('server_records', {
  serverId: text('server_id').primaryKey(),
  /** The signed bytes as they travel (a ServerRecord message), passed on unchanged. */
  record: bytea('record').notNull(),
  issuedAtMs: bigint('issued_at_ms', { mode: 'number' }).notNull(),
});

/**
 * Per destination server, two of this node's local seqs (router/queues/delivery-cursors.ts):
 * up to `delivered_seq` the destination itself acknowledged every event for it (end to
 * end); up to `handed_seq` a next hop took them over (store-and-forward). A route that is
 * withdrawn or refused goes back from handed to delivered. Rows written before handed_seq
 * existed held the hop's position in `delivered_seq` and have no `handed_seq`: they are
 * read as both. Written lazily: a stale (lower) value costs resends that receivers drop
 * as duplicates, never a loss.
 */
export const destinationCursors = pgTable('destination_cursors', {
  serverId: text('server_id').primaryKey(),
  deliveredSeq: bigint('delivered_seq', { mode: 'number' }).notNull(),
  handedSeq: bigint('handed_seq', { mode: 'number' }),
});

/**
 * How far each projection relay (gateways/projections) has published a source: the
 * local seq of `events`, the id of `audit_log` or of `outbox`. Moved only after the
 * bus acknowledged everything up to it, so a crash republishes, never skips.
 */
export const projectionCursors = pgTable('projection_cursors', {
  name: text('name').primaryKey(),
  position: bigint('position', { mode: 'number' }).notNull(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});

/**
 * Records to publish that are not in the event log or the audit journal (link and route
 * changes), written when the change happens and relayed in id order with a cursor of
 * their own. Kept bounded: a relay deletes what it published; a retention bound covers the rest.
 */
export const outbox = pgTable('outbox', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  /** The projection's topic as domain.md names it, without the server's prefix (e.g. `routing`). */
  topic: text('topic').notNull(),
  key: text('key').notNull(),
  payload: bytea('payload').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
});
