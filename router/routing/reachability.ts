import type { Reachability } from '../../proto/gen/trellis/v1/link.js';
import type { PathVerdict } from './authority.js';

/**
 * What each neighbour says is reachable through it (architecture.md, "Reachability"):
 * path announcements, the neighbour first and the reachable server last. A path that
 * already holds this node is a loop and is refused, not followed; so is a malformed one,
 * and one the neighbour has no authority to announce (authority.ts, judged by the node's
 * `PathJudge`). A path naming a server no record vouches for yet is kept aside, unused,
 * and judged again when the directory changes (`rejudge`). A whole announcement replaces
 * the neighbour's set, an update changes entries of it; a link that goes down takes its
 * set with it. The tables are bounded per neighbour and in all.
 */
export const PATHS_PER_FRAME_MAX = 100_000;
export const PATH_SERVERS_MAX = 16;
/** Paths kept of one neighbour, and of all neighbours together: a flood of paths fills no memory past these. */
export const PATHS_PER_NEIGHBOUR_MAX = 50_000;
export const PATHS_MAX = 500_000;
/** Paths of one neighbour kept unused while a server on them is not vouched for yet. */
export const UNVOUCHED_PATHS_PER_NEIGHBOUR_MAX = 1_000;
const SERVER_ID_CHARS_MAX = 64;

/** Judges a well-formed, loop-free path a neighbour announced (the node's view of who may announce what). */
export type PathJudge = (neighbourId: string, path: readonly string[]) => PathVerdict;

/** Refused paths by code, with how many and why the first was. */
export type PathRefusals = Map<string, { count: number; why: string }>;

export interface ReachOutcome {
  /** Paths kept from this announcement (usable, or waiting for a record). */
  kept: number;
  /** Refused paths by code: `loop`, `malformed`, `table-full`, and the judge's codes. */
  refused: PathRefusals;
  /** The servers whose usable path through the neighbour changed, appeared or went. */
  changed: string[];
}

interface Offered {
  path: readonly string[];
  usable: boolean;
}

export class ReachabilityTable {
  private readonly offered = new Map<string, Map<string, Offered>>();
  private readonly usable = new Map<string, Map<string, readonly string[]>>();
  private total = 0;
  private static readonly none: ReadonlyMap<string, readonly string[]> = new Map();

  constructor(private readonly selfId: string) {}

  accept(neighbourId: string, announcement: Reachability, judge: PathJudge): ReachOutcome {
    const { paths, withdrawn, update } = announcement;
    const refused: PathRefusals = new Map();
    const offered = new Map<string, Offered>();
    for (const { servers } of paths.slice(0, PATHS_PER_FRAME_MAX)) {
      if (!wellFormed(servers, neighbourId)) tally(refused, 'malformed', 'a path that does not start at the neighbour, repeats a server, or is too long');
      else if (servers.includes(this.selfId)) tally(refused, 'loop', 'a path through this node');
      else if (servers.length > 1) {
        const verdict = judge(neighbourId, servers);
        if (!verdict.ok && verdict.code !== 'unknown-server') {
          tally(refused, verdict.code, verdict.why);
          continue;
        }
        const destination = servers.at(-1)!;
        const known = offered.get(destination);
        // A usable path beats one still waiting for a record; then the shorter wins.
        if (!known || (verdict.ok && !known.usable) || (verdict.ok === known.usable && servers.length < known.path.length)) offered.set(destination, { path: [...servers], usable: verdict.ok });
      }
    }
    if (paths.length > PATHS_PER_FRAME_MAX) tally(refused, 'malformed', `over ${PATHS_PER_FRAME_MAX} paths in one announcement`, paths.length - PATHS_PER_FRAME_MAX);
    const before = this.offered.get(neighbourId) ?? new Map<string, Offered>();
    const after = update ? new Map(before) : new Map<string, Offered>();
    if (update) for (const destination of withdrawn.slice(0, PATHS_PER_FRAME_MAX)) after.delete(destination);
    const kept = this.within(neighbourId, before, after, offered, refused);
    return { kept, refused, changed: this.replace(neighbourId, after) };
  }

