import { Event } from '../proto/gen/trellis/v1/event.js';
import { logDigest, MEMBERSHIP_KINDS } from '../crypto/index.js';
import type { SqlDriver, SqlRunner } from './driver.js';
import { StoreError } from './errors.js';

/**
 * An event as a transit receives it: with the destination servers it is to pass the event
 * on to (named by the hop that brought it; absent: the event is for this node alone).
 */
export type CarriedEvent = Event & { forwardTo?: readonly string[] };

/** A stored event with this node's append position (the link sequence it is sent by). */
export interface StoredEvent extends Event {
  localSeq: number;
  /** The destinations this node passes it on to, as a transit (events.forward_to). */
  forwardTo: readonly string[];
}

export interface ChainHead {
  seq: number;
  id: Buffer;
}

export interface AppendRequest {
  /** Checked events, each (chat, origin) run in chain order and following its stored head. */
  events: readonly CarriedEvent[];
  /** The peer's link position these events bring us to; stored in the same transaction. */
  cursor?: { peerId: string; linkSeq: number };
  /**
   * Replicas: the lease on the link these events came by. The append takes effect only
   * while the fence stored for the peer is this token (see raiseFence); else nothing is
   * written and it fails with StoreError 'fenced'.
   */
  fence?: LinkFence;
}

/** A replica's lease on the link to a peer, by its fencing token (higher is newer). */
export interface LinkFence {
  peerId: string;
  token: number;
}

/** Our own next events, chained by the caller on the heads the store holds right now. */
export type ChainOwn = (heads: ReadonlyMap<string, ChainHead>) => CarriedEvent[];

export interface HeldEvent {
  event: CarriedEvent;
  /** The peer that brought it. */
  peer: string;
}

/** What one peer has held in one chain. */
export interface HeldShare {
  peer: string;
  events: number;
  bytes: number;
}

export interface HeldRow {
  chatId: string;
  origin: string;
  seq: number;
  peer: string;
  bytes: number;
}

export interface HeldSummary extends HeldShare {
  chatId: string;
  origin: string;
  minSeq: number;
}

export interface DroppedHeld {
  dropped: HeldShare[];
  nextSeq: number | undefined;
  reforwarded: Array<{ localSeq: number; forwardTo: string[] }>;
}

export interface ChatSummary {
  events: number;
  digest: Buffer;
}

export interface AuditEntry {
  kind: string;
  peer?: string;
  code?: string;
  detail: string;
}

export interface AuditRecord extends AuditEntry {
  id: number;
  at: Date;
}

/** A record to publish that lives neither in the log nor in the journal (store/schema.ts, outbox). */
export interface OutboxEntry {
  /** The projection's topic, unprefixed (e.g. `routing`). */
  topic: string;
  key: string;
  payload: Uint8Array;
}

export interface OutboxRecord extends OutboxEntry {
  id: number;
  createdAt: Date;
}

/**
 * The durable state of one node: the append-only log and what is derived from it.
 * One interface, so the embedded PGlite engine and PostgreSQL run the same code and
 * the same contract tests.
 */
/** A destination's two positions, this node's local seqs (see schema destinationCursors). */
export interface DestinationCursor {
  deliveredSeq: number;
  handedSeq: number;
}

export interface EventStore {
  /** The engine and where it is, for the operator (no password). */
  readonly description: string;
  /** Appends atomically with the cursor; an event already stored is skipped. Returns what was new. */
  append(request: AppendRequest): Promise<StoredEvent[]>;
  /**
   * Appends this server's own events of `chatIds`, chained on the heads of `origin` read in
   * the same transaction under the store's write lock: replicas of one server posting into
   * one chat take turns, so no two of them chain on the same head.
   */
  appendOwn(origin: string, chatIds: readonly string[], chain: ChainOwn): Promise<StoredEvent[]>;
  /** A replica took the lease on a peer's link: stores its token, unless a newer one is stored; true if ours is now the fence. */
  raiseFence(fence: LinkFence): Promise<boolean>;
  head(chatId: string, origin: string): Promise<ChainHead | undefined>;
  /**
   * What may go to a next hop whose destinations are `servers`: our own events of chats
   * with members on any of them, and events we pass on to any of them, after a local seq.
   * Own events of a chat whose members are not stored yet come too: the sender remembers
   * them, and looks again once the chat's creation arrives (router/outbound.ts).
   */
  outboundEvents(self: string, servers: readonly string[], afterLinkSeq: number, limit: number): Promise<StoredEvent[]>;
  /**
   * Adds destinations to pass stored events on to (a route moved onto us), keeping each
   * set at most FORWARD_SET_MAX; answers the events whose set grew. A set that gains
   * nothing is not written. With a fence, as append: nothing is written once it is stale.
   */
  addForwards(events: ReadonlyArray<{ id: Uint8Array; forwardTo: readonly string[] }>, fence?: LinkFence): Promise<Array<{ localSeq: number; forwardTo: string[] }>>;
  /** One origin's events of a chat from `fromSeq` on, in chain order (backfill answers). */
  originEvents(chatId: string, origin: string, fromSeq: number, limit: number): Promise<StoredEvent[]>;
  /** A chat's events in canonical order: (hybrid timestamp, origin, origin seq). */
  chatLog(chatId: string): Promise<StoredEvent[]>;
  chatDigest(chatId: string): Promise<Buffer>;
  /** How many events a chat holds and their digest, reading ids only: cheap enough to poll. */
  chatSummary(chatId: string): Promise<ChatSummary>;
  chatServers(chatId: string): Promise<string[]>;
  countEvents(): Promise<number>;
  /** The local seq of the newest stored event (0 when empty). */
  lastLocalSeq(): Promise<number>;

