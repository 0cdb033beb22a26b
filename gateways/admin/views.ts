import type {
  ChatRouteView,
  DestinationQueue,
  DestinationRoute,
  GraphView,
  LinkColour,
  LinkCounters,
  LinkStats,
  LinkView,
  PathClass,
  RouteCandidate,
  ServerKind,
  ServerView,
  TrustConfig,
  TrustRole,
} from '../../router/index.js';
import * as wire from '../../proto/gen/trellis/v1/admin.js';
import { RoutingPolicy } from '../../proto/gen/trellis/v1/event.js';

/**
 * The read models of router/inspect.ts on the wire (proto/trellis/v1/admin.proto) and
 * back: the server encodes with `to*`, the client decodes with `from*`, so the CLI and
 * tests read the same shapes the node computes. Enums cross as numbers; a number this
 * side does not know (a newer node's) is a protocol mismatch and is said so.
 */

/** A trust as the admin service shows it: everything but its tokens, which are write-only. */
export type TrustView = Omit<TrustConfig, 'token_for_accepting' | 'token_for_connecting'>;

/** A trust as an operator gives it: the config's fields, defaults left out. */
export interface TrustInput {
  server_id: string;
  name: string;
  kind?: TrustConfig['kind'];
  endpoint?: string;
  token_for_accepting: string;
  token_for_connecting: string;
  status?: TrustConfig['status'];
  allow_trust_search?: boolean;
  identity_key?: string;
}

export class WireMismatch extends Error {
  readonly code = 'wire-mismatch';
  constructor(what: string, value: number) {
    super(`the node sent ${what} ${value}, which this client does not know (is the CLI older than the node?)`);
    this.name = 'WireMismatch';
  }
}

/** A two-way map between a string union and a proto enum; 0 (unspecified) is left to each caller. */
function enumMap<K extends string, V extends number>(what: string, entries: Record<K, V>) {
  const back = new Map<number, K>(Object.entries(entries).map(([key, value]) => [value as number, key as K]));
  return {
    to: (key: K): V => entries[key],
    /** undefined for 0 or an unknown number; `from` throws on an unknown one. */
    lookup: (value: number): K | undefined => back.get(value),
    from(value: number): K {
      const key = back.get(value);
      if (key === undefined) throw new WireMismatch(what, value);
      return key;
    },
  };
}

export const serverKinds = enumMap<ServerKind, wire.ServerKind>('server kind', {
  CTS: wire.ServerKind.SERVER_KIND_CTS,
  ETS: wire.ServerKind.SERVER_KIND_ETS,
  RTS: wire.ServerKind.SERVER_KIND_RTS,
  TTS: wire.ServerKind.SERVER_KIND_TTS,
});
const colours = enumMap<LinkColour, wire.LinkColour>('link colour', {
  green: wire.LinkColour.LINK_COLOUR_GREEN,
  purple: wire.LinkColour.LINK_COLOUR_PURPLE,
  red: wire.LinkColour.LINK_COLOUR_RED,
});
const roles = enumMap<TrustRole, wire.TrustRole>('trust role', {
  upstream: wire.TrustRole.TRUST_ROLE_UPSTREAM,
  partner: wire.TrustRole.TRUST_ROLE_PARTNER,
  downstream: wire.TrustRole.TRUST_ROLE_DOWNSTREAM,
  transit: wire.TrustRole.TRUST_ROLE_TRANSIT,
});
export const trustStatuses = enumMap<TrustConfig['status'], wire.TrustStatus>('trust status', {
  enabled: wire.TrustStatus.TRUST_STATUS_ENABLED,
  disabled: wire.TrustStatus.TRUST_STATUS_DISABLED,
});
const pathClasses = enumMap<PathClass, wire.PathClass>('path class', {
  direct: wire.PathClass.PATH_CLASS_DIRECT,
  enterprise: wire.PathClass.PATH_CLASS_ENTERPRISE,
  regional: wire.PathClass.PATH_CLASS_REGIONAL,
  transit: wire.PathClass.PATH_CLASS_TRANSIT,
});

