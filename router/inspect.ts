import type { EventStore } from '../store/index.js';
import type { TrustConfig, TrustRole } from './config.js';
import type { LinkStats } from './link.js';
import type { DeliveryCursors } from './queues/delivery-cursors.js';
import { policyName, type PathClass, type RouteCandidate, type Routing, type ServerDirectory, type ServerKind } from './routing/index.js';

/**
 * What operators see of a node (domain.md, "What operators inspect"): the graph as this
 * node knows it, the route of a chat to each of its servers with the reasons, and each
 * link's counters and queues. Read models only; the admin service and the CLI serve them.
 */
export type LinkColour = 'green' | 'purple' | 'red';

export interface ServerView {
  id: string;
  name: string;
  kind: ServerKind | '';
  /** Its upstream's id, as its record says; empty for an RTS or an unknown record. */
  upstream: string;
  /** Chats with members on it, as far as this node holds them. */
  chats: number;
  /** domain.md's colours for a server we hold a trust with; empty for any other. */
  status: LinkColour | '';
}

export interface LinkView {
  peerId: string;
  name: string;
  kind: ServerKind;
  role: TrustRole;
  endpoint: string;
  status: LinkColour;
  /** Servers the peer says are reachable through it. */
  reachable: string[];
  /** Destinations whose route runs over this link now. */
  carries: string[];
}

export interface GraphView {
  self: ServerView;
  servers: ServerView[];
  links: LinkView[];
}

export interface DestinationRoute {
  serverId: string;
  name: string;
  /** The next hop, if the events may travel now. */
  via: string | undefined;
  /** From this node to the destination, when a path is taken. */
  path: string[];
  candidates: RouteCandidate[];
}

export interface ChatRouteView {
  chatId: string;
  known: boolean;
  policy: 'default' | 'corporate';
  servers: string[];
  destinations: DestinationRoute[];
}

export interface DestinationQueue {
  serverId: string;
  name: string;
  /** Events for it that no next hop has acknowledged yet, and the age of the oldest. */
  depth: number;
  oldestAgeMs: number | undefined;
  /**
   * Events for it the destination has not acknowledged itself: `depth` and what a transit
   * took over. What a withdrawn route hands back comes from these (queues/delivery-cursors.ts).
   */
  unconfirmed: number;
}

export interface LinkCounters {
  peerId: string;
  name: string;
  status: LinkColour;
  stats: LinkStats | undefined;
  queues: DestinationQueue[];
}

/** A link's own fields, without its lists: what a page repeats when the link's lists run on from the page before. */
export type LinkHeader = Omit<LinkView, 'reachable' | 'carries'>;
export type LinkCountersHeader = Omit<LinkCounters, 'queues'>;
export type DestinationHeader = Omit<DestinationRoute, 'candidates'>;

/**
 * One answer as a tree of keys, each level sorted ascending (by `<`), read lazily: an
 * entry is only computed when a page holds it. A page walks it from a key path onwards
 * (gateways/admin/paging.ts), so a page token names a key, never a position: entries
 * that come or go meanwhile move no other entry. Levels without entries of their own
 * (an answer's sections) have no `entry`.
 */
export interface Listing<E> {
  readonly keys: readonly string[];
  entry?(key: string): E | Promise<E>;
  below?(key: string): Listing<E> | undefined;
}

export type GraphEntry = { kind: 'server'; server: ServerView } | { kind: 'link'; link: LinkHeader } | { kind: 'reachable' | 'carries'; link: LinkHeader; serverId: string };
export type ChatRouteEntry = { kind: 'server'; serverId: string } | { kind: 'destination'; destination: DestinationHeader } | { kind: 'candidate'; destination: DestinationHeader; candidate: RouteCandidate };
export type LinksEntry = { kind: 'link'; link: LinkCountersHeader } | { kind: 'queue'; link: LinkCountersHeader; queue: DestinationQueue } | { kind: 'unrouted'; queue: DestinationQueue };

/** A level of fixed sections, in the order given: their keys are their positions, so the order holds under `<`. */
export function sections<E>(parts: ReadonlyArray<Listing<E>>): Listing<E> {
  if (parts.length > 10) throw new Error(`sections: ${parts.length} sections, at most 10 (one digit each)`);
  return { keys: parts.map((_, index) => String(index)), below: (key) => parts[Number(key)] };
}

/** Sorted ids, each an entry; `below` a level under each. */
export function level<E>(ids: Iterable<string>, entry: (id: string) => E | Promise<E>, below?: (id: string) => Listing<E>): Listing<E> {
  return { keys: [...ids].sort(), entry, ...(below ? { below } : {}) };
}

/**
 * A candidate's key: its rank as route choice orders candidates (class, then path length,
 * then via), as a string whose `<` is that order. Route choice is asserted to agree.
 */
const CLASS_ORDER: readonly PathClass[] = ['direct', 'enterprise', 'regional', 'transit'];
function candidateKey(candidate: RouteCandidate): string {
  return `${CLASS_ORDER.indexOf(candidate.class)}.${String(candidate.path.length).padStart(2, '0')}.${candidate.via}`;
}

