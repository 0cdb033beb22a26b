import type { EventStore } from '../store/index.js';
import type { TrustConfig, TrustRole } from './config.js';
import type { LinkStats } from './link.js';
import type { DeliveryCursors } from './queues/delivery-cursors.js';
import { policyName, type RouteCandidate, type Routing, type ServerDirectory, type ServerKind } from './routing/index.js';

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
    for (const trust of this.deps.trusts()) if (trust.server_id === serverId) return trust.name;
    return this.deps.directory.get(serverId)?.name ?? serverId;
  }

  private colourOf(serverId: string): LinkColour | '' {
    for (const trust of this.deps.trusts()) if (trust.server_id === serverId) return linkColour(trust, this.deps.linkStats(serverId) !== undefined);
    return '';
  }

  async graph(): Promise<GraphView> {
    const chats = new Map((await this.deps.store.chatCounts()).map(({ serverId, chats }) => [serverId, chats]));
    const ids = new Set([this.deps.self.id, ...this.deps.directory.list().map((entry) => entry.id), ...[...this.deps.trusts()].map((trust) => trust.server_id), ...chats.keys()]);
    const servers: ServerView[] = [...ids].sort().map((id) => {
      const entry = this.deps.directory.get(id);
      const trust = [...this.deps.trusts()].find((t) => t.server_id === id);
      return { id, name: this.nameOf(id), kind: entry?.kind ?? trust?.kind ?? '', upstream: entry?.upstream ?? '', chats: chats.get(id) ?? 0, status: this.colourOf(id) };
    });
    const links: LinkView[] = [...this.deps.trusts()].map((trust) => ({
      peerId: trust.server_id,
      name: trust.name,
      kind: trust.kind,
      role: trust.role,
      endpoint: trust.endpoint ?? '',
      status: linkColour(trust, this.deps.linkStats(trust.server_id) !== undefined),
      reachable: [...this.deps.routing.reach.reachOf(trust.server_id).keys()].sort(),
      carries: this.deps.routing.destinationsVia(trust.server_id).sort(),
    }));
    return { self: servers.find((server) => server.id === this.deps.self.id)!, servers, links };
  }

  async chatRoute(chatId: string): Promise<ChatRouteView> {
    const servers = await this.deps.store.chatServers(chatId);
    const policy = await this.deps.store.chatPolicy(chatId);
    const destinations = servers
      .filter((serverId) => serverId !== this.deps.self.id)
      .map((serverId) => {
        const choice = this.deps.routing.explain(serverId, policy);
        const taken = choice.candidates.find((candidate) => candidate.taken);
        return { serverId, name: this.nameOf(serverId), via: choice.via, path: taken ? [this.deps.self.id, ...taken.path] : [], candidates: choice.candidates };
      });
    return { chatId, known: servers.length > 0, policy: policyName(policy), servers, destinations };
  }

  async linkCounters(): Promise<LinkCounters[]> {
    const out: LinkCounters[] = [];
    for (const trust of this.deps.trusts()) {
      const stats = this.deps.linkStats(trust.server_id);
      const queues: DestinationQueue[] = [];
      for (const serverId of this.deps.routing.destinationsVia(trust.server_id).sort()) queues.push(await this.queueOf(serverId));
      out.push({ peerId: trust.server_id, name: trust.name, status: linkColour(trust, stats !== undefined), stats: stats && { ...stats }, queues });
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

  /** Every destination with chats here and no route now: what waits for a path. */
  async unrouted(): Promise<DestinationQueue[]> {
    const out: DestinationQueue[] = [];
    for (const { serverId } of await this.deps.store.chatCounts()) {
      if (serverId === this.deps.self.id || this.deps.routing.nextHop(serverId, 0)) continue;
      out.push(await this.queueOf(serverId));
    }
    return out;
  }
}