const toColour = (colour: LinkColour | ''): wire.LinkColour => (colour === '' ? wire.LinkColour.LINK_COLOUR_UNSPECIFIED : colours.to(colour));
const fromColour = (value: wire.LinkColour): LinkColour | '' => (value === wire.LinkColour.LINK_COLOUR_UNSPECIFIED ? '' : colours.from(value));

// Server side: read model → wire.

export function toServer(server: ServerView): wire.ServerView {
  return {
    id: server.id,
    name: server.name,
    kind: server.kind === '' ? wire.ServerKind.SERVER_KIND_UNSPECIFIED : serverKinds.to(server.kind),
    upstream: server.upstream,
    chats: server.chats,
    status: toColour(server.status),
  };
}

export function toLink(link: LinkView): wire.LinkView {
  return {
    peerId: link.peerId,
    name: link.name,
    kind: serverKinds.to(link.kind),
    role: roles.to(link.role),
    endpoint: link.endpoint,
    status: colours.to(link.status),
    reachable: [...link.reachable],
    carries: [...link.carries],
  };
}

export function toCandidate(candidate: RouteCandidate): wire.RouteCandidate {
  return { via: candidate.via, viaName: candidate.viaName, path: [...candidate.path], class: pathClasses.to(candidate.class), taken: candidate.taken, why: candidate.why };
}

export function toDestination(route: DestinationRoute): wire.DestinationRoute {
  return { serverId: route.serverId, name: route.name, via: route.via ?? '', path: [...route.path], candidates: route.candidates.map(toCandidate) };
}

/** A chat route's single fields, lists empty: the head of each of its pages. */
export function toChatRouteHead(view: Omit<ChatRouteView, 'servers' | 'destinations'>): wire.ChatRouteView {
  return {
    chatId: view.chatId,
    known: view.known,
    policy: view.policy === 'corporate' ? RoutingPolicy.ROUTING_POLICY_CORPORATE : RoutingPolicy.ROUTING_POLICY_UNSPECIFIED,
    servers: [],
    destinations: [],
  };
}

export function toQueue(queue: DestinationQueue): wire.DestinationQueue {
  return { serverId: queue.serverId, name: queue.name, depth: queue.depth, ...(queue.oldestAgeMs !== undefined ? { oldestAgeMs: queue.oldestAgeMs } : {}), unconfirmed: queue.unconfirmed };
}

/** A counter added to router/link.ts's LinkStats must be added to admin.proto's too: this stops compiling until it is. */
const statsOnTheWire: [Exclude<keyof LinkStats, keyof wire.LinkStats>] extends [never] ? true : never = true;

function toStats(stats: LinkStats): wire.LinkStats {
  void statsOnTheWire;
  return { ...stats };
}

export function toLinkCounters(counters: LinkCounters): wire.LinkCounters {
  return { peerId: counters.peerId, name: counters.name, status: colours.to(counters.status), stats: counters.stats && toStats(counters.stats), queues: counters.queues.map(toQueue) };
}

export function toTrustView(trust: TrustConfig): wire.TrustView {
  return {
    serverId: trust.server_id,
    name: trust.name,
    kind: serverKinds.to(trust.kind),
    role: roles.to(trust.role),
    endpoint: trust.endpoint ?? '',
    status: trustStatuses.to(trust.status),
    allowTrustSearch: trust.allow_trust_search,
    identityKey: trust.identity_key ?? '',
  };
}

// Client side: wire → read model.

function fromServer(server: wire.ServerView): ServerView {
  return {
    id: server.id,
    name: server.name,
    kind: server.kind === wire.ServerKind.SERVER_KIND_UNSPECIFIED ? '' : serverKinds.from(server.kind),
    upstream: server.upstream,
    chats: server.chats,
    status: fromColour(server.status),
  };
}

function fromLink(link: wire.LinkView): LinkView {
  return {
    peerId: link.peerId,
    name: link.name,
    kind: serverKinds.from(link.kind),
    role: roles.from(link.role),
    endpoint: link.endpoint,
    status: colours.from(link.status),
    reachable: link.reachable,
    carries: link.carries,
  };
}

