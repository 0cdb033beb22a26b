import { RoutingPolicy } from '../../proto/gen/trellis/v1/event.js';
import type { Reachability, ReachPath } from '../../proto/gen/trellis/v1/link.js';
import type { TrustConfig } from '../config.js';
import { judgePath, type Vouchable } from './authority.js';
import { ReachabilityTable, type PathJudge, type PathRefusals, type ReachOutcome } from './reachability.js';
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
  trustOf(serverId: string): TrustConfig | undefined;
  isUp(peerId: string): boolean;
  /** What the directory believes of a server (its kind and attested upstream), if anything. */
  believed(serverId: string): Vouchable | undefined;
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
  /** Destinations whose announced path may have changed since neighbours were last told. */
  private unannounced = new Set<string>();

  constructor(private readonly deps: RoutingDeps) {
    this.reach = new ReachabilityTable(deps.selfId);
  }

  /** A neighbour's paths are judged by what its trust makes it (a CTS is no transit) and by what the directory believes. */
  private readonly judge: PathJudge = (neighbourId, path) => {
    return judgePath(this.deps.trustOf(neighbourId)?.kind ?? 'CTS', path, this.deps.believed);
  };

  /** Takes a neighbour's announcement: what it may announce is kept, the rest refused (see the outcome). */
  accept(neighbourId: string, announcement: Reachability): ReachOutcome {
    const outcome = this.reach.accept(neighbourId, announcement, this.judge);
    if (outcome.changed.length > 0) this.pathsChanged(outcome.changed);
    return outcome;
  }

  /** The directory changed: every kept path is judged again. Answers the refusals per neighbour. */
  rejudge(): { changed: string[]; refused: Map<string, PathRefusals> } {
    const result = this.reach.rejudge(this.judge);
    if (result.changed.length > 0) this.pathsChanged(result.changed);
    return result;
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

  isTransit(peerId: string): boolean {
    const kind = this.deps.trustOf(peerId)?.kind;
    return kind !== undefined && kind !== 'CTS';
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
    for (const { destination } of changes) this.unannounced.add(destination);
    return changes;
  }

  /** A neighbour's paths to these servers changed (or went): what we announce through it may change too. */
  pathsChanged(destinations: Iterable<string>): void {
    for (const destination of destinations) this.unannounced.add(destination);
  }

  /** The destinations to tell neighbours about since the last call (cleared by it). */
  takeUnannounced(): Set<string> {
    const taken = this.unannounced;
    this.unannounced = new Set();
    return taken;
  }

  /**
   * What to tell a neighbour is reachable through this node, whole (the first frame of a
   * link): itself, and (on a transit) the path it uses to every other destination, except
   * paths through that neighbour (it would refuse them as loops anyway).
   */
  announcementFor(peerId: string): Reachability {
    const paths: ReachPath[] = [{ servers: [this.deps.selfId] }];
    if (this.deps.transit) {
      for (const destination of this.hops.keys()) {
        const path = this.pathFor(destination, peerId);
        if (path) paths.push({ servers: path });
      }
    }
    return { paths, withdrawn: [], update: false };
  }

  /** What changed for a neighbour among `destinations`: new paths, and what it no longer reaches through us. */
  updateFor(peerId: string, destinations: ReadonlySet<string>): Reachability | undefined {
    if (!this.deps.transit || destinations.size === 0) return undefined;
    const update: Reachability = { paths: [], withdrawn: [], update: true };
    for (const destination of destinations) {
      if (destination === this.deps.selfId || destination === peerId) continue;
      const path = this.pathFor(destination, peerId);
      if (path) update.paths.push({ servers: path });
      else update.withdrawn.push(destination);
    }
    return update.paths.length + update.withdrawn.length > 0 ? update : undefined;
  }

  /**
   * Whether we route to `destination` and the route runs back through `peerId` (or is it):
   * a path we never announce to that peer, so it may not hand the destination over to us.
   */
  runsThrough(destination: string, peerId: string): boolean {
    return this.hops.has(destination) && this.pathBeyond(destination, peerId) === undefined;
  }

  /** Our path to a destination as `peerId` may hear it: none if it runs through that peer (split horizon). */
  private pathFor(destination: string, peerId: string): string[] | undefined {
    const beyond = this.pathBeyond(destination, peerId);
    return beyond ? [this.deps.selfId, ...beyond] : undefined;
  }

  /** The path from our next hop on, unless it runs through `peerId` (built only where it is announced). */
  private pathBeyond(destination: string, peerId: string): readonly string[] | undefined {
    const via = this.hops.get(destination);
    if (!via || via === peerId || destination === peerId) return undefined;
    if (via === destination) return [destination];
    const path = this.reach.reachOf(via).get(destination);
    return path && !path.includes(peerId) ? path : undefined;
  }
}
