import * as grpc from '@grpc/grpc-js';
import type { ChatRouteView, DestinationQueue, GraphView, LinkCounters, TrustConfig } from '../../router/index.js';
import { AdminServiceClient, type ReplicaView } from '../../proto/gen/trellis/v1/admin.js';
import { blankChatRoute, blankGraph, blankLinks, joinChatRoute, joinGraph, joinLinks } from './pages.js';
import { ADMIN_PAGE_SIZE_DEFAULT, ADMIN_PAGE_SIZE_MAX } from './paging.js';
import { ADMIN_MESSAGE_BYTES_MAX } from './server.js';
import { fromChatRoute, fromGraph, fromLinkCounters, fromQueue, fromTrustView, toSetTrustRequest, trustStatuses, type TrustInput, type TrustView } from './views.js';

/**
 * A small typed promise client of the admin service, for the CLI and tests. It answers
 * in the read models of router/inspect.ts, fetching every page of a paged answer and
 * joining them (up to a bound, or a limit the caller sets); a failure is an
 * AdminClientError whose message says what is wrong in one line (the node's own words
 * for a refused request).
 */

/** Each call, connection included: a node that does not answer in this long is reported, not waited for. */
export const ADMIN_CALL_TIMEOUT_MS = 10_000;
/** Entries one fetch of a paged answer gathers at the most (about 40 MB of ids): a node with more says so and is cut there. */
export const ADMIN_FETCH_ENTRIES_MAX = 1_000_000;

export type AdminClientErrorCode = 'unavailable' | 'invalid-argument' | 'not-found' | 'failed-precondition' | 'not-admin' | 'timeout' | 'bad-page' | 'failed';

/** How far a fetch of a paged answer has come, after each page. */
export interface FetchProgress {
  pages: number;
  /** Entries so far: items of the answer's lists, each id a link reaches or carries, each candidate... */
  entries: number;
  /** This page is the last one fetched. */
  last: boolean;
  /** Set on the last page fetched when the node has more: the limit, or ADMIN_FETCH_ENTRIES_MAX, was reached. */
  cut?: 'limit' | 'bound';
}

export interface FetchOptions {
  /** Stop after this many entries (1 to ADMIN_FETCH_ENTRIES_MAX); default: every entry, up to ADMIN_FETCH_ENTRIES_MAX. */
  limit?: number;
  /** Entries to ask for a page (1 to ADMIN_PAGE_SIZE_MAX); default ADMIN_PAGE_SIZE_DEFAULT. */
  pageSize?: number;
  onPage?(progress: FetchProgress): void;
}

export class AdminClientError extends Error {
  constructor(
    readonly code: AdminClientErrorCode,
    readonly address: string,
    message: string,
  ) {
    super(message);
    this.name = 'AdminClientError';
  }
}

export interface LinksReport {
  links: LinkCounters[];
  /** Destinations with chats on the node and no path now. */
  unrouted: DestinationQueue[];
  /** A server run as replicas: each live one and the peers whose links it holds. */
  replicas: ReplicaView[];
}

export interface AdminClient {
  readonly address: string;
  graph(fetch?: FetchOptions): Promise<GraphView>;
  chatRoute(chatId: string, fetch?: FetchOptions): Promise<ChatRouteView>;
  links(fetch?: FetchOptions): Promise<LinksReport>;
  /** Adds or replaces a trust; the reply shows it as the node holds it, without tokens. */
  setTrust(trust: TrustInput): Promise<{ added: boolean; trust: TrustView }>;
  setTrustStatus(serverId: string, status: TrustConfig['status']): Promise<void>;
  removeTrust(serverId: string): Promise<void>;
  close(): void;
}

const CODES: Partial<Record<grpc.status, AdminClientErrorCode>> = {
  [grpc.status.INVALID_ARGUMENT]: 'invalid-argument',
  [grpc.status.NOT_FOUND]: 'not-found',
  [grpc.status.FAILED_PRECONDITION]: 'failed-precondition',
};

function clientError(address: string, error: grpc.ServiceError): AdminClientError {
  const details = error.details.split('\n')[0] ?? '';
  switch (error.code) {
    case grpc.status.UNAVAILABLE:
      return new AdminClientError('unavailable', address, `no Trellis admin service answers at ${address} (is the node running, with admin.listen set to that address?): ${details}`);
    case grpc.status.DEADLINE_EXCEEDED:
      return new AdminClientError('timeout', address, `the admin service at ${address} did not answer within ${ADMIN_CALL_TIMEOUT_MS / 1000} s`);
    case grpc.status.UNIMPLEMENTED:
      return new AdminClientError('not-admin', address, `${address} is not a Trellis admin service (the trust port? give the node's admin.listen address): ${details}`);
    default:
      return new AdminClientError(CODES[error.code] ?? 'failed', address, details || `the call failed with gRPC status ${error.code}`);
  }
}