  /** The current members of a chat (from its latest membership event), or undefined before its creation is stored. */
  chatMembers(chatId: string): Promise<string[] | undefined>;
  /** The current members of a chat and the log place of the membership event that set them; undefined before its creation. */
  chatMembership(chatId: string): Promise<{ members: string[]; at: LogPlace } | undefined>;
  /**
   * The members set by the chat's latest membership event placed before `place` (undefined:
   * none is), and whether any membership event before it listed a member on `server`.
   */
  membershipBefore(chatId: string, place: LogPlace, server: string): Promise<{ members: string[] | undefined; wasMember: boolean }>;
  /** A chat's routing policy, from its chat-created event (0, the default, before it is stored). */
  chatPolicy(chatId: string): Promise<number>;
  /**
   * Events this node (`self`) owes a destination server after a local seq, and the oldest
   * one's time: a queue's depth. Its own events of the destination's chats, and on a
   * transit those it was asked to pass on to it (`forward_to`); not what it holds of the
   * destination's chats only to pass on elsewhere.
   */
  undelivered(destination: string, afterLocalSeq: number, self: string, transit: boolean): Promise<{ events: number; oldestHlcMs: number | undefined }>;
  /** How many chats have members on each server. */
  chatCounts(): Promise<Array<{ serverId: string; chats: number }>>;
  /** Keeps the records the directory believes (each replacing the one kept before of its server), in one statement; `serverRecords` reads them all back. */
  saveServerRecords(records: ReadonlyArray<{ serverId: string; record: Uint8Array; issuedAtMs: number }>): Promise<void>;
  serverRecords(): Promise<Buffer[]>;
  /** Per destination server, how far it was delivered end to end and how far a next hop took it over (see schema). */
  deliveredCursors(): Promise<Map<string, DestinationCursor>>;
  saveDeliveredCursors(cursors: ReadonlyMap<string, DestinationCursor>): Promise<void>;
  /** The origins with events in a chat. */
  chatOrigins(chatId: string): Promise<string[]>;
  /** The first seq at or after `fromSeq` of an origin's chain whose verified signature is stored. */
  nextSignedSeq(chatId: string, origin: string, fromSeq: number): Promise<number | undefined>;

  /**
   * Keeps authentic events that cannot be placed yet, counted against the peer that brought
   * them; returns what was new. With a fence, as append: nothing is written once it is stale.
   */
  hold(events: readonly HeldEvent[], fence?: LinkFence): Promise<HeldRow[]>;
  /** Held events of a chain after `afterSeq`, in seq order, each with the peer that brought it: read only when the first of them can be placed. */
  heldAfter(chatId: string, origin: string, afterSeq: number, limit: number): Promise<HeldEvent[]>;
  /**
   * Drops a chain's held events up to `uptoSeq` (placed, or overtaken); says what went, what
   * is held next, and which stored events gained destinations to pass on from their held
   * copies (only servers of the chat: a held copy's were named before its members were
   * known). With a fence, as append: nothing is dropped once it is stale.
   */
  dropHeld(chatId: string, origin: string, uptoSeq: number, fence?: LinkFence): Promise<DroppedHeld>;
  /** Held events per (chain, peer): loaded once at start for the held bounds. */
  heldSummary(): Promise<HeldSummary[]>;

  linkCursor(peerId: string): Promise<number>;
  pinnedKey(serverId: string): Promise<Buffer | undefined>;
  pinKey(serverId: string, identityKey: Uint8Array): Promise<void>;
  audit(entry: AuditEntry): Promise<void>;
  auditLog(limit?: number): Promise<AuditRecord[]>;

  // What projections read (gateways/projections): the log, the journal and the outbox in
  // order after a position, and each relay's cursor. Read only by the relays and feeds.
  /** Every stored event after a local seq, in local seq order, at most `limit`. */
  eventsAfter(afterLocalSeq: number, limit: number): Promise<StoredEvent[]>;
  /** The servers each of these chats has members on; a chat with none (not created here yet) is absent. */
  chatServersOf(chatIds: readonly string[]): Promise<Map<string, string[]>>;
  /** Journal entries after an id, in id order, at most `limit`. */
  auditAfter(afterId: number, limit: number): Promise<AuditRecord[]>;
  /** The id of the newest journal entry (0 when empty). */
  lastAuditId(): Promise<number>;
  /** Adds records to publish, in the order given, in one statement. */
  enqueueOutbox(records: readonly OutboxEntry[]): Promise<void>;
  /** Outbox records after an id (of one topic, if given), in id order, at most `limit`. */
  outboxAfter(afterId: number, limit: number, topic?: string): Promise<OutboxRecord[]>;
  /** The id of the newest outbox record (0 when empty). */
  lastOutboxId(): Promise<number>;
  /** Deletes outbox records up to an id (published), and all but the newest `keepNewest`; answers how many went. */
  trimOutbox(uptoId: number, keepNewest: number): Promise<number>;
  /** A relay's or feed's position in its source, or undefined before its first move. */
  projectionCursor(name: string): Promise<number | undefined>;
  /** Moves a cursor forward only: a replica that stopped publishing late never sets it back under the one that took over. */
  saveProjectionCursor(name: string, position: number): Promise<void>;
  close(): Promise<void>;
}

const AUDIT_READ_MAX = 10_000;

/** An event row as the read queries return it: byte columns as base64 text (see EVENT_COLUMNS). */
interface EventRow {
  local_seq: number;
  id: string;
  chat_id: string;
  origin: string;
  seq: number;
  prev: string;
  hlc_ms: number;
  hlc_counter: number;
  sender_user: string;
  sender_device: string;
  kind: number;
  members: string[];
  body: string;
  signature: string | null;
  routing_policy: number;
  forward_to: string[];
}

/**
 * Byte columns are read back as base64 text, as they are written: PGlite hands bytea
 * results over several times slower than text (bench: PGlite read-back).
 */
const EVENT_COLUMNS = (alias = '') =>
  ['local_seq', 'chat_id', 'origin', 'seq', 'hlc_ms', 'hlc_counter', 'sender_user', 'sender_device', 'kind', 'members', 'routing_policy', 'forward_to']
    .map((column) => `${alias}${column}`)
    .concat(['id', 'prev', 'body', 'signature'].map((column) => `encode(${alias}${column}, 'base64') as ${column}`))
    .join(', ');

const asBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
// PostgreSQL's base64 breaks lines every 76 characters; Node's decoder skips the breaks.
const fromBase64 = (text: string): Buffer => Buffer.from(text, 'base64');

function fromRow(row: EventRow): StoredEvent {
  return {
    localSeq: row.local_seq,
    id: fromBase64(row.id),
    chatId: row.chat_id,
    origin: row.origin,
    seq: row.seq,
    prev: fromBase64(row.prev),
    hlcMs: row.hlc_ms,
    hlcCounter: row.hlc_counter,
    senderUser: row.sender_user,
    senderDevice: row.sender_device,
    kind: row.kind,
    members: row.members,
    body: fromBase64(row.body),
    signature: row.signature ? fromBase64(row.signature) : Buffer.alloc(0),
    routingPolicy: row.routing_policy,
    forwardTo: row.forward_to,
  };
}

/** An event row as one JSON array (eventsAfter): these columns, in this order. */
const EVENT_ROW_ARRAY = [
  'local_seq', 'chat_id', 'origin', 'seq', 'hlc_ms', 'hlc_counter', 'sender_user', 'sender_device', 'kind', 'members', 'routing_policy', 'forward_to',
  "encode(id, 'base64')", "encode(prev, 'base64')", "encode(body, 'base64')", "encode(signature, 'base64')",
].join(', ');
type EventRowArray = [number, string, string, number, number, number, string, string, number, string[], number, string[], string, string, string, string | null];

function fromRowArray(row: EventRowArray): StoredEvent {
  const [localSeq, chatId, origin, seq, hlcMs, hlcCounter, senderUser, senderDevice, kind, members, routingPolicy, forwardTo, id, prev, body, signature] = row;
  return {
    localSeq, id: fromBase64(id), chatId, origin, seq, prev: fromBase64(prev), hlcMs, hlcCounter, senderUser, senderDevice, kind, members,
    body: fromBase64(body), signature: signature ? fromBase64(signature) : Buffer.alloc(0), routingPolicy, forwardTo,
  };
}

/**
 * True when the engine refused a statement because of the values it was given (SQLSTATE
 * class 22, data exception, or 23, integrity constraint): the data's fault, not the store's.
 */
export function isDataError(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && (code.startsWith('22') || code.startsWith('23'));
}

/** The server part of `user@server-id`. */
/** An event's place in its chat's log: every node orders a chat's events by it (architecture.md, "Events"). */
export interface LogPlace {
  hlcMs: number;
  hlcCounter: number;
  origin: string;
  seq: number;
}

/** Log order, as the store's row comparison orders the same columns (server ids compare as plain text). */
export function compareLogPlace(a: LogPlace, b: LogPlace): number {
  return a.hlcMs - b.hlcMs || a.hlcCounter - b.hlcCounter || (a.origin < b.origin ? -1 : a.origin > b.origin ? 1 : 0) || a.seq - b.seq;
}

export function serverOfMember(member: string): string {
  return member.slice(member.lastIndexOf('@') + 1);
}

// bytea travels as base64 text decoded in SQL: several times faster than bytea
// parameters in PGlite (speed budget), and the same SQL on PostgreSQL.
/**
 * One statement appends a batch and moves its link cursor: a statement is atomic on its
 * own, so the common case needs no BEGIN and COMMIT round trips (in PGlite each
 * statement is a round trip into the engine, and at low load they are the cost of a hop).
 */
/**
 * The store's write lock, held from the insert to the commit: writers (replicas of one
 * server on one PostgreSQL) take local seqs in commit order, so a reader that follows
 * local_seq never passes a number whose transaction is still in flight and skips it.
 */
const WRITE_LOCK = 'pg_advisory_xact_lock(7596496397470725235)';

/**
 * Every write a link makes carries its lease's fence (peer, token; a null token: none, a
 * node with no replicas). A fence that does not hold (another token stored for the peer)
 * makes the statement write nothing and answer holds = false; the row it locks (for
 * share) keeps a new owner from raising the fence until this write has committed.
 */
const FENCE_CTES = (peerParam: string, tokenParam: string) => `fence_row as (
  select 1 from link_leases where peer_id = ${peerParam}::text and fence = ${tokenParam}::bigint for share
), fenced as (
  select ${tokenParam}::bigint is null or exists (select 1 from fence_row) as holds
)`;

/** A fenced write answered holds = false: it wrote nothing, and its caller must not go on as if it had. */
function checkFence(holds: boolean | undefined, fence: LinkFence | undefined): void {
  if (holds === false) throw new StoreError('fenced', `the lease on the link to ${fence!.peerId} (token ${fence!.token}) was taken over: nothing written`);
}

const fenceParams = (fence: LinkFence | undefined) => [fence?.peerId ?? null, fence?.token ?? null];

/**
 * Destinations kept per stored event (events.forward_to, pending_events.forward_to), at
 * most: a chat's servers are the natural bound, and this one holds when they are many.
 * Well under what one frame may name (router/queues/forwards.ts FORWARD_DESTINATIONS_MAX).
 */
export const FORWARD_SET_MAX = 256;

/** Whether a stored set (SQL jsonb array) gains anything from `added`: a full set gains nothing more. */
const gainsForwards = (stored: string, added: string) => `not (${stored} @> ${added}) and jsonb_array_length(${stored}) < ${FORWARD_SET_MAX}`;

/** A stored set with `added` ones, at most FORWARD_SET_MAX, those stored first (a set never loses a destination). */
const mergedForwards = (stored: string, added: string) => `(
  select coalesce(jsonb_agg(d order by d), '[]'::jsonb) from (
    select d from (select d, 0 as rank from jsonb_array_elements_text(${stored}) as d
                   union all select d, 1 from jsonb_array_elements_text(${added}) as d) named
    group by d order by min(rank), d limit ${FORWARD_SET_MAX}) kept)`;

