import { createHash } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { z } from 'zod';
import type { Listing } from '../../router/index.js';

/**
 * How the admin service answers in pages (proto/trellis/v1/admin.proto, "Paging"): an
 * answer is a listing (router/inspect.ts), a tree of sorted keys; a page is the entries
 * after a key path, up to a count and a byte bound, and its token is the key path of its
 * last entry. Key order, not positions: what is added or removed between two pages moves
 * no other entry, so nothing present throughout is skipped or sent twice. A token is
 * base64url JSON, opaque to clients, checked when it comes back.
 */

/** What one answer may weigh on the wire: well under the gRPC message limit (ADMIN_MESSAGE_BYTES_MAX), whatever the tables hold. */
export const ADMIN_PAGE_BYTES_MAX = 256 * 1024;
/** Entries a page holds when the request leaves page_size at 0. */
export const ADMIN_PAGE_SIZE_DEFAULT = 1_000;
/** The largest page_size a request may ask for. */
export const ADMIN_PAGE_SIZE_MAX = 10_000;
/** A page token's length: a key path of at most PAGE_KEY_DEPTH_MAX parts of at most PAGE_KEY_PART_CHARS_MAX each, in base64url JSON. */
export const PAGE_TOKEN_CHARS_MAX = 4_096;
const PAGE_KEY_DEPTH_MAX = 4;
const PAGE_KEY_PART_CHARS_MAX = 512;
/**
 * A page gives the event loop a turn after this many entries: an entry may read the store
 * (a link's queue), and the embedded engine answers without ever reaching the loop's
 * timers, so a page of thousands would otherwise starve every link's heartbeats.
 */
export const PAGE_ENTRIES_PER_TURN = 64;
/** An entry's framing on the wire beyond its own bytes: a tag and a length prefix at each of two levels of nesting, and the growth of its parent's prefix. */
const ENTRY_FRAMING_BYTES = 12;

export type AnswerName = 'Graph' | 'ChatRoute' | 'Links';
const ANSWERS = ['Graph', 'ChatRoute', 'Links'] as const satisfies readonly AnswerName[];

export type PageRequestErrorCode = 'bad-page-size' | 'bad-page-token';

/** A page request the service refuses (INVALID_ARGUMENT); the message names the field. */
export class PageRequestError extends Error {
  constructor(
    readonly code: PageRequestErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'PageRequestError';
  }
}

/** Where a page starts and how many entries it may hold. */
export interface PagePosition {
  answer: AnswerName;
  scope: string;
  size: number;
  /** The key path of the last entry already sent; empty for the first page. */
  after: readonly string[];
}

const tokenSchema = z
  .object({
    a: z.enum(ANSWERS),
    s: z.string().max(64),
    k: z.array(z.string().max(PAGE_KEY_PART_CHARS_MAX)).min(1).max(PAGE_KEY_DEPTH_MAX),
  })
  .strict();

/** A token is for one call with the same other fields: `scope` is those fields (a chat id), kept as a digest. */
function scopeDigest(scope: string): string {
  return scope === '' ? '' : createHash('sha256').update(scope).digest('base64url').slice(0, 16);
}

export function pageToken(position: Pick<PagePosition, 'answer' | 'scope'>, last: readonly string[] | undefined): string {
  if (!last) return '';
  const token = Buffer.from(JSON.stringify({ a: position.answer, s: scopeDigest(position.scope), k: last })).toString('base64url');
  if (token.length > PAGE_TOKEN_CHARS_MAX) throw new Error(`a page token of ${token.length} characters, at most ${PAGE_TOKEN_CHARS_MAX}: a listing key is longer than its bound`);
  return token;
}