  /** Adds the offered paths to `after` as far as the bounds allow; answers how many were kept. */
  private within(neighbourId: string, before: ReadonlyMap<string, Offered>, after: Map<string, Offered>, offered: ReadonlyMap<string, Offered>, refused: PathRefusals): number {
    let unvouched = [...after.values()].filter((entry) => !entry.usable).length;
    let kept = 0;
    for (const [destination, entry] of offered) {
      const replacing = after.get(destination);
      const othersTotal = this.total - before.size;
      const full = !replacing && (after.size >= PATHS_PER_NEIGHBOUR_MAX || othersTotal + after.size >= PATHS_MAX);
      const tooManyUnvouched = !entry.usable && (!replacing || replacing.usable) && unvouched >= UNVOUCHED_PATHS_PER_NEIGHBOUR_MAX;
      if (full || tooManyUnvouched) {
        tally(refused, 'table-full', full ? `the neighbour's table holds ${after.size} paths (at most ${PATHS_PER_NEIGHBOUR_MAX}; ${PATHS_MAX} in all)` : `${UNVOUCHED_PATHS_PER_NEIGHBOUR_MAX} paths already wait for a record`);
        continue;
      }
      if (!entry.usable && (!replacing || replacing.usable)) unvouched += 1;
      if (entry.usable && replacing && !replacing.usable) unvouched -= 1;
      after.set(destination, entry);
      kept += 1;
    }
    return kept;
  }

  /** Sets a neighbour's offered paths; answers the destinations whose usable path changed. */
  private replace(neighbourId: string, after: Map<string, Offered>): string[] {
    this.total += after.size - (this.offered.get(neighbourId)?.size ?? 0);
    const usableBefore = this.usable.get(neighbourId) ?? new Map<string, readonly string[]>();
    const usableAfter = new Map<string, readonly string[]>();
    for (const [destination, entry] of after) if (entry.usable) usableAfter.set(destination, entry.path);
    this.offered.set(neighbourId, after);
    this.usable.set(neighbourId, usableAfter);
    const changed: string[] = [];
    for (const destination of new Set([...usableBefore.keys(), ...usableAfter.keys()])) {
      if (!samePath(usableBefore.get(destination), usableAfter.get(destination))) changed.push(destination);
    }
    return changed;
  }

  /**
   * Judges every kept path again (the directory changed: a record may now vouch for a
   * waiting path, or a belief a path stood on may be gone). Answers the destinations whose
   * usable path changed, and per neighbour the paths now refused.
   */
  rejudge(judge: PathJudge): { changed: string[]; refused: Map<string, PathRefusals> } {
    const changed: string[] = [];
    const refusedBy = new Map<string, PathRefusals>();
    for (const [neighbourId, offered] of [...this.offered]) {
      const refused: PathRefusals = new Map();
      const after = new Map<string, Offered>();
      for (const [destination, { path }] of offered) {
        const verdict = judge(neighbourId, path);
        if (verdict.ok || verdict.code === 'unknown-server') after.set(destination, { path, usable: verdict.ok });
        else tally(refused, verdict.code, verdict.why);
      }
      changed.push(...this.replace(neighbourId, after));
      if (refused.size > 0) refusedBy.set(neighbourId, refused);
    }
    return { changed, refused: refusedBy };
  }

  /** Forgets a neighbour's announcement (its link went down); answers the servers it had offered. */
  forget(neighbourId: string): string[] {
    const reach = this.usable.get(neighbourId);
    this.total -= this.offered.get(neighbourId)?.size ?? 0;
    this.offered.delete(neighbourId);
    this.usable.delete(neighbourId);
    return [...(reach?.keys() ?? [])];
  }

  /** The usable paths through a neighbour, by destination. */
  reachOf(neighbourId: string): ReadonlyMap<string, readonly string[]> {
    return this.usable.get(neighbourId) ?? ReachabilityTable.none;
  }

  /** Paths kept of all neighbours, usable or waiting (PATHS_MAX bounds it). */
  get size(): number {
    return this.total;
  }
}

function tally(refused: PathRefusals, code: string, why: string, count = 1): void {
  const known = refused.get(code);
  if (known) known.count += count;
  else refused.set(code, { count, why });
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