const APPEND_EVENTS = `
with write_lock as (select ${WRITE_LOCK}), ${FENCE_CTES('$18', '$19')}, appended as (
  insert into events (id, chat_id, origin, seq, prev, hlc_ms, hlc_counter, sender_user, sender_device, kind, members, body, signature, routing_policy, forward_to)
  select decode(id, 'base64'), chat_id, origin, seq, decode(prev, 'base64'), hlc_ms, hlc_counter, sender_user, sender_device,
         kind, members::jsonb, decode(body, 'base64'), nullif(decode(signature, 'base64'), ''::bytea), routing_policy, forward_to::jsonb
  from unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[], $7::bigint[], $8::text[], $9::text[],
              $10::int[], $11::text[], $12::text[], $13::text[], $14::int[], $15::text[])
    as t(id, chat_id, origin, seq, prev, hlc_ms, hlc_counter, sender_user, sender_device, kind, members, body, signature, routing_policy, forward_to),
    write_lock, fenced
  where fenced.holds
  on conflict do nothing
  returning local_seq, id
), cursor as (
  insert into link_cursors (peer_id, stored_link_seq) select $16::text, $17::bigint from fenced where $16::text is not null and fenced.holds
  on conflict (peer_id) do update set stored_link_seq = greatest(link_cursors.stored_link_seq, excluded.stored_link_seq)
)
select a.local_seq, encode(a.id, 'base64') as id, fenced.holds from fenced left join appended a on true`;

const NO_FORWARDS = '[]';
const forwardsJson = (event: CarriedEvent): string => (event.forwardTo?.length ? JSON.stringify(event.forwardTo) : NO_FORWARDS);
const heldBytesOf = (encoded: Uint8Array, forwards: string): number => encoded.length + Buffer.byteLength(forwards);

/**
 * What a held event takes in pending_events: its encoded event (sender, members, body and
 * all) and its forward set. `hold` records this per row and a receiver counts the same
 * before it holds an event, so a round's tally and the stored one agree.
 */
export function heldEventBytes(event: CarriedEvent): number {
  return heldBytesOf(Event.encode(event).finish(), forwardsJson(event));
}

function insertParams(events: readonly CarriedEvent[]): unknown[][] {
  const columns: unknown[][] = Array.from({ length: 15 }, () => []);
  for (const e of events) {
    const values = [
      e.id.toString('base64'), e.chatId, e.origin, e.seq, e.prev.toString('base64'), e.hlcMs, e.hlcCounter,
      e.senderUser, e.senderDevice, e.kind, JSON.stringify(e.members), e.body.toString('base64'), e.signature.toString('base64'),
      e.routingPolicy, e.forwardTo?.length ? JSON.stringify(e.forwardTo) : NO_FORWARDS,
    ];
    values.forEach((value, column) => columns[column]!.push(value));
  }
  return columns;
}

/**
 * A stored event built field by field, in the order of fromRowArray: every stored event
 * then has one hidden class. A spread ({ ...event, localSeq }) of a decoded frame event
 * gave each one a class of its own (V8's slow clone path), 2 maps per event in a
 * receiver's heap, kept as long as the event is.
 */
function storedEvent(e: CarriedEvent, localSeq: number): StoredEvent {
  return {
    localSeq, id: e.id, chatId: e.chatId, origin: e.origin, seq: e.seq, prev: e.prev, hlcMs: e.hlcMs, hlcCounter: e.hlcCounter, senderUser: e.senderUser,
    senderDevice: e.senderDevice, kind: e.kind, members: e.members, body: e.body, signature: e.signature, routingPolicy: e.routingPolicy, forwardTo: e.forwardTo ?? [],
  };
}

/** PGlite's planner statistics are gathered once this many rows were appended (see SqlEventStore.append). */
export const ANALYZE_AFTER_ROWS = 1_000;

export class SqlEventStore implements EventStore {
  /**
   * PGlite gathers no statistics by itself (there is no autovacuum). With none, the
   * outbound query walks a whole chat by its chain index to find one page (16 ms per page
   * on a 20k-event chat); with any, it takes the local seq range, and stale ones only
   * make that range look smaller. So ANALYZE runs once, not on a schedule that would
   * stall the engine (tens of ms) in the middle of traffic. Counts down to it.
   */
  private rowsUntilAnalyze = ANALYZE_AFTER_ROWS;

  constructor(private readonly db: SqlDriver) {}

  get description(): string {
    return this.db.description;
  }

  async append(request: AppendRequest): Promise<StoredEvent[]> {
    const appended = await this.appendAtomically(request);
    await this.countTowardAnalyze(appended.length);
    return appended;
  }

  private async countTowardAnalyze(rows: number): Promise<void> {
    if (this.rowsUntilAnalyze > 0 && (this.rowsUntilAnalyze -= rows) <= 0) await this.db.query('analyze events, chat_servers');
  }

  /** One statement; a transaction only when membership events must be projected with it. */
  private async appendAtomically(request: AppendRequest): Promise<StoredEvent[]> {
    if (request.events.length === 0 && !request.cursor) return [];
    if (!request.events.some((event) => MEMBERSHIP_KINDS.has(event.kind))) return this.insertEvents(this.db, request);
    return this.db.transaction((tx) => this.insertProjected(tx, request));
  }

  /** Inside a transaction: the insert, then the member lists of the membership events it stored. */
  private async insertProjected(tx: SqlRunner, request: AppendRequest): Promise<StoredEvent[]> {
    const appended = await this.insertEvents(tx, request);
    for (const event of appended) if (MEMBERSHIP_KINDS.has(event.kind)) await this.projectMembers(tx, event);
    return appended;
  }

  /** Inserts what is new (an event already stored is skipped) and moves the cursor; returns the new ones, in request order. */
  private async insertEvents(runner: SqlRunner, request: AppendRequest): Promise<StoredEvent[]> {
    const rows = await runner.query<{ local_seq: number | null; id: string | null; holds: boolean }>(APPEND_EVENTS, [
      ...insertParams(request.events),
      request.cursor?.peerId ?? null,
      request.cursor?.linkSeq ?? null,
      ...fenceParams(request.fence),
    ]);
    checkFence(rows[0]?.holds, request.fence);
    const localSeqById = new Map(rows.filter((row) => row.id !== null).map((row) => [row.id!, row.local_seq!]));
    const appended: StoredEvent[] = [];
    for (const event of request.events) {
      const id = event.id.toString('base64');
      const localSeq = localSeqById.get(id);
      // Each new row once, even if the request named its event twice.
      if (localSeq === undefined) continue;
      localSeqById.delete(id);
      appended.push(storedEvent(event, localSeq));
    }
    return appended;
  }

