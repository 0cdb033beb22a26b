import { RoutingPolicy } from '../../proto/gen/trellis/v1/event.js';
import type { ReachPath } from '../../proto/gen/trellis/v1/link.js';
import type { TrustConfig } from '../config.js';
import { ReachabilityTable } from './reachability.js';
import { chooseRoute, policyName, type Neighbour, type RouteChoice } from './route-choice.js';

export interface RouteChange {
  destination: string;
  from: string | undefined;
  to: string | undefined;
}

export interface RoutingDeps {
  selfId: string;
  /** Transit servers (ETS, RTS, TTS) pass on what is reachable through them; a CTS announces only itself. */
  transit: boolean;
  trusts(): Iterable<TrustConfig>;
  isUp(peerId: string): boolean;
}

/**
 * This node's view of the federation's paths: its neighbours (trusts and their link
 * state), what each announced, and the next hop chosen for every destination it knows.
 * Default-policy routes are kept current on every change; a corporate chat's route is
 * its direct trust, when up.
 */
export class Routing {
  readonly reach: ReachabilityTable;
  private hops = new Map<string, string>();
  private changes = 0;

  constructor(private readonly deps: RoutingDeps) {
    this.reach = new ReachabilityTable(deps.selfId);
  }

  /** Counts route recomputations that changed something: caches of next hops compare it. */
  get version(): number {
    return this.changes;
  }

  neighbours(): Neighbour[] {
    return [...this.deps.trusts()].map((trust) => {
      const state = trust.status !== 'enabled' ? 'blocked' : this.deps.isUp(trust.server_id) ? 'up' : 'down';
      return { id: trust.server_id, name: trust.name, kind: trust.kind, state, reach: state === 'up' ? this.reach.reachOf(trust.server_id) : new Map() };
    });
  }

  explain(destination: string, policy: number): RouteChoice {
    return chooseRoute(destination, policy, this.neighbours());
  }

  nextHop(destination: string, policy: number): string | undefined {
    if (policyName(policy) === 'default') return this.hops.get(destination);
    return this.isDirectUp(destination) ? destination : undefined;
  }

  /** The destinations whose default route runs through `peerId`. */
  destinationsVia(peerId: string): string[] {
    return [...this.hops].filter(([, via]) => via === peerId).map(([destination]) => destination);
  }

  private isDirectUp(serverId: string): boolean {
    for (const trust of this.deps.trusts()) if (trust.server_id === serverId) return trust.status === 'enabled' && this.deps.isUp(serverId);
    return false;
  }

  /**
   * Chooses every default route again; returns the destinations whose next hop moved.
   * Each destination is judged among the neighbours that reach it, found through an index
   * built once: an RTS with a thousand links would otherwise weigh every link for every
   * destination on every link change.
   */
  recompute(): RouteChange[] {
    const reaching = new Map<string, Neighbour[]>();
    const add = (destination: string, neighbour: Neighbour) => {
      const list = reaching.get(destination);
      if (list) list.push(neighbour);
      else reaching.set(destination, [neighbour]);
    };
    for (const neighbour of this.neighbours()) {
      add(neighbour.id, neighbour);
      for (const destination of neighbour.reach.keys()) if (destination !== neighbour.id) add(destination, neighbour);
    }
    const hops = new Map<string, string>();
    for (const [destination, neighbours] of reaching) {
      if (destination === this.deps.selfId) continue;
      const via = chooseRoute(destination, RoutingPolicy.ROUTING_POLICY_UNSPECIFIED, neighbours).via;
      if (via) hops.set(destination, via);
    }
    const changes: RouteChange[] = [];
    for (const destination of new Set([...this.hops.keys(), ...hops.keys()])) {
      const [from, to] = [this.hops.get(destination), hops.get(destination)];
      if (from !== to) changes.push({ destination, from, to });
    }
    this.hops = hops;
    if (changes.length > 0) this.changes += 1;
    return changes;
  }

  /**
   * What to tell a neighbour is reachable through this node: itself, and (on a transit)
   * the path it uses to every other destination, except paths through that neighbour
   * (it would refuse them as loops anyway).
   */
  announcementFor(peerId: string): ReachPath[] {
    const paths: ReachPath[] = [{ servers: [this.deps.selfId] }];
    if (!this.deps.transit) return paths;
    for (const [destination, via] of this.hops) {
      if (via === peerId || destination === peerId) continue;
      const path = via === destination ? [destination] : this.reach.reachOf(via).get(destination);
      if (path && !path.includes(peerId)) paths.push({ servers: [this.deps.selfId, ...path] });
    }
    return paths;
  }
}
