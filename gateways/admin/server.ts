import * as grpc from '@grpc/grpc-js';
import { z } from 'zod';
import { EVENT_TEXT_FIELD_CHARS_MAX } from '../../crypto/index.js';
import { isLoopback, parseTrust, sections, upstreamOf, type TrellisNode } from '../../router/index.js';
import {
  AdminServiceService,
  TrustStatus,
  type AdminServiceServer,
  ChatRouteResponse,
  GraphResponse,
  LinksResponse,
  type ChatRouteRequest,
  type GraphRequest,
  type LinksRequest,
  type RemoveTrustRequest,
  type ReplicaView,
  type SetTrustRequest,
  type SetTrustResponse,
  type SetTrustStatusRequest,
} from '../../proto/gen/trellis/v1/admin.js';
import { chatRoutePiece, graphPiece, linksPiece, replicasListing, type LinksPageEntry } from './pages.js';
import { ADMIN_PAGE_BYTES_MAX, answerPage, PageRequestError, pagePosition } from './paging.js';
import { toChatRouteHead, toServer, toTrustView, trustDocument, trustStatuses } from './views.js';

/**
 * The admin service (proto/trellis/v1/admin.proto) on a loopback address: the node's
 * read models for operators, and trusts added, blocked and removed while it runs.
 * Plaintext, because it listens on loopback only and has no authentication: whoever
 * can reach it is on the machine. Every request is checked before the node sees it; a
 * refusal is a gRPC status whose message names the field, and the server keeps serving.
 * Trust changes are journalled by the node (setTrust, setTrustStatus, removeTrust).
 * Graph, ChatRoute and Links answer in pages (paging.ts), each well under the message limit.
 */

/** A chat id as events carry it: crypto's bound on a clear-text field. */
export const CHAT_ID_CHARS_MAX = EVENT_TEXT_FIELD_CHARS_MAX;
/** Requests and replies, each way: the gRPC limit. A paged answer stays within ADMIN_PAGE_BYTES_MAX, far below it. */
export const ADMIN_MESSAGE_BYTES_MAX = 16 * 1024 * 1024;
if (ADMIN_PAGE_BYTES_MAX >= ADMIN_MESSAGE_BYTES_MAX) throw new Error('ADMIN_PAGE_BYTES_MAX must be below ADMIN_MESSAGE_BYTES_MAX');
/** How long stop() lets calls in flight finish before cutting them. */
const SHUTDOWN_GRACE_MS = 1_000;

const HOST_PORT = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

export type AdminErrorCode = 'bad-address' | 'not-loopback' | 'cannot-listen';

/** Why the admin service could not start. */
export class AdminError extends Error {
  constructor(
    readonly code: AdminErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'AdminError';
  }
}

/** A request refused: becomes the call's gRPC status. */
class Refusal extends Error {
  constructor(
    readonly status: grpc.status,
    message: string,
  ) {
    super(message);
    this.name = 'Refusal';
  }
}

const invalid = (message: string) => new Refusal(grpc.status.INVALID_ARGUMENT, message);

export interface AdminServer {
  /** The bound port (useful when listening on :0). */
  port: number;
  /** host:port where the service answers. */
  address: string;
  stop(): Promise<void>;
}

function checkChatId(chatId: string): string {
  if (chatId === '') throw invalid('chat_id: is required');
  if (chatId.length > CHAT_ID_CHARS_MAX) throw invalid(`chat_id: is ${chatId.length} characters long, at most ${CHAT_ID_CHARS_MAX}`);
  if (chatId.includes('\u0000')) throw invalid('chat_id: must not hold a NUL character');
  return chatId;
}

const serverIdSchema = z.uuid();

/** A trust's server id in SetTrustStatus and RemoveTrust: a UUID, not ours, one we hold a trust with. */
function checkTrustedId(node: TrellisNode, serverId: string): string {
  if (serverId === '') throw invalid('server_id: is required');
  if (!serverIdSchema.safeParse(serverId).success) throw invalid('server_id: must be a server id, a UUID');
  if (serverId === node.id) throw invalid('server_id: is this server itself');
  if (!hasTrust(node, serverId)) throw new Refusal(grpc.status.NOT_FOUND, `server_id: this node holds no trust with ${serverId}`);
  return serverId;
}

function hasTrust(node: TrellisNode, serverId: string): boolean {
  return node.linkStatus().some((link) => link.serverId === serverId);
}

async function setTrust(node: TrellisNode, request: SetTrustRequest): Promise<SetTrustResponse> {
  const parsed = parseTrust(node.config, trustDocument(request));
  if (!parsed.ok) throw invalid(parsed.problems.join('; '));
  const { trust } = parsed;
  if (upstreamOf(node.config)?.server_id === trust.server_id && hasTrust(node, trust.server_id)) {
    throw new Refusal(grpc.status.FAILED_PRECONDITION, "server_id: is this node's upstream, set by rts_* / ets_* in its config: change it there, or block it with SetTrustStatus");
  }
  const added = !hasTrust(node, trust.server_id);
  await node.setTrust(trust);
  return { added, trust: toTrustView(trust) };
}