  async appendOwn(origin: string, chatIds: readonly string[], chain: ChainOwn): Promise<StoredEvent[]> {
    const appended = await this.db.transaction(async (tx) => {
      await tx.query(`select ${WRITE_LOCK}`);
      // One backward index probe per chat: a `distinct on` over the chats sorts all of the
      // origin's rows in them, under the write lock, so each append cost grew with the chain.
      const rows = await tx.query<{ chat_id: string; seq: number; id: Uint8Array }>(
        `select c.chat_id, h.seq, h.id from unnest($2::text[]) as c(chat_id)
         cross join lateral (select seq, id from events where chat_id = c.chat_id and origin = $1 order by seq desc limit 1) h`,
        [origin, [...chatIds]],
      );
      const heads = new Map(rows.map((row) => [row.chat_id, { seq: Number(row.seq), id: asBuffer(row.id) }]));
      return this.insertProjected(tx, { events: chain(heads) });
    });
    await this.countTowardAnalyze(appended.length);
    return appended;
  }

  async raiseFence(fence: LinkFence): Promise<boolean> {
    const [row] = await this.db.query<{ fence: number }>(
      `insert into link_leases as l (peer_id, fence) values ($1, $2) on conflict (peer_id) do update set fence = greatest(l.fence, excluded.fence) returning fence`,
      [fence.peerId, fence.token],
    );
    return row?.fence === fence.token;
  }

  /** Keeps the member list of the latest membership event in canonical order, and the servers it spans. */
  private async projectMembers(tx: SqlRunner, event: Event): Promise<void> {
    const updated = await tx.query(
      `insert into chats as c (chat_id, members, version_hlc_ms, version_hlc_counter, version_origin, version_seq, routing_policy)
       values ($1, $2::jsonb, $3, $4, $5, $6, $7)
       on conflict (chat_id) do update set members = excluded.members, version_hlc_ms = excluded.version_hlc_ms,
         version_hlc_counter = excluded.version_hlc_counter, version_origin = excluded.version_origin, version_seq = excluded.version_seq
       where (c.version_hlc_ms, c.version_hlc_counter, c.version_origin, c.version_seq)
           < (excluded.version_hlc_ms, excluded.version_hlc_counter, excluded.version_origin, excluded.version_seq)
       returning chat_id`,
      [event.chatId, JSON.stringify(event.members), event.hlcMs, event.hlcCounter, event.origin, event.seq, event.routingPolicy],
    );
    if (updated.length === 0) return;
    const servers = [...new Set(event.members.map(serverOfMember))];
    await tx.query('delete from chat_servers where chat_id = $1', [event.chatId]);
    await tx.query('insert into chat_servers (chat_id, server_id) select $1, unnest($2::text[])', [event.chatId, servers]);
  }

  async head(chatId: string, origin: string): Promise<ChainHead | undefined> {
    const [row] = await this.db.query<{ seq: number; id: Uint8Array }>(
      'select seq, id from events where chat_id = $1 and origin = $2 order by seq desc limit 1',
      [chatId, origin],
    );
    return row && { seq: row.seq, id: asBuffer(row.id) };
  }

  async outboundEvents(self: string, servers: readonly string[], afterLinkSeq: number, limit: number): Promise<StoredEvent[]> {
    if (servers.length === 0) return [];
    const rows = await this.db.query<EventRow>(
      `select ${EVENT_COLUMNS('e.')} from events e
       where e.local_seq > $2
         and ((e.origin = $4 and (exists (select 1 from chat_servers s where s.chat_id = e.chat_id and s.server_id = any($1::text[]))
                                  or not exists (select 1 from chat_servers s where s.chat_id = e.chat_id)))
              or e.forward_to ?| $1::text[])
       order by e.local_seq limit $3`,
      [servers, afterLinkSeq, limit, self],
    );
    return rows.map(fromRow);
  }

  async addForwards(events: ReadonlyArray<{ id: Uint8Array; forwardTo: readonly string[] }>, fence?: LinkFence): Promise<Array<{ localSeq: number; forwardTo: string[] }>> {
    if (events.length === 0) return [];
    const rows = await this.db.query<{ local_seq: number | null; forward_to: string[] | null; holds: boolean }>(
      `with ${FENCE_CTES('$3', '$4')}, grown as (
         update events e set forward_to = ${mergedForwards('e.forward_to', 't.forward_to::jsonb')}
         from unnest($1::text[], $2::text[]) as t(id, forward_to), fenced
         where fenced.holds and e.id = decode(t.id, 'base64') and ${gainsForwards('e.forward_to', 't.forward_to::jsonb')}
         returning e.local_seq, e.forward_to)
       select g.local_seq, g.forward_to, fenced.holds from fenced left join grown g on true`,
      [events.map((event) => Buffer.from(event.id).toString('base64')), events.map((event) => JSON.stringify(event.forwardTo)), ...fenceParams(fence)],
    );
    checkFence(rows[0]?.holds, fence);
    return rows.filter((row) => row.local_seq !== null).map((row) => ({ localSeq: Number(row.local_seq), forwardTo: row.forward_to! }));
  }

  async originEvents(chatId: string, origin: string, fromSeq: number, limit: number): Promise<StoredEvent[]> {
    const rows = await this.db.query<EventRow>(
      `select ${EVENT_COLUMNS()} from events where chat_id = $1 and origin = $2 and seq >= $3 order by seq limit $4`,
      [chatId, origin, fromSeq, limit],
    );
    return rows.map(fromRow);
  }

  async chatLog(chatId: string): Promise<StoredEvent[]> {
    const rows = await this.db.query<EventRow>(
      `select ${EVENT_COLUMNS()} from events where chat_id = $1 order by hlc_ms, hlc_counter, origin, seq`,
      [chatId],
    );
    return rows.map(fromRow);
  }

