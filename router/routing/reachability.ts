import type { ReachPath } from '../../proto/gen/trellis/v1/link.js';

/**
 * What each neighbour says is reachable through it (architecture.md, "Reachability"):
 * path announcements, the neighbour first and the reachable server last. A path that
 * already holds this node is a loop and is refused, not followed; so is a malformed one.
 * An announcement replaces the neighbour's whole set; a link that goes down takes its set
 * with it.
 */
export const PATHS_PER_FRAME_MAX = 100_000;
export const PATH_SERVERS_MAX = 16;
const SERVER_ID_CHARS_MAX = 64;

export interface ReachOutcome {
  /** Paths kept. */
  kept: number;
  loops: number;
  malformed: number;
  /** Whether what is reachable through the neighbour changed. */
  changed: boolean;
}

export class ReachabilityTable {
  private readonly byNeighbour = new Map<string, Map<string, readonly string[]>>();
  private static readonly none: ReadonlyMap<string, readonly string[]> = new Map();

  constructor(private readonly selfId: string) {}

  accept(neighbourId: string, paths: readonly ReachPath[]): ReachOutcome {
    const outcome: ReachOutcome = { kept: 0, loops: 0, malformed: 0, changed: false };
    const reach = new Map<string, readonly string[]>();
    for (const { servers } of paths.slice(0, PATHS_PER_FRAME_MAX)) {
      if (!wellFormed(servers, neighbourId)) outcome.malformed += 1;
      else if (servers.includes(this.selfId)) outcome.loops += 1;
      else if (servers.length > 1) {
        const destination = servers.at(-1)!;
        const known = reach.get(destination);
        if (!known || servers.length < known.length) reach.set(destination, [...servers]);
      }
    }
    outcome.malformed += Math.max(0, paths.length - PATHS_PER_FRAME_MAX);
    outcome.kept = reach.size;
    outcome.changed = !sameReach(this.byNeighbour.get(neighbourId), reach);
    this.byNeighbour.set(neighbourId, reach);
    return outcome;
  }

  /** Forgets a neighbour's announcement (its link went down). */
  forget(neighbourId: string): void {
    this.byNeighbour.delete(neighbourId);
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

function sameReach(before: ReadonlyMap<string, readonly string[]> | undefined, after: ReadonlyMap<string, readonly string[]>): boolean {
  if ((before?.size ?? 0) !== after.size) return false;
  for (const [destination, path] of after) {
    const old = before?.get(destination);
    if (!old || old.length !== path.length || old.some((id, index) => id !== path[index])) return false;
  }
  return true;
}