async function setTrustStatus(node: TrellisNode, request: SetTrustStatusRequest): Promise<Record<string, never>> {
  if (request.status === TrustStatus.TRUST_STATUS_UNSPECIFIED) throw invalid('status: is required: enabled or disabled');
  const status = trustStatuses.lookup(request.status);
  if (!status) throw invalid(`status: ${request.status} is not a trust status: enabled or disabled`);
  const serverId = checkTrustedId(node, request.serverId);
  try {
    await node.setTrustStatus(serverId, status);
  } catch (error) {
    // Removed between the check and the change.
    if ((error as { code?: unknown }).code === 'unknown-trust') throw new Refusal(grpc.status.NOT_FOUND, `server_id: this node holds no trust with ${serverId}`);
    throw error;
  }
  return {};
}

/** What the admin service shows beyond the node itself. */
export interface AdminExtras {
  /** A server run as replicas: each live one and the links it holds (gateways/redis). */
  replicas?: () => Promise<ReplicaView[]>;
}

function handlers(node: TrellisNode, extras: AdminExtras): AdminServiceServer {
  return {
    graph: unary(async (request: GraphRequest) => {
      const position = pagePosition(request, 'Graph');
      const { self, listing } = await node.inspect.graphListing();
      const view = { self: toServer(self), servers: [], links: [] };
      return answerPage(position, { view, listing, piece: graphPiece, respond: (graph, nextPageToken) => ({ graph, nextPageToken }), encode: (response) => GraphResponse.encode(response).finish() });
    }),
    chatRoute: unary(async (request: ChatRouteRequest) => {
      const chatId = checkChatId(request.chatId);
      const position = pagePosition(request, 'ChatRoute', chatId);
      const { head, listing } = await node.inspect.chatRouteListing(chatId);
      return answerPage(position, { view: toChatRouteHead(head), listing, piece: chatRoutePiece, respond: (route, nextPageToken) => ({ route, nextPageToken }), encode: (response) => ChatRouteResponse.encode(response).finish() });
    }),
    links: unary(async (request: LinksRequest) => {
      const position = pagePosition(request, 'Links');
      const { links, unrouted } = await node.inspect.linksListing();
      const listing = sections<LinksPageEntry>([links, unrouted, replicasListing((await extras.replicas?.()) ?? [])]);
      const view: LinksResponse = { links: [], unrouted: [], replicas: [], nextPageToken: '' };
      return answerPage(position, { view, listing, piece: linksPiece, respond: (page, nextPageToken) => ({ ...page, nextPageToken }), encode: (response) => LinksResponse.encode(response).finish() });
    }),
    setTrust: unary((request: SetTrustRequest) => setTrust(node, request)),
    setTrustStatus: unary((request: SetTrustStatusRequest) => setTrustStatus(node, request)),
    removeTrust: unary(async (request: RemoveTrustRequest) => {
      await node.removeTrust(checkTrustedId(node, request.serverId));
      return {};
    }),
  };
}

/** One unary call: a refusal becomes its status; anything else is INTERNAL, with its message (which never holds a token). */
function unary<Req, Res>(handle: (request: Req) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    handle(call.request).then(
      (response) => callback(null, response),
      (error: unknown) => {
        if (error instanceof Refusal) return callback({ code: error.status, details: error.message });
        if (error instanceof PageRequestError) return callback({ code: grpc.status.INVALID_ARGUMENT, details: error.message });
        callback({ code: grpc.status.INTERNAL, details: `the node failed: ${error instanceof Error ? error.message : String(error)}` });
      },
    );
  };
}

/** Serves the admin service of `node` on `listen` (host:port, loopback only; port 0 picks a free one). */
export async function startAdminServer(node: TrellisNode, listen: string, extras: AdminExtras = {}): Promise<AdminServer> {
  const match = HOST_PORT.exec(listen);
  if (!match || Number(match[2]) > 65535) throw new AdminError('bad-address', `admin.listen ${JSON.stringify(listen)}: must be host:port, e.g. 127.0.0.1:5002`);
  if (!isLoopback(listen)) throw new AdminError('not-loopback', `admin.listen ${listen}: must be a loopback address (127.0.0.1, ::1 or localhost): the admin service has no authentication`);
  const server = new grpc.Server({ 'grpc.max_receive_message_length': ADMIN_MESSAGE_BYTES_MAX, 'grpc.max_send_message_length': ADMIN_MESSAGE_BYTES_MAX });
  server.addService(AdminServiceService, handlers(node, extras));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(listen, grpc.ServerCredentials.createInsecure(), (error, bound) => {
      if (!error) return resolve(bound);
      server.forceShutdown();
      reject(new AdminError('cannot-listen', `admin.listen ${listen}: cannot listen: ${error.message}`));
    }),
  );
  const host = match[1]!;
  return {
    port,
    address: `${host}:${port}`,
    async stop() {
      await Promise.race([new Promise<void>((resolve) => server.tryShutdown(() => resolve())), new Promise((resolve) => setTimeout(resolve, SHUTDOWN_GRACE_MS).unref())]);
      server.forceShutdown();
    },
  };
}