  async chatDigest(chatId: string): Promise<Buffer> {
    return (await this.chatSummary(chatId)).digest;
  }

  async chatSummary(chatId: string): Promise<ChatSummary> {
    const rows = await this.db.query<{ id: Uint8Array }>(
      'select id from events where chat_id = $1 order by hlc_ms, hlc_counter, origin, seq',
      [chatId],
    );
    return { events: rows.length, digest: logDigest(rows.map((row) => row.id)) };
  }

  async chatServers(chatId: string): Promise<string[]> {
    const rows = await this.db.query<{ server_id: string }>('select server_id from chat_servers where chat_id = $1 order by server_id', [chatId]);
    return rows.map((row) => row.server_id);
  }

  async countEvents(): Promise<number> {
    const [row] = await this.db.query<{ n: number }>('select count(*)::int as n from events');
    return row?.n ?? 0;
  }

  async lastLocalSeq(): Promise<number> {
    const [row] = await this.db.query<{ seq: number | null }>('select max(local_seq) as seq from events');
    return Number(row?.seq ?? 0);
  }

  async chatPolicy(chatId: string): Promise<number> {
    const [row] = await this.db.query<{ routing_policy: number }>('select routing_policy from chats where chat_id = $1', [chatId]);
    return row?.routing_policy ?? 0;
  }

  async undelivered(destination: string, afterLocalSeq: number, self: string, transit: boolean): Promise<{ events: number; oldestHlcMs: number | undefined }> {
    const [row] = await this.db.query<{ events: number; oldest: number | null }>(
      `select count(*)::int as events, min(e.hlc_ms) as oldest from events e
       where e.local_seq > $2
         and ((e.origin = $3 and exists (select 1 from chat_servers s where s.chat_id = e.chat_id and s.server_id = $1))
              or ($4 and e.forward_to ? $1))`,
      [destination, afterLocalSeq, self, transit],
    );
    return { events: row?.events ?? 0, oldestHlcMs: row?.oldest == null ? undefined : Number(row.oldest) };
  }

  async chatCounts(): Promise<Array<{ serverId: string; chats: number }>> {
    const rows = await this.db.query<{ server_id: string; chats: number }>('select server_id, count(*)::int as chats from chat_servers group by server_id');
    return rows.map((row) => ({ serverId: row.server_id, chats: row.chats }));
  }

  async saveServerRecords(records: ReadonlyArray<{ serverId: string; record: Uint8Array; issuedAtMs: number }>): Promise<void> {
    // One row a server: a statement may not update the same row twice, so the last record of a server wins.
    const latest = [...new Map(records.map((entry) => [entry.serverId, entry])).values()];
    if (latest.length === 0) return;
    await this.db.query(
      `insert into server_records (server_id, record, issued_at_ms)
       select server_id, decode(record, 'base64'), issued_at_ms from unnest($1::text[], $2::text[], $3::bigint[]) as t(server_id, record, issued_at_ms)
       on conflict (server_id) do update set record = excluded.record, issued_at_ms = excluded.issued_at_ms`,
      [latest.map((entry) => entry.serverId), latest.map((entry) => Buffer.from(entry.record).toString('base64')), latest.map((entry) => entry.issuedAtMs)],
    );
  }

  async serverRecords(): Promise<Buffer[]> {
    const rows = await this.db.query<{ record: string }>(`select encode(record, 'base64') as record from server_records`);
    return rows.map((row) => fromBase64(row.record));
  }

  async deliveredCursors(): Promise<Map<string, DestinationCursor>> {
    const rows = await this.db.query<{ server_id: string; delivered_seq: number; handed_seq: number | null }>('select server_id, delivered_seq, handed_seq from destination_cursors');
    return new Map(rows.map((row) => [row.server_id, { deliveredSeq: Number(row.delivered_seq), handedSeq: Number(row.handed_seq ?? row.delivered_seq) }]));
  }

  async saveDeliveredCursors(cursors: ReadonlyMap<string, DestinationCursor>): Promise<void> {
    if (cursors.size === 0) return;
    const values = [...cursors.values()];
    await this.db.query(
      `insert into destination_cursors (server_id, delivered_seq, handed_seq) select * from unnest($1::text[], $2::bigint[], $3::bigint[])
       on conflict (server_id) do update set delivered_seq = excluded.delivered_seq, handed_seq = excluded.handed_seq`,
      [[...cursors.keys()], values.map((cursor) => cursor.deliveredSeq), values.map((cursor) => cursor.handedSeq)],
    );
  }

  async chatMembers(chatId: string): Promise<string[] | undefined> {
    const [row] = await this.db.query<{ members: string[] }>('select members from chats where chat_id = $1', [chatId]);
    return row?.members;
  }

  async chatMembership(chatId: string): Promise<{ members: string[]; at: LogPlace } | undefined> {
    const [row] = await this.db.query<{ members: string[]; version_hlc_ms: number; version_hlc_counter: number; version_origin: string; version_seq: number }>(
      'select members, version_hlc_ms, version_hlc_counter, version_origin, version_seq from chats where chat_id = $1',
      [chatId],
    );
    if (!row) return undefined;
    return { members: row.members, at: { hlcMs: Number(row.version_hlc_ms), hlcCounter: Number(row.version_hlc_counter), origin: row.version_origin, seq: Number(row.version_seq) } };
  }

  async membershipBefore(chatId: string, place: LogPlace, server: string): Promise<{ members: string[] | undefined; wasMember: boolean }> {
    const before = `e.chat_id = $1 and e.kind in (1, 2, 3) and (e.hlc_ms, e.hlc_counter, e.origin, e.seq) < ($2, $3, $4, $5)`;
    const [row] = await this.db.query<{ members: string[] | null; was_member: boolean }>(
      `select (select e.members from events e where ${before} order by e.hlc_ms desc, e.hlc_counter desc, e.origin desc, e.seq desc limit 1) as members,
              exists (select 1 from events e, jsonb_array_elements_text(e.members) m where ${before} and right(m, length($6) + 1) = '@' || $6) as was_member`,
      [chatId, place.hlcMs, place.hlcCounter, place.origin, place.seq, server],
    );
    return { members: row?.members ?? undefined, wasMember: row?.was_member ?? false };
  }

