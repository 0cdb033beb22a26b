import { createHash } from 'node:crypto';
import { EventKind, RoutingPolicy, type Event } from '../proto/gen/trellis/v1/event.js';
import { EventError } from './errors.js';
import { verifySignature, type Identity } from './identity.js';

/**
 * Canonical encoding, content id, chain and origin signature of a chat event.
 *
 * The id is SHA-256 over a fixed-order, length-prefixed encoding of every field but
 * the id and the signature, so it commits to `prev` and therefore to the origin's
 * whole chain before it. The origin signs the id; a signature on the last event of a
 * (chat, origin) run therefore authenticates the whole run.
 */
export const EVENT_ID_BYTES = 32;
export const EVENT_BODY_BYTES_MAX = 64 * 1024;
export const EVENT_MEMBERS_MAX = 1024;
export const EVENT_TEXT_FIELD_CHARS_MAX = 256;
/** Kinds travel as a proto enum (int32); kinds above the known ones come from newer servers and are kept. */
export const EVENT_KIND_MAX = 0x7fff_ffff;

const ENCODING_TAG = Buffer.from('trellis-event-v1\0');
const SIGNATURE_TAG = Buffer.from('trellis-event-sig-v1\0');

export type UnsignedEvent = Omit<Event, 'id' | 'signature'>;

/** Kinds whose `members` carry the chat's full member list (where the chat lives). */
export const MEMBERSHIP_KINDS: ReadonlySet<number> = new Set([
  EventKind.EVENT_KIND_CHAT_CREATED,
  EventKind.EVENT_KIND_MEMBERS_ADDED,
  EventKind.EVENT_KIND_MEMBERS_REMOVED,
]);

