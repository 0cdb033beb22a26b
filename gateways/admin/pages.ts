import { level, type ChatRouteEntry, type ChatRouteView, type GraphEntry, type GraphView, type Listing, type LinksEntry } from '../../router/index.js';
import * as wire from '../../proto/gen/trellis/v1/admin.js';
import { framed, type Piece } from './paging.js';
import { toCandidate, toDestination, toLink, toLinkCounters, toQueue, toServer } from './views.js';
import type { LinksReport } from './client.js';

/**
 * How each paged answer is cut into pages and joined again (admin.proto, "Paging"): on
 * the server, each entry of a listing as a piece of a wire page; on the client, the pages
 * of one answer joined into its read model. An entry below an item (a link's reachable
 * server, a destination's candidate) goes under that item; when a page starts below it,
 * the page carries the item's fields again and the client appends to the one it has.
 */

type Encoder<T> = { encode(message: T): { finish(): Uint8Array } };
const bytesOf = <T>(type: Encoder<T>, message: T): number => framed(type.encode(message).finish().length);
const stringBytes = (value: string): number => framed(Buffer.byteLength(value));

/** An item of one of the page's lists. */
function item<V, T>(items: (view: V) => T[], value: T, bytes: number): Piece<V> {
  return { bytes, put: (view) => void items(view).push(value) };
}

/** An entry below `header`'s item: under the page's last item if that is it, else under the item again (the page starts inside it). */
function under<V, P>(items: (view: V) => P[], header: P, type: Encoder<P>, same: (a: P, b: P) => boolean, first: boolean, bytes: number, add: (parent: P) => void): Piece<V> {
  return {
    bytes: bytes + (first ? bytesOf(type, header) : 0),
    put(view) {
      const list = items(view);
      const last = list.at(-1);
      if (last && same(last, header)) return add(last);
      list.push(header);
      add(header);
    },
  };
}

const sameLink = (a: { peerId: string }, b: { peerId: string }) => a.peerId === b.peerId;

export function graphPiece(entry: GraphEntry, first: boolean): Piece<wire.GraphView> {
  const links = (view: wire.GraphView) => view.links;
  if (entry.kind === 'server') {
    const server = toServer(entry.server);
    return item((view) => view.servers, server, bytesOf(wire.ServerView, server));
  }
  const link = toLink({ ...entry.link, reachable: [], carries: [] });
  if (entry.kind === 'link') return item(links, link, bytesOf(wire.LinkView, link));
  const { kind, serverId } = entry;
  return under(links, link, wire.LinkView, sameLink, first, stringBytes(serverId), (parent) => void parent[kind].push(serverId));
}

export function chatRoutePiece(entry: ChatRouteEntry, first: boolean): Piece<wire.ChatRouteView> {
  if (entry.kind === 'server') return item((view) => view.servers, entry.serverId, stringBytes(entry.serverId));
  const destinations = (view: wire.ChatRouteView) => view.destinations;
  const destination = toDestination({ ...entry.destination, candidates: [] });
  if (entry.kind === 'destination') return item(destinations, destination, bytesOf(wire.DestinationRoute, destination));
  const candidate = toCandidate(entry.candidate);
  const same = (a: wire.DestinationRoute, b: wire.DestinationRoute) => a.serverId === b.serverId;
  return under(destinations, destination, wire.DestinationRoute, same, first, bytesOf(wire.RouteCandidate, candidate), (parent) => void parent.candidates.push(candidate));
}

/** Links' entries, and the replicas' (gateways/redis: each replica by id, with the peers whose links it holds). */
export type LinksPageEntry = LinksEntry | { kind: 'replica'; replica: wire.ReplicaView } | { kind: 'replica-link'; replica: wire.ReplicaView; peerId: string };

export function replicasListing(replicas: readonly wire.ReplicaView[]): Listing<LinksPageEntry> {
  const byId = new Map(replicas.map((replica) => [replica.replicaId, replica]));
  const header = (replicaId: string): wire.ReplicaView => ({ ...byId.get(replicaId)!, peerIds: [] });
  return level<LinksPageEntry>(byId.keys(), (replicaId) => ({ kind: 'replica', replica: header(replicaId) }), (replicaId) =>
    level(byId.get(replicaId)!.peerIds, (peerId) => ({ kind: 'replica-link', replica: header(replicaId), peerId })),
  );
}

export function linksPiece(entry: LinksPageEntry, first: boolean): Piece<wire.LinksResponse> {
  const links = (view: wire.LinksResponse) => view.links;
  const replicas = (view: wire.LinksResponse) => view.replicas;
  switch (entry.kind) {
    case 'unrouted': {
      const queue = toQueue(entry.queue);
      return item((view) => view.unrouted, queue, bytesOf(wire.DestinationQueue, queue));
    }
    case 'replica':
      return item(replicas, entry.replica, bytesOf(wire.ReplicaView, entry.replica));
    case 'replica-link': {
      const { peerId } = entry;
      const same = (a: wire.ReplicaView, b: wire.ReplicaView) => a.replicaId === b.replicaId;
      return under(replicas, { ...entry.replica, peerIds: [] }, wire.ReplicaView, same, first, stringBytes(peerId), (parent) => void parent.peerIds.push(peerId));
    }
    default: {
      const link = toLinkCounters({ ...entry.link, queues: [] });
      if (entry.kind === 'link') return item(links, link, bytesOf(wire.LinkCounters, link));
      const queue = toQueue(entry.queue);
      return under(links, link, wire.LinkCounters, sameLink, first, bytesOf(wire.DestinationQueue, queue), (parent) => void parent.queues.push(queue));
    }
  }
}

// Client side: pages joined into one read model.

/**
 * Appends a page's list to the same list of the pages before; the page's first item, when
 * it is the one the list ends with (the same key), adds its own lists to it instead.
 * Answers the entries the page brought, counted as the server counts them.
 */
function join<T>(into: T[], page: readonly T[], keyOf?: (item: T) => string, listsOf: (item: T) => unknown[][] = () => []): number {
  let entries = 0;
  page.forEach((next, index) => {
    const last = into.at(-1);
    const lists = listsOf(next);
    entries += lists.reduce((sum, list) => sum + list.length, 0);
    if (index === 0 && last && keyOf && keyOf(last) === keyOf(next)) listsOf(last).forEach((list, at) => list.push(...lists[at]!));
    else {
      into.push(next);
      entries += 1;
    }
  });
  return entries;
}

export const blankGraph = (page: GraphView): GraphView => ({ self: page.self, servers: [], links: [] });
export const joinGraph = (into: GraphView, page: GraphView): number =>
  join(into.servers, page.servers) + join(into.links, page.links, (link) => link.peerId, (link) => [link.reachable, link.carries]);

export const blankChatRoute = (page: ChatRouteView): ChatRouteView => ({ ...page, servers: [], destinations: [] });
export const joinChatRoute = (into: ChatRouteView, page: ChatRouteView): number =>
  join(into.servers, page.servers) + join(into.destinations, page.destinations, (route) => route.serverId, (route) => [route.candidates]);

export const blankLinks = (): LinksReport => ({ links: [], unrouted: [], replicas: [] });
export const joinLinks = (into: LinksReport, page: LinksReport): number =>
  join(into.links, page.links, (link) => link.peerId, (link) => [link.queues]) + join(into.unrouted, page.unrouted) + join(into.replicas, page.replicas, (replica) => replica.replicaId, (replica) => [replica.peerIds]);