function candidateLevel<E>(candidates: readonly RouteCandidate[], entry: (candidate: RouteCandidate) => E): Listing<E> {
  const byKey = new Map(candidates.map((candidate) => [candidateKey(candidate), candidate]));
  const keys = candidates.map(candidateKey);
  keys.forEach((key, index) => {
    if (index > 0 && !(keys[index - 1]! < key)) throw new Error(`route candidates are not in their key order (${keys[index - 1]} before ${key}): route choice and router/inspect.ts disagree on the ranking`);
  });
  return { keys, entry: (key) => entry(byKey.get(key)!) };
}

export interface InspectDeps {
  self: { id: string; name: string; kind: ServerKind; transit: boolean };
  store: EventStore;
  routing: Routing;
  directory: ServerDirectory;
  delivery: DeliveryCursors;
  trusts(): Iterable<TrustConfig>;
  linkStats(peerId: string): LinkStats | undefined;
  now(): number;
}

export function linkColour(trust: TrustConfig, up: boolean): LinkColour {
  return trust.status !== 'enabled' ? 'purple' : up ? 'green' : 'red';
}

export class NodeInspector {
  constructor(private readonly deps: InspectDeps) {}

  private nameOf(serverId: string): string {
    if (serverId === this.deps.self.id) return this.deps.self.name;
    return this.trust(serverId)?.name ?? this.deps.directory.get(serverId)?.name ?? serverId;
  }

  private trust(serverId: string): TrustConfig | undefined {
    for (const trust of this.deps.trusts()) if (trust.server_id === serverId) return trust;
    return undefined;
  }

  /** The trusts, by peer id: the order of every list of links. */
  private trustsById(): Map<string, TrustConfig> {
    return new Map([...this.deps.trusts()].map((trust) => [trust.server_id, trust]));
  }

  private colourOf(serverId: string): LinkColour | '' {
    const trust = this.trust(serverId);
    return trust ? linkColour(trust, this.deps.linkStats(serverId) !== undefined) : '';
  }

  private serverView(id: string, chats: ReadonlyMap<string, number>): ServerView {
    const entry = this.deps.directory.get(id);
    return { id, name: this.nameOf(id), kind: entry?.kind ?? this.trust(id)?.kind ?? '', upstream: entry?.upstream ?? '', chats: chats.get(id) ?? 0, status: this.colourOf(id) };
  }

  private linkHeader(trust: TrustConfig): LinkHeader {
    const { server_id: peerId, name, kind, role } = trust;
    return { peerId, name, kind, role, endpoint: trust.endpoint ?? '', status: linkColour(trust, this.deps.linkStats(peerId) !== undefined) };
  }

  private reachableVia(peerId: string): string[] {
    return [...this.deps.routing.reach.reachOf(peerId).keys()].sort();
  }

  private carriedBy(peerId: string): string[] {
    return this.deps.routing.destinationsVia(peerId).sort();
  }

  /** The graph's servers: this node, the directory, the trusts, and every server a chat here lives on. */
  private async graphServers(): Promise<{ ids: string[]; chats: Map<string, number> }> {
    const chats = new Map((await this.deps.store.chatCounts()).map(({ serverId, chats }) => [serverId, chats]));
    const ids = new Set([this.deps.self.id, ...this.deps.directory.list().map((entry) => entry.id), ...this.trustsById().keys(), ...chats.keys()]);
    return { ids: [...ids].sort(), chats };
  }

  /** The whole graph, for callers in this process; the admin service pages graphListing(). */
  async graph(): Promise<GraphView> {
    const { ids, chats } = await this.graphServers();
    const servers = ids.map((id) => this.serverView(id, chats));
    const links = [...this.trustsById()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([peerId, trust]) => ({ ...this.linkHeader(trust), reachable: this.reachableVia(peerId), carries: this.carriedBy(peerId) }));
    return { self: servers.find((server) => server.id === this.deps.self.id)!, servers, links };
  }

  /** The graph as a listing: servers by id, then links by peer id, each with what it reaches and then what it carries. */
  async graphListing(): Promise<{ self: ServerView; listing: Listing<GraphEntry> }> {
    const { ids, chats } = await this.graphServers();
    const trusts = this.trustsById();
    const header = (peerId: string) => this.linkHeader(trusts.get(peerId)!);
    const ofLink = (kind: 'reachable' | 'carries', ids: string[], link: LinkHeader) => level<GraphEntry>(ids, (serverId) => ({ kind, link, serverId }));
    const listing = sections<GraphEntry>([
      level(ids, (id) => ({ kind: 'server', server: this.serverView(id, chats) })),
      level(trusts.keys(), (peerId) => ({ kind: 'link', link: header(peerId) }), (peerId) =>
        sections([ofLink('reachable', this.reachableVia(peerId), header(peerId)), ofLink('carries', this.carriedBy(peerId), header(peerId))]),
      ),
    ]);
    return { self: this.serverView(this.deps.self.id, chats), listing };
  }

