import * as grpc from '@grpc/grpc-js';
import type { ChatRouteView, DestinationQueue, GraphView, LinkCounters, TrustConfig } from '../../router/index.js';
import { AdminServiceClient, type ReplicaView } from '../../proto/gen/trellis/v1/admin.js';
import { ADMIN_MESSAGE_BYTES_MAX } from './server.js';
import { fromChatRoute, fromGraph, fromLinkCounters, fromQueue, fromTrustView, toSetTrustRequest, trustStatuses, type TrustInput, type TrustView } from './views.js';

/**
 * A small typed promise client of the admin service, for the CLI and tests. It answers
 * in the read models of router/inspect.ts; a failure is an AdminClientError whose
 * message says what is wrong in one line (the node's own words for a refused request).
 */

/** Each call, connection included: a node that does not answer in this long is reported, not waited for. */
export const ADMIN_CALL_TIMEOUT_MS = 10_000;

export type AdminClientErrorCode = 'unavailable' | 'invalid-argument' | 'not-found' | 'failed-precondition' | 'not-admin' | 'timeout' | 'failed';

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
  graph(): Promise<GraphView>;
  chatRoute(chatId: string): Promise<ChatRouteView>;
  links(): Promise<LinksReport>;
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
    graph: async () => fromGraph((await call(client.graph.bind(client), {})).graph),
    chatRoute: async (chatId) => fromChatRoute((await call(client.chatRoute.bind(client), { chatId })).route),
    async links() {
      const reply = await call(client.links.bind(client), {});
      return { links: reply.links.map(fromLinkCounters), unrouted: reply.unrouted.map(fromQueue), replicas: reply.replicas };
    },
    async setTrust(trust) {
      const reply = await call(client.setTrust.bind(client), toSetTrustRequest(trust));
      return { added: reply.added, trust: fromTrustView(reply.trust) };
    },
    setTrustStatus: async (serverId, status) => void (await call(client.setTrustStatus.bind(client), { serverId, status: trustStatuses.to(status) })),
    removeTrust: async (serverId) => void (await call(client.removeTrust.bind(client), { serverId })),
    close: () => client.close(),
  };
}