  async chatOrigins(chatId: string): Promise<string[]> {
    const rows = await this.db.query<{ origin: string }>('select distinct origin from events where chat_id = $1 order by origin', [chatId]);
    return rows.map((row) => row.origin);
  }

  async nextSignedSeq(chatId: string, origin: string, fromSeq: number): Promise<number | undefined> {
    const [row] = await this.db.query<{ seq: number }>(
      'select seq from events where chat_id = $1 and origin = $2 and seq >= $3 and signature is not null order by seq limit 1',
      [chatId, origin, fromSeq],
    );
    return row?.seq;
  }

  async hold(held: readonly HeldEvent[], fence?: LinkFence): Promise<HeldRow[]> {
    if (held.length === 0) return [];
    const encoded = held.map(({ event }) => Buffer.from(Event.encode(event).finish()));
    const forwards = held.map(({ event }) => forwardsJson(event));
    const rows = await this.db.query<{ chat_id: string | null; origin: string; seq: number; peer: string; bytes: number; holds: boolean }>(
      `with ${FENCE_CTES('$8', '$9')}, kept as (
         insert into pending_events (chat_id, origin, seq, event, peer, bytes, forward_to)
         select chat_id, origin, seq, decode(event, 'base64'), peer, bytes, forward_to::jsonb
         from unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::int[], $7::text[]) as t(chat_id, origin, seq, event, peer, bytes, forward_to), fenced
         where fenced.holds
         on conflict do nothing
         returning chat_id, origin, seq, peer, bytes)
       select k.chat_id, k.origin, k.seq, k.peer, k.bytes, fenced.holds from fenced left join kept k on true`,
      [
        held.map(({ event }) => event.chatId),
        held.map(({ event }) => event.origin),
        held.map(({ event }) => event.seq),
        encoded.map((bytes) => bytes.toString('base64')),
        held.map(({ peer }) => peer),
        encoded.map((bytes, index) => heldBytesOf(bytes, forwards[index]!)),
        forwards,
        ...fenceParams(fence),
      ],
    );
    checkFence(rows[0]?.holds, fence);
    return rows.filter((row) => row.chat_id !== null).map((row) => ({ chatId: row.chat_id!, origin: row.origin, seq: Number(row.seq), peer: row.peer, bytes: row.bytes }));
  }

  async heldAfter(chatId: string, origin: string, afterSeq: number, limit: number): Promise<HeldEvent[]> {
    const rows = await this.db.query<{ event: Uint8Array; peer: string; forward_to: string[] }>(
      'select event, peer, forward_to from pending_events where chat_id = $1 and origin = $2 and seq > $3 order by seq limit $4',
      [chatId, origin, afterSeq, limit],
    );
    return rows.map((row) => ({ event: row.forward_to.length > 0 ? { ...Event.decode(row.event), forwardTo: row.forward_to } : Event.decode(row.event), peer: row.peer }));
  }

  async dropHeld(chatId: string, origin: string, uptoSeq: number, fence?: LinkFence): Promise<DroppedHeld> {
    return this.db.transaction(async (tx) => {
      // The fence row stays locked (for share) to the commit: no new owner raises it meanwhile.
      if (fence) checkFence((await tx.query<{ holds: boolean }>(`with ${FENCE_CTES('$1', '$2')} select holds from fenced`, fenceParams(fence)))[0]?.holds, fence);
      // A held copy may name destinations its stored twin (placed by another path, e.g. a backfill page) lacks: those
      // that are servers of the chat carry over (its copy was judged before the chat's members were known).
      const reforwarded = await tx.query<{ local_seq: number; forward_to: string[] }>(
        `with carried as (
           select p.seq, coalesce((select jsonb_agg(d) from jsonb_array_elements_text(p.forward_to) as d
                                   where exists (select 1 from chat_servers s where s.chat_id = $1 and s.server_id = d)), '[]'::jsonb) as forward_to
           from pending_events p
           where p.chat_id = $1 and p.origin = $2 and p.seq <= $3 and p.forward_to <> '[]'::jsonb)
         update events e set forward_to = ${mergedForwards('e.forward_to', 'carried.forward_to')}
         from carried
         where e.chat_id = $1 and e.origin = $2 and e.seq = carried.seq and ${gainsForwards('e.forward_to', 'carried.forward_to')}
         returning e.local_seq, e.forward_to`,
        [chatId, origin, uptoSeq],
      );
      const dropped = await tx.query<{ peer: string; events: number; bytes: number }>(
        `with gone as (delete from pending_events where chat_id = $1 and origin = $2 and seq <= $3 returning peer, bytes)
         select peer, count(*)::int as events, coalesce(sum(bytes), 0)::int as bytes from gone group by peer`,
        [chatId, origin, uptoSeq],
      );
      const [next] = await tx.query<{ seq: number }>('select min(seq) as seq from pending_events where chat_id = $1 and origin = $2', [chatId, origin]);
      return {
        dropped,
        nextSeq: next?.seq == null ? undefined : Number(next.seq),
        reforwarded: reforwarded.map((row) => ({ localSeq: Number(row.local_seq), forwardTo: row.forward_to })),
      };
    });
  }

  async heldSummary(): Promise<HeldSummary[]> {
    const rows = await this.db.query<{ chat_id: string; origin: string; peer: string; events: number; bytes: number; min_seq: number }>(
      `select chat_id, origin, peer, count(*)::int as events, coalesce(sum(bytes), 0)::int as bytes, min(seq) as min_seq
       from pending_events group by chat_id, origin, peer`,
    );
    return rows.map((row) => ({ chatId: row.chat_id, origin: row.origin, peer: row.peer, events: row.events, bytes: row.bytes, minSeq: Number(row.min_seq) }));
  }