  private destination(serverId: string, policy: number): DestinationRoute {
    const choice = this.deps.routing.explain(serverId, policy);
    const taken = choice.candidates.find((candidate) => candidate.taken);
    return { serverId, name: this.nameOf(serverId), via: choice.via, path: taken ? [this.deps.self.id, ...taken.path] : [], candidates: choice.candidates };
  }

  async chatRoute(chatId: string): Promise<ChatRouteView> {
    const servers = await this.deps.store.chatServers(chatId);
    const policy = await this.deps.store.chatPolicy(chatId);
    const destinations = servers.filter((serverId) => serverId !== this.deps.self.id).map((serverId) => this.destination(serverId, policy));
    return { chatId, known: servers.length > 0, policy: policyName(policy), servers, destinations };
  }

  /** A chat's route as a listing: its servers, then each destination by id with its candidates, most trusted first. */
  async chatRouteListing(chatId: string): Promise<{ head: Omit<ChatRouteView, 'servers' | 'destinations'>; listing: Listing<ChatRouteEntry> }> {
    const servers = await this.deps.store.chatServers(chatId);
    const policy = await this.deps.store.chatPolicy(chatId);
    const routes = new Map<string, DestinationRoute>();
    const route = (serverId: string) => routes.get(serverId) ?? routes.set(serverId, this.destination(serverId, policy)).get(serverId)!;
    const header = (serverId: string): DestinationHeader => {
      const { candidates: _, ...rest } = route(serverId);
      return rest;
    };
    const listing = sections<ChatRouteEntry>([
      level(servers, (serverId) => ({ kind: 'server', serverId })),
      level<ChatRouteEntry>(servers.filter((serverId) => serverId !== this.deps.self.id), (serverId) => ({ kind: 'destination', destination: header(serverId) }), (serverId) =>
        candidateLevel<ChatRouteEntry>(route(serverId).candidates, (candidate) => ({ kind: 'candidate', destination: header(serverId), candidate })),
      ),
    ]);
    return { head: { chatId, known: servers.length > 0, policy: policyName(policy) }, listing };
  }

  private countersHeader(trust: TrustConfig): LinkCountersHeader {
    const stats = this.deps.linkStats(trust.server_id);
    return { peerId: trust.server_id, name: trust.name, status: linkColour(trust, stats !== undefined), stats: stats && { ...stats } };
  }

  async linkCounters(): Promise<LinkCounters[]> {
    const out: LinkCounters[] = [];
    for (const [peerId, trust] of [...this.trustsById()].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const queues: DestinationQueue[] = [];
      for (const serverId of this.carriedBy(peerId)) queues.push(await this.queueOf(serverId));
      out.push({ ...this.countersHeader(trust), queues });
    }
    return out;
  }

  /**
   * What waits for a destination, of what this node owes it (its own events, and on a
   * transit what it was asked to pass on): after its handed cursor (no hop took them), and
   * after its delivered one (it has not acknowledged them itself).
   */
  async queueOf(serverId: string): Promise<DestinationQueue> {
    const { id, transit } = this.deps.self;
    const { delivery, store } = this.deps;
    const { events, oldestHlcMs } = await store.undelivered(serverId, delivery.handedTo(serverId), id, transit);
    const unconfirmed = delivery.deliveredTo(serverId) === delivery.handedTo(serverId) ? events : (await store.undelivered(serverId, delivery.deliveredTo(serverId), id, transit)).events;
    return { serverId, name: this.nameOf(serverId), depth: events, oldestAgeMs: oldestHlcMs === undefined ? undefined : Math.max(0, this.deps.now() - oldestHlcMs), unconfirmed };
  }

  private async unroutedIds(): Promise<string[]> {
    const ids = (await this.deps.store.chatCounts()).map(({ serverId }) => serverId);
    return ids.filter((serverId) => serverId !== this.deps.self.id && !this.deps.routing.nextHop(serverId, 0)).sort();
  }

  /** Every destination with chats here and no route now: what waits for a path. */
  async unrouted(): Promise<DestinationQueue[]> {
    const out: DestinationQueue[] = [];
    for (const serverId of await this.unroutedIds()) out.push(await this.queueOf(serverId));
    return out;
  }

  /** Links and what waits, as listings: each link by peer id with its queues by destination; the destinations without a path. */
  async linksListing(): Promise<{ links: Listing<LinksEntry>; unrouted: Listing<LinksEntry> }> {
    const trusts = this.trustsById();
    const header = (peerId: string) => this.countersHeader(trusts.get(peerId)!);
    const links = level<LinksEntry>(trusts.keys(), (peerId) => ({ kind: 'link', link: header(peerId) }), (peerId) => {
      const link = header(peerId);
      return level(this.carriedBy(peerId), async (serverId) => ({ kind: 'queue', link, queue: await this.queueOf(serverId) }));
    });
    const unrouted = level<LinksEntry>(await this.unroutedIds(), async (serverId) => ({ kind: 'unrouted', queue: await this.queueOf(serverId) }));
    return { links, unrouted };
  }
}