const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** Reads a request's page_size and page_token for `answer` (its other fields as `scope`); throws PageRequestError naming the field. */
export function pagePosition(request: { pageSize: number; pageToken: string }, answer: AnswerName, scope = ''): PagePosition {
  const { pageSize, pageToken: token } = request;
  if (!Number.isInteger(pageSize) || pageSize < 0 || pageSize > ADMIN_PAGE_SIZE_MAX) {
    throw new PageRequestError('bad-page-size', `page_size: is ${pageSize}, at most ${ADMIN_PAGE_SIZE_MAX} (0 for the default, ${ADMIN_PAGE_SIZE_DEFAULT})`);
  }
  const size = pageSize === 0 ? ADMIN_PAGE_SIZE_DEFAULT : pageSize;
  if (token === '') return { answer, scope, size, after: [] };
  const bad = (why: string) => new PageRequestError('bad-page-token', `page_token: ${why}; give the next_page_token of the page before, or none for the first page`);
  if (token.length > PAGE_TOKEN_CHARS_MAX) throw bad(`is ${token.length} characters long, at most ${PAGE_TOKEN_CHARS_MAX}`);
  if (!BASE64URL.test(token)) throw bad('is not a page token of this service (not base64url)');
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw bad('is not a page token of this service');
  }
  const parsed = tokenSchema.safeParse(decoded);
  if (!parsed.success) throw bad('is not a page token of this service');
  if (parsed.data.a !== answer) throw bad(`is a token of ${parsed.data.a}, not of ${answer}`);
  if (parsed.data.s !== scopeDigest(scope)) throw bad(`was given by ${answer} for another ${answer === 'ChatRoute' ? 'chat_id' : 'request'}`);
  return { answer, scope, size, after: parsed.data.k };
}

/** An entry of a listing with its key path, computed only when called. */
export interface Keyed<E> {
  key: readonly string[];
  entry(): E | Promise<E>;
}

/** The first index whose key is not below `key`. */
function lowerBound(keys: readonly string[], key: string): number {
  let [low, high] = [0, keys.length];
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (keys[middle]! < key) low = middle + 1;
    else high = middle;
  }
  return low;
}

/**
 * The entries of `listing` whose key path comes after `after`, in key order: a key before
 * a key below it, a shorter path before its longer ones. A key on `after`'s path is gone
 * through again (its own entry was sent) to resume below it.
 */
export function* entriesAfter<E>(listing: Listing<E>, after: readonly string[], prefix: readonly string[] = []): Generator<Keyed<E>> {
  const mark = after[prefix.length];
  for (let index = mark === undefined ? 0 : lowerBound(listing.keys, mark); index < listing.keys.length; index++) {
    const key = listing.keys[index]!;
    const path = [...prefix, key];
    const onPath = key === mark;
    const { entry } = listing;
    if (entry && !onPath) yield { key: path, entry: () => entry(key) };
    const below = listing.below?.(key);
    if (below) yield* entriesAfter(below, onPath ? after : [], path);
  }
}

/** An entry as a page carries it: what it adds to the page's bytes, and how it goes in. `first`: the page starts with it. */
export interface Piece<V> {
  bytes: number;
  put(view: V): void;
}

/** An entry's bytes on the wire, given what it encodes to alone. */
export const framed = (encodedBytes: number): number => encodedBytes + ENTRY_FRAMING_BYTES;

/** How one answer is paged: its page with single fields set and lists empty, its listing, and how an entry and the page go on the wire. */
export interface PagedAnswer<E, V, R> {
  view: V;
  listing: Listing<E>;
  piece(entry: E, first: boolean): Piece<V>;
  respond(view: V, nextPageToken: string): R;
  encode(response: R): Uint8Array;
}

/**
 * One page of an answer: entries after the position, until the page holds `size` of them
 * or the next would pass ADMIN_PAGE_BYTES_MAX; its token names the last one, and is empty
 * when no entry is left. Asserts the encoded answer is within the bound.
 */
export async function answerPage<E, V, R>(position: PagePosition, answer: PagedAnswer<E, V, R>): Promise<R> {
  const budget = ADMIN_PAGE_BYTES_MAX - answer.encode(answer.respond(answer.view, '')).length - PAGE_TOKEN_CHARS_MAX - ENTRY_FRAMING_BYTES;
  let [left, count, last] = [budget, 0, undefined as readonly string[] | undefined];
  let more = false;
  for (const { key, entry } of entriesAfter(answer.listing, position.after)) {
    if (count === position.size) {
      more = true;
      break;
    }
    const piece = answer.piece(await entry(), count === 0);
    if (piece.bytes > left) {
      if (count === 0) throw new Error(`an entry of ${piece.bytes} bytes at ${key.join('/')} is larger than a page (${budget} bytes): a field is longer than its bound`);
      more = true;
      break;
    }
    piece.put(answer.view);
    [left, count, last] = [left - piece.bytes, count + 1, key];
    if (count % PAGE_ENTRIES_PER_TURN === 0) await nextTurn();
  }
  const response = answer.respond(answer.view, more ? pageToken(position, last) : '');
  const bytes = answer.encode(response).length;
  if (bytes > ADMIN_PAGE_BYTES_MAX) throw new Error(`a page of ${bytes} bytes, at most ${ADMIN_PAGE_BYTES_MAX}: the framing estimate is off`);
  return response;
}