  async linkCursor(peerId: string): Promise<number> {
    const [row] = await this.db.query<{ stored_link_seq: number }>('select stored_link_seq from link_cursors where peer_id = $1', [peerId]);
    return row?.stored_link_seq ?? 0;
  }

  async pinnedKey(serverId: string): Promise<Buffer | undefined> {
    const [row] = await this.db.query<{ identity_key: Uint8Array }>('select identity_key from peer_keys where server_id = $1', [serverId]);
    return row && asBuffer(row.identity_key);
  }

  async pinKey(serverId: string, identityKey: Uint8Array): Promise<void> {
    await this.db.query(
      `insert into peer_keys (server_id, identity_key) values ($1, decode($2, 'base64')) on conflict (server_id) do nothing`,
      [serverId, Buffer.from(identityKey).toString('base64')],
    );
  }

  async audit(entry: AuditEntry): Promise<void> {
    // Under the write lock, as appends: ids commit in order, so the journal's relay never passes one in flight.
    await this.db.query(`insert into audit_log (kind, peer, code, detail) select $1, $2, $3, $4 from (select ${WRITE_LOCK}) as write_lock`, [
      entry.kind,
      entry.peer ?? null,
      entry.code ?? null,
      entry.detail,
    ]);
  }

  async auditLog(limit = AUDIT_READ_MAX): Promise<AuditRecord[]> {
    const rows = await this.db.query<{ id: number; at: Date; kind: string; peer: string | null; code: string | null; detail: string }>(
      'select * from audit_log order by id limit $1',
      [Math.min(limit, AUDIT_READ_MAX)],
    );
    return rows.map((row) => ({ id: row.id, at: row.at, kind: row.kind, detail: row.detail, ...(row.peer ? { peer: row.peer } : {}), ...(row.code ? { code: row.code } : {}) }));
  }

  /**
   * Each row comes as one JSON array (byte columns base64 inside it): PGlite hands one text
   * value over about twice as fast as sixteen columns (bench/publish.ts), and relays read
   * the whole log this way. The same SQL on PostgreSQL.
   */
  async eventsAfter(afterLocalSeq: number, limit: number): Promise<StoredEvent[]> {
    const rows = await this.db.query<{ row: string }>(
      `select json_build_array(${EVENT_ROW_ARRAY})::text as row from events where local_seq > $1 order by local_seq limit $2`,
      [afterLocalSeq, limit],
    );
    return rows.map(({ row }) => fromRowArray(JSON.parse(row) as EventRowArray));
  }

  async chatServersOf(chatIds: readonly string[]): Promise<Map<string, string[]>> {
    if (chatIds.length === 0) return new Map();
    const rows = await this.db.query<{ chat_id: string; servers: string[] }>(
      `select chat_id, jsonb_agg(server_id order by server_id) as servers from chat_servers where chat_id = any($1::text[]) group by chat_id`,
      [[...chatIds]],
    );
    return new Map(rows.map((row) => [row.chat_id, row.servers]));
  }

  async auditAfter(afterId: number, limit: number): Promise<AuditRecord[]> {
    const rows = await this.db.query<{ id: number; at: Date; kind: string; peer: string | null; code: string | null; detail: string }>(
      'select * from audit_log where id > $1 order by id limit $2',
      [afterId, Math.min(limit, AUDIT_READ_MAX)],
    );
    return rows.map((row) => ({ id: Number(row.id), at: row.at, kind: row.kind, detail: row.detail, ...(row.peer ? { peer: row.peer } : {}), ...(row.code ? { code: row.code } : {}) }));
  }

  async lastAuditId(): Promise<number> {
    const [row] = await this.db.query<{ id: number | null }>('select max(id) as id from audit_log');
    return Number(row?.id ?? 0);
  }

  async enqueueOutbox(records: readonly OutboxEntry[]): Promise<void> {
    if (records.length === 0) return;
    // with ordinality: ids follow the order given; the write lock: they commit in that order too.
    await this.db.query(
      `insert into outbox (topic, key, payload)
       select topic, key, decode(payload, 'base64') from unnest($1::text[], $2::text[], $3::text[]) with ordinality as t(topic, key, payload, n), (select ${WRITE_LOCK}) as write_lock order by n`,
      [records.map((r) => r.topic), records.map((r) => r.key), records.map((r) => Buffer.from(r.payload).toString('base64'))],
    );
  }

  async outboxAfter(afterId: number, limit: number, topic?: string): Promise<OutboxRecord[]> {
    const rows = await this.db.query<{ id: number; topic: string; key: string; payload: string; created_at: Date }>(
      `select id, topic, key, encode(payload, 'base64') as payload, created_at from outbox
       where id > $1 and ($3::text is null or topic = $3) order by id limit $2`,
      [afterId, limit, topic ?? null],
    );
    return rows.map((row) => ({ id: Number(row.id), topic: row.topic, key: row.key, payload: fromBase64(row.payload), createdAt: row.created_at }));
  }

  async lastOutboxId(): Promise<number> {
    const [row] = await this.db.query<{ id: number | null }>('select max(id) as id from outbox');
    return Number(row?.id ?? 0);
  }

  async trimOutbox(uptoId: number, keepNewest: number): Promise<number> {
    const rows = await this.db.query<{ n: number }>(
      `with gone as (delete from outbox where id <= greatest($1::bigint, (select coalesce(max(id), 0) from outbox) - $2::bigint) returning 1)
       select count(*)::int as n from gone`,
      [uptoId, keepNewest],
    );
    return rows[0]?.n ?? 0;
  }

  async projectionCursor(name: string): Promise<number | undefined> {
    const [row] = await this.db.query<{ position: number }>('select position from projection_cursors where name = $1', [name]);
    return row === undefined ? undefined : Number(row.position);
  }

  async saveProjectionCursor(name: string, position: number): Promise<void> {
    await this.db.query(
      `insert into projection_cursors (name, position) values ($1, $2)
       on conflict (name) do update set position = greatest(projection_cursors.position, excluded.position), updated_at = now()`,
      [name, position],
    );
  }

  close(): Promise<void> {
    return this.db.close();
  }
}
