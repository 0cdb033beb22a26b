import { RoutingPolicy } from '../../proto/gen/trellis/v1/event.js';

/**
 * Route choice, a pure function of what a node knows (architecture.md, "Routing"): for a
 * destination server, the most trusted live path. A direct trust first, then an
 * enterprise server (ETS) that has the destination behind it, then a regional server
 * (RTS), then any other transit; shorter paths and then lower ids break ties, so every
 * node decides the same way from the same facts. A corporate chat takes only the direct
 * trust and waits while it is down. The same function answers "explain".
 */
export type ServerKind = 'CTS' | 'ETS' | 'RTS' | 'TTS';
export type NeighbourState = 'up' | 'down' | 'blocked';
export type PathClass = 'direct' | 'enterprise' | 'regional' | 'transit';

export interface Neighbour {
  id: string;
  name: string;
  kind: ServerKind;
  state: NeighbourState;
  /** Paths to the servers reachable through this neighbour, its own id first (empty while its link is down). */
  reach: ReadonlyMap<string, readonly string[]>;
}

export interface RouteCandidate {
  via: string;
  viaName: string;
  /** The servers the events cross, from the next hop to the destination. */
  path: readonly string[];
  class: PathClass;
  taken: boolean;
  why: string;
}

export interface RouteChoice {
  destination: string;
  policy: 'default' | 'corporate';
  /** The next hop, if a path may be used now. */
  via: string | undefined;
  candidates: RouteCandidate[];
}

const CLASS_RANK: Record<PathClass, number> = { direct: 0, enterprise: 1, regional: 2, transit: 3 };
const CLASS_OF_KIND: Record<ServerKind, PathClass> = { ETS: 'enterprise', RTS: 'regional', TTS: 'transit', CTS: 'transit' };

/** A policy value from a chat-created event; an unknown one (a newer server's) is held to the strictest known. */
export function policyName(policy: number): RouteChoice['policy'] {
  return policy === RoutingPolicy.ROUTING_POLICY_UNSPECIFIED ? 'default' : 'corporate';
}

function classOf(neighbour: Neighbour, destination: string): PathClass {
  return neighbour.id === destination ? 'direct' : CLASS_OF_KIND[neighbour.kind];
}

function pathVia(neighbour: Neighbour, destination: string): readonly string[] | undefined {
  if (neighbour.id === destination) return [destination];
  return neighbour.reach.get(destination);
}

function compare(a: RouteCandidate, b: RouteCandidate): number {
  return CLASS_RANK[a.class] - CLASS_RANK[b.class] || a.path.length - b.path.length || (a.via < b.via ? -1 : a.via > b.via ? 1 : 0);
}

export function chooseRoute(destination: string, policy: number, neighbours: Iterable<Neighbour>): RouteChoice {
  const policyKind = policyName(policy);
  const candidates: RouteCandidate[] = [];
  for (const neighbour of neighbours) {
    const path = pathVia(neighbour, destination);
    if (!path) continue;
    const pathClass = classOf(neighbour, destination);
    const why =
      neighbour.state === 'blocked' ? 'the trust is blocked'
      : neighbour.state === 'down' ? 'the link is down'
      : policyKind === 'corporate' && pathClass !== 'direct' ? 'the chat is corporate: it never leaves its contour'
      : '';
    candidates.push({ via: neighbour.id, viaName: neighbour.name, path, class: pathClass, taken: false, why });
  }
  candidates.sort(compare);
  const chosen = candidates.find((candidate) => candidate.why === '');
  for (const candidate of candidates) {
    if (candidate === chosen) {
      candidate.taken = true;
      candidate.why = candidate.class === 'direct' ? 'direct trust, link up' : `the most trusted live path (${candidate.class})`;
    } else if (candidate.why === '') candidate.why = `a more trusted path is up (via ${chosen!.viaName})`;
  }
  return { destination, policy: policyKind, via: chosen?.via, candidates };
}