class CanonicalWriter {
  private readonly parts: Buffer[] = [ENCODING_TAG];
  bytes(value: Uint8Array): this {
    const length = Buffer.allocUnsafe(4);
    length.writeUInt32BE(value.length);
    this.parts.push(length, Buffer.from(value.buffer, value.byteOffset, value.byteLength));
    return this;
  }
  text(value: string): this {
    return this.bytes(Buffer.from(value, 'utf8'));
  }
  u64(value: number): this {
    const out = Buffer.allocUnsafe(8);
    out.writeBigUInt64BE(BigInt(value));
    this.parts.push(out);
    return this;
  }
  u32(value: number): this {
    const out = Buffer.allocUnsafe(4);
    out.writeUInt32BE(value);
    this.parts.push(out);
    return this;
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

export function canonicalEncoding(event: UnsignedEvent): Buffer {
  const writer = new CanonicalWriter()
    .text(event.chatId)
    .text(event.origin)
    .u64(event.seq)
    .bytes(event.prev)
    .u64(event.hlcMs)
    .u32(event.hlcCounter)
    .text(event.senderUser)
    .text(event.senderDevice)
    .u32(event.kind)
    .u32(event.members.length);
  for (const member of event.members) writer.text(member);
  writer.bytes(event.body);
  // Appended only when set, so every event without a policy keeps the bytes (and id) it had before.
  if (event.routingPolicy) writer.u32(event.routingPolicy);
  return writer.done();
}

export function eventId(event: UnsignedEvent): Buffer {
  return createHash('sha256').update(canonicalEncoding(event)).digest();
}

function signatureMessage(id: Uint8Array): Buffer {
  return Buffer.concat([SIGNATURE_TAG, id]);
}

export function signEventId(identity: Identity, id: Uint8Array): Buffer {
  return Buffer.from(identity.sign(signatureMessage(id)));
}

export function verifyEventSignature(originKey: Uint8Array, id: Uint8Array, signature: Uint8Array): boolean {
  return verifySignature(originKey, signatureMessage(id), signature);
}

/** Shape checks that need no key: sizes and required fields. Throws EventError('malformed'). */
export function checkEventShape(event: Event): void {
  const fail = (what: string): never => {
    throw new EventError('malformed', `event ${what}`);
  };
  if (event.id.length !== EVENT_ID_BYTES) fail(`id must be ${EVENT_ID_BYTES} bytes`);
  if (!event.chatId || !isStorableText(event.chatId)) fail('chat_id is empty, too long or holds a NUL');
  if (!event.origin || !isStorableText(event.origin)) fail('origin is empty, too long or holds a NUL');
  if (!Number.isSafeInteger(event.seq) || event.seq < 1) fail('seq must be a positive integer');
  if (event.prev.length !== (event.seq === 1 ? 0 : EVENT_ID_BYTES)) fail('prev must be empty at seq 1 and 32 bytes after');
  if (!Number.isSafeInteger(event.hlcMs) || event.hlcMs < 0) fail('hlc_ms is out of range');
  if (!isStorableText(event.senderUser) || !isStorableText(event.senderDevice)) fail('sender is too long or holds a NUL');
  if (event.kind <= 0 || event.kind > EVENT_KIND_MAX) fail('kind is unspecified or out of range');
  if (event.members.length > EVENT_MEMBERS_MAX) fail(`members exceed ${EVENT_MEMBERS_MAX}`);
  if (!event.members.every((member) => MEMBER_PATTERN.test(member) && isStorableText(member))) fail('members must each look like user@server-id');
  if (event.body.length > EVENT_BODY_BYTES_MAX) fail(`body exceeds ${EVENT_BODY_BYTES_MAX} bytes`);
  if (event.signature.length !== 0 && event.signature.length !== 64) fail('signature must be empty or 64 bytes');
  if (event.routingPolicy && event.kind !== EventKind.EVENT_KIND_CHAT_CREATED) fail('routing_policy is set only on chat-created');
  if (event.routingPolicy < 0 || event.routingPolicy > EVENT_KIND_MAX) fail('routing_policy is out of range');
}

/** `user@server-id`: no spaces, exactly one @. */
const MEMBER_PATTERN = /^[^@\s]+@[^@\s]+$/;

/** Within the text field bound and free of NUL, which neither PostgreSQL text nor jsonb can hold. */
function isStorableText(value: string): boolean {
  return value.length <= EVENT_TEXT_FIELD_CHARS_MAX && !value.includes('\u0000');
}

/**
 * Checks one (chat, origin) run as a receiver must: each id is the hash of its event,
 * each event links to the one before it, and the last event carries a valid origin
 * signature. Signatures inside the run are not checked, so they are dropped from the
 * returned events: a store keeps only signatures it has verified.
 */
export function checkRun(run: readonly Event[], originKey: Uint8Array): Event[] {
  const last = run[run.length - 1];
  if (!last) throw new EventError('malformed', 'empty run');
  const checked: Event[] = [];
  for (const [index, event] of run.entries()) {
    checkEventShape(event);
    if (!eventId(event).equals(event.id)) {
      throw new EventError('bad-id', `event id does not match its content (chat ${event.chatId}, seq ${event.seq})`);
    }
    const before = run[index - 1];
    if (before && (event.chatId !== before.chatId || event.origin !== before.origin)) {
      throw new EventError('bad-chain', `run mixes chats or origins (chat ${event.chatId}, seq ${event.seq})`);
    }
    if (before && (event.seq !== before.seq + 1 || !Buffer.from(event.prev).equals(before.id))) {
      throw new EventError('bad-chain', `event does not follow the one before it (chat ${event.chatId}, seq ${event.seq})`);
    }
    checked.push(event === last ? event : { ...event, signature: Buffer.alloc(0) });
  }
  if (!verifyEventSignature(originKey, last.id, last.signature)) {
    throw new EventError('bad-signature', `origin signature does not verify (chat ${last.chatId}, seq ${last.seq})`);
  }
  return checked;
}

/** Digest of a chat's log: SHA-256 over its event ids in canonical order. Equal digests, equal logs. */
export function logDigest(idsInCanonicalOrder: Iterable<Uint8Array>): Buffer {
  const hash = createHash('sha256');
  for (const id of idsInCanonicalOrder) hash.update(id);
  return hash.digest();
}

/** What a sending device hands its server: everything but the chain position and clock. */
export interface EventDraft {
  chatId: string;
  senderUser: string;
  senderDevice: string;
  kind: Event['kind'];
  members?: string[];
  /** Sealed by the device (crypto/body.ts); the server never sees the plaintext. */
  body: Buffer;
  /** On chat-created: how the chat's events may travel (default: fail over). */
  routingPolicy?: RoutingPolicy;
}

export interface ChainPosition {
  seq: number;
  id: Uint8Array;
}

export interface HybridTime {
  ms: number;
  counter: number;
}

/** Places a draft after `head` in the origin's chain; the event is unsigned (see signEventId). */
export function chainEvent(origin: string, head: ChainPosition | undefined, draft: EventDraft, time: HybridTime): Event {
  const unsigned = unsignedEvent(origin, head, draft, time);
  return { ...unsigned, id: eventId(unsigned), signature: Buffer.alloc(0) };
}

/** The shape rules (checkEventShape) a draft must meet to become an event; no hashing, so cheap per post. */
export function checkDraftShape(draft: EventDraft): void {
  const unsigned = unsignedEvent('origin', undefined, draft, { ms: 0, counter: 0 });
  checkEventShape({ ...unsigned, id: Buffer.alloc(EVENT_ID_BYTES), signature: Buffer.alloc(0) });
}

function unsignedEvent(origin: string, head: ChainPosition | undefined, draft: EventDraft, time: HybridTime): UnsignedEvent {
  return {
    chatId: draft.chatId,
    origin,
    seq: head ? head.seq + 1 : 1,
    prev: head ? Buffer.from(head.id) : Buffer.alloc(0),
    hlcMs: time.ms,
    hlcCounter: time.counter,
    senderUser: draft.senderUser,
    senderDevice: draft.senderDevice,
    kind: draft.kind,
    members: draft.members ?? [],
    body: draft.body,
    routingPolicy: draft.routingPolicy ?? RoutingPolicy.ROUTING_POLICY_UNSPECIFIED,
  };
}