export function fromGraph(graph: wire.GraphView | undefined): GraphView {
  if (!graph?.self) throw new Error('the node answered Graph without a graph');
  return { self: fromServer(graph.self), servers: graph.servers.map(fromServer), links: graph.links.map(fromLink) };
}

function fromCandidate(candidate: wire.RouteCandidate): RouteCandidate {
  return { via: candidate.via, viaName: candidate.viaName, path: candidate.path, class: pathClasses.from(candidate.class), taken: candidate.taken, why: candidate.why };
}

export function fromChatRoute(view: wire.ChatRouteView | undefined): ChatRouteView {
  if (!view) throw new Error('the node answered ChatRoute without a route');
  return {
    chatId: view.chatId,
    known: view.known,
    policy: view.policy === RoutingPolicy.ROUTING_POLICY_UNSPECIFIED ? 'default' : 'corporate',
    servers: view.servers,
    destinations: view.destinations.map((route) => ({
      serverId: route.serverId,
      name: route.name,
      via: route.via === '' ? undefined : route.via,
      path: route.path,
      candidates: route.candidates.map(fromCandidate),
    })),
  };
}

export function fromQueue(queue: wire.DestinationQueue): DestinationQueue {
  return { serverId: queue.serverId, name: queue.name, depth: queue.depth, oldestAgeMs: queue.oldestAgeMs, unconfirmed: queue.unconfirmed };
}

function fromStats(stats: wire.LinkStats): LinkStats {
  // send_state is a string on the wire so that new states need no contract change: shown as sent.
  return { ...stats, sendState: stats.sendState as LinkStats['sendState'] };
}

export function fromLinkCounters(counters: wire.LinkCounters): LinkCounters {
  return { peerId: counters.peerId, name: counters.name, status: colours.from(counters.status), stats: counters.stats && fromStats(counters.stats), queues: counters.queues.map(fromQueue) };
}

export function fromTrustView(trust: wire.TrustView | undefined): TrustView {
  if (!trust) throw new Error('the node answered SetTrust without the trust');
  return {
    server_id: trust.serverId,
    name: trust.name,
    kind: serverKinds.from(trust.kind),
    role: roles.from(trust.role),
    ...(trust.endpoint ? { endpoint: trust.endpoint } : {}),
    status: trustStatuses.from(trust.status),
    allow_trust_search: trust.allowTrustSearch,
    ...(trust.identityKey ? { identity_key: trust.identityKey } : {}),
  };
}

/** An operator's trust as SetTrust carries it: absent fields as the proto's defaults (the config's defaults apply). */
export function toSetTrustRequest(trust: TrustInput): wire.SetTrustRequest {
  return {
    serverId: trust.server_id,
    name: trust.name,
    kind: trust.kind ? serverKinds.to(trust.kind) : wire.ServerKind.SERVER_KIND_UNSPECIFIED,
    endpoint: trust.endpoint ?? '',
    tokenForAccepting: trust.token_for_accepting,
    tokenForConnecting: trust.token_for_connecting,
    status: trust.status ? trustStatuses.to(trust.status) : wire.TrustStatus.TRUST_STATUS_UNSPECIFIED,
    allowTrustSearch: trust.allow_trust_search ?? false,
    identityKey: trust.identity_key ?? '',
  };
}

/**
 * A SetTrust request as the config would write it, for parseTrust: defaults left out so
 * the config's apply, an enum number nobody knows kept as itself so the schema names it.
 */
export function trustDocument(request: wire.SetTrustRequest): Record<string, unknown> {
  const enumValue = (value: number, map: { lookup(value: number): string | undefined }) => (value === 0 ? undefined : map.lookup(value) ?? value);
  const kind = enumValue(request.kind, serverKinds);
  const status = enumValue(request.status, trustStatuses);
  return {
    server_id: request.serverId,
    name: request.name,
    ...(kind !== undefined ? { kind } : {}),
    ...(request.endpoint !== '' ? { endpoint: request.endpoint } : {}),
    token_for_accepting: request.tokenForAccepting,
    token_for_connecting: request.tokenForConnecting,
    ...(status !== undefined ? { status } : {}),
    allow_trust_search: request.allowTrustSearch,
    ...(request.identityKey !== '' ? { identity_key: request.identityKey } : {}),
  };
}
