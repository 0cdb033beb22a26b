import type { Reachability } from '../../proto/gen/trellis/v1/link.js';

/**
 * What each neighbour says is reachable through it (architecture.md, "Reachability"):
 * path announcements, the neighbour first and the reachable server last. A path that
 * already holds this node is a loop and is refused, not followed; so is a malformed one.
 * A whole announcement replaces the neighbour's set, an update changes entries of it; a
 * link that goes down takes its set with it.
 */
export const PATHS_PER_FRAME_MAX = 100_000;
export const PATH_SERVERS_MAX = 16;
const SERVER_ID_CHARS_MAX = 64;

export interface ReachOutcome {
  /** Paths kept from this announcement. */
  kept: number;
  loops: number;
  malformed: number;
  /** The servers whose path through the neighbour changed, appeared or went. */
  changed: string[];
}

export class ReachabilityTable {
  private readonly byNeighbour = new Map<string, Map<string, readonly string[]>>();
  private static readonly none: ReadonlyMap<string, readonly string[]> = new Map();

  constructor(private readonly selfId: string) {}

  accept(neighbourId: string, announcement: Reachability): ReachOutcome {
    const { paths, withdrawn, update } = announcement;
    const outcome: ReachOutcome = { kept: 0, loops: 0, malformed: 0, changed: [] };
    const before = this.byNeighbour.get(neighbourId) ?? new Map<string, readonly string[]>();
    const offered = new Map<string, readonly string[]>();
    for (const { servers } of paths.slice(0, PATHS_PER_FRAME_MAX)) {
      if (!wellFormed(servers, neighbourId)) outcome.malformed += 1;
      else if (servers.includes(this.selfId)) outcome.loops += 1;
      else if (servers.length > 1) {
        const destination = servers.at(-1)!;
        const known = offered.get(destination);
        if (!known || servers.length < known.length) offered.set(destination, [...servers]);
      }
    }
    outcome.malformed += Math.max(0, paths.length - PATHS_PER_FRAME_MAX);
    outcome.kept = offered.size;
    const after = update ? new Map(before) : offered;
    if (update) {
      for (const destination of withdrawn.slice(0, PATHS_PER_FRAME_MAX)) after.delete(destination);
      for (const [destination, path] of offered) after.set(destination, path);
    }
    for (const destination of new Set([...before.keys(), ...after.keys()])) {
      if (!samePath(before.get(destination), after.get(destination))) outcome.changed.push(destination);
    }
    this.byNeighbour.set(neighbourId, after);
    return outcome;
  }

  /** Forgets a neighbour's announcement (its link went down); answers the servers it had offered. */
  forget(neighbourId: string): string[] {
    const reach = this.byNeighbour.get(neighbourId);
    this.byNeighbour.delete(neighbourId);
    return [...(reach?.keys() ?? [])];
  }

  reachOf(neighbourId: string): ReadonlyMap<string, readonly string[]> {
    return this.byNeighbour.get(neighbourId) ?? ReachabilityTable.none;
  }
}

function wellFormed(servers: readonly string[], neighbourId: string): boolean {
  if (servers.length === 0 || servers.length > PATH_SERVERS_MAX || servers[0] !== neighbourId) return false;
  if (!servers.every((id) => id.length > 0 && id.length <= SERVER_ID_CHARS_MAX)) return false;
  return new Set(servers).size === servers.length;
}

function samePath(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  if (!a || !b) return a === b;
  return a.length === b.length && a.every((id, index) => id === b[index]);
}
