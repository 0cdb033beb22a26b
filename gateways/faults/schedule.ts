import { between, pick, prng, type Random } from './prng.js';
import type { PartitionKind } from './tcp-proxy.js';

/**
 * The seeded schedule of a fault run: what happens to which server or link, and when, as
 * offsets from the start of the run. A seed always gives the same schedule (and the same
 * posts, drawn from a stream of their own); what the nodes do in between is theirs.
 */

/** Between one step and the next. */
export const STEP_GAP_MIN_MS = 1_000;
export const STEP_GAP_MAX_MS = 3_500;
/** How long a killed server stays down before it is started again from its data directory. */
export const DOWN_MIN_MS = 300;
export const DOWN_MAX_MS = 4_000;
/** How long a partition, delay or trickle lasts before it is healed. */
export const FAULT_MIN_MS = 1_000;
export const FAULT_MAX_MS = 6_000;
/** A delayed link holds every chunk this long, each way. */
export const DELAY_MIN_MS = 20;
export const DELAY_MAX_MS = 400;
/** The slowed peer's bytes per second on each of its connections, each way: enough for heartbeats, not for traffic. */
export const TRICKLE_MIN_BYTES_PER_S = 2_000;
export const TRICKLE_MAX_BYTES_PER_S = 16_000;

/** A trust link of the federation, by its two servers' names (sorted). */
export type LinkName = readonly [string, string];

export type Fault =
  | { kind: 'kill'; server: string; downMs: number }
  | { kind: 'partition'; link: LinkName; how: PartitionKind; forMs: number }
  | { kind: 'cut'; link: LinkName }
  | { kind: 'delay'; link: LinkName; delayMs: number; forMs: number }
  | { kind: 'trickle'; server: string; bytesPerS: number; forMs: number };

export interface Step {
  n: number;
  atMs: number;
  fault: Fault;
}

export interface ScheduleBounds {
  /** Faults start within this long after the run starts (they may last a little past it). */
  runMs: number;
  /** SIGKILLs in the run, at most. */
  killsMax: number;
}

export interface Schedule {
  seed: number;
  steps: Step[];
  /** The one peer slowed to a trickle in this run. */
  slowPeer: string;
  /** When the last fault of the schedule is healed (a killed server started again), from the start. */
  endMs: number;
}

/** How long a fault keeps its target busy (no second fault of its kind on it meanwhile). */
function busyMs(fault: Fault): number {
  switch (fault.kind) {
    case 'kill':
      return fault.downMs;
    case 'cut':
      return 0;
    default:
      return fault.forMs;
  }
}

const targetOf = (fault: Fault): string => ('server' in fault ? fault.server : fault.link.join('~'));

export function makeSchedule(seed: number, servers: readonly string[], links: readonly LinkName[], bounds: ScheduleBounds): Schedule {
  const random: Random = prng(seed);
  const slowPeer = pick(random, servers);
  const steps: Step[] = [];
  const busyUntil = new Map<string, number>();
  let kills = 0;
  let trickled = false;
  for (let atMs = between(random, STEP_GAP_MIN_MS, STEP_GAP_MAX_MS); atMs < bounds.runMs; atMs += between(random, STEP_GAP_MIN_MS, STEP_GAP_MAX_MS)) {
    const fault = drawFault(random, servers, links, slowPeer, { kills: kills < bounds.killsMax, trickle: !trickled });
    // A target still under its last fault of the kind (a server still down) is left alone this step.
    const key = `${fault.kind}:${targetOf(fault)}`;
    const down = fault.kind === 'kill' && (busyUntil.get(`kill:${fault.server}`) ?? 0) > atMs;
    if ((busyUntil.get(key) ?? 0) > atMs || down) continue;
    busyUntil.set(key, atMs + busyMs(fault));
    if (fault.kind === 'kill') kills += 1;
    if (fault.kind === 'trickle') trickled = true;
    steps.push({ n: steps.length + 1, atMs, fault });
  }
  const endMs = Math.max(bounds.runMs, ...steps.map((step) => step.atMs + busyMs(step.fault)));
  return { seed, steps, slowPeer, endMs };
}

function drawFault(random: Random, servers: readonly string[], links: readonly LinkName[], slowPeer: string, may: { kills: boolean; trickle: boolean }): Fault {
  const forMs = between(random, FAULT_MIN_MS, FAULT_MAX_MS);
  const roll = random();
  // Kills are the core: every other step, while the bound allows.
  if (may.kills && roll < 0.45) return { kind: 'kill', server: pick(random, servers), downMs: between(random, DOWN_MIN_MS, DOWN_MAX_MS) };
  if (may.trickle && roll < 0.6) return { kind: 'trickle', server: slowPeer, bytesPerS: between(random, TRICKLE_MIN_BYTES_PER_S, TRICKLE_MAX_BYTES_PER_S), forMs };
  const link = pick(random, links);
  if (roll < 0.78) return { kind: 'partition', link, how: random() < 0.5 ? 'reset' : 'blackhole', forMs };
  if (roll < 0.88) return { kind: 'cut', link };
  return { kind: 'delay', link, delayMs: between(random, DELAY_MIN_MS, DELAY_MAX_MS), forMs };
}

export function describeFault(fault: Fault): string {
  switch (fault.kind) {
    case 'kill':
      return `SIGKILL ${fault.server}, restart from its data directory after ${fault.downMs} ms`;
    case 'partition':
      return `partition ${fault.link.join(' ⟷ ')} (${fault.how === 'reset' ? 'connections reset' : 'connections swallowed'}) for ${fault.forMs} ms`;
    case 'cut':
      return `cut every connection of ${fault.link.join(' ⟷ ')} mid-stream`;
    case 'delay':
      return `delay ${fault.link.join(' ⟷ ')} by ${fault.delayMs} ms each way for ${fault.forMs} ms`;
    case 'trickle':
      return `slow ${fault.server} to ${fault.bytesPerS} B/s on every connection for ${fault.forMs} ms`;
  }
}