interface Page<V> {
  view: V;
  nextPageToken: string;
}

/**
 * Fetches the pages of one answer from the first and joins them, until the last page,
 * the limit or ADMIN_FETCH_ENTRIES_MAX. A page that brings nothing but names a next page
 * would never end: it is refused.
 */
async function fetchPages<V>(address: string, fetch: FetchOptions, page: (pageSize: number, pageToken: string) => Promise<Page<V>>, blank: (page: V) => V, join: (into: V, page: V) => number): Promise<V> {
  const limit = fetch.limit ?? ADMIN_FETCH_ENTRIES_MAX;
  const pageSize = fetch.pageSize ?? ADMIN_PAGE_SIZE_DEFAULT;
  if (!Number.isInteger(limit) || limit < 1 || limit > ADMIN_FETCH_ENTRIES_MAX) throw new AdminClientError('invalid-argument', address, `limit: ${limit} is not a whole number from 1 to ${ADMIN_FETCH_ENTRIES_MAX}`);
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > ADMIN_PAGE_SIZE_MAX) throw new AdminClientError('invalid-argument', address, `pageSize: ${pageSize} is not a whole number from 1 to ${ADMIN_PAGE_SIZE_MAX}`);
  let [whole, token, pages, entries] = [undefined as V | undefined, '', 0, 0];
  for (;;) {
    const next = await page(Math.min(pageSize, limit - entries), token);
    whole ??= blank(next.view);
    const added = join(whole, next.view);
    [pages, entries, token] = [pages + 1, entries + added, next.nextPageToken];
    if (token !== '' && added === 0) throw new AdminClientError('bad-page', address, `the admin service at ${address} answered a page with no entry that names a next page`);
    const cut = token === '' ? undefined : entries < limit ? undefined : fetch.limit === undefined ? 'bound' : 'limit';
    fetch.onPage?.({ pages, entries, last: token === '' || cut !== undefined, ...(cut ? { cut } : {}) });
    if (token === '' || cut) return whole;
  }
}

type Unary<Req, Res> = (request: Req, metadata: grpc.Metadata, options: Partial<grpc.CallOptions>, callback: (error: grpc.ServiceError | null, response: Res) => void) => grpc.ClientUnaryCall;

/** A client of the admin service at `address` (host:port). Connects on the first call; close() when done. */
export function adminClient(address: string): AdminClient {
  const client = new AdminServiceClient(address, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': ADMIN_MESSAGE_BYTES_MAX });
  const call = <Req, Res>(method: Unary<Req, Res>, request: Req): Promise<Res> =>
    new Promise((resolve, reject) => {
      method(request, new grpc.Metadata(), { deadline: Date.now() + ADMIN_CALL_TIMEOUT_MS }, (error, response) => (error ? reject(clientError(address, error)) : resolve(response)));
    });
  return {
    address,
    graph: (fetch = {}) =>
      fetchPages(address, fetch, async (pageSize, pageToken) => {
        const reply = await call(client.graph.bind(client), { pageSize, pageToken });
        return { view: fromGraph(reply.graph), nextPageToken: reply.nextPageToken };
      }, blankGraph, joinGraph),
    chatRoute: (chatId, fetch = {}) =>
      fetchPages(address, fetch, async (pageSize, pageToken) => {
        const reply = await call(client.chatRoute.bind(client), { chatId, pageSize, pageToken });
        return { view: fromChatRoute(reply.route), nextPageToken: reply.nextPageToken };
      }, blankChatRoute, joinChatRoute),
    links: (fetch = {}) =>
      fetchPages(address, fetch, async (pageSize, pageToken) => {
        const reply = await call(client.links.bind(client), { pageSize, pageToken });
        return { view: { links: reply.links.map(fromLinkCounters), unrouted: reply.unrouted.map(fromQueue), replicas: reply.replicas }, nextPageToken: reply.nextPageToken };
      }, blankLinks, joinLinks),
    async setTrust(trust) {
      const reply = await call(client.setTrust.bind(client), toSetTrustRequest(trust));
      return { added: reply.added, trust: fromTrustView(reply.trust) };
    },
    setTrustStatus: async (serverId, status) => void (await call(client.setTrustStatus.bind(client), { serverId, status: trustStatuses.to(status) })),
    removeTrust: async (serverId) => void (await call(client.removeTrust.bind(client), { serverId })),
    close: () => client.close(),
  };
}
