/**
 * The store-relay bound: the latency a chain of servers cannot go below on this machine
 * with this engine, whatever the router does. `stages` processes, one per server of a
 * chain, each on a fresh embedded store with fsync (bench/relay-stage.ts), relay events
 * the first one posts at the paced rate: each commits what it has received (group
 * commit, spaced as a node spaces its commits) and passes it on over a local socket
 * after the commit, as a server forwards only what is durable; with `cutThrough` the
 * transits (neither the first stage nor the last) pass events on as they arrive and
 * commit beside it, the lever a router could still pull. The time from a post to the
 * last stage's commit is the figure. No gRPC, signatures, hashing, checks or routing:
 * a link's paced latency is this plus what the router's own work costs. On a one-column
 * table no schema of ours is left in it either, and with no store only the processes.
 */
import { join } from 'node:path';
import { COMMIT_SPACING_MS } from '../router/index.js';
import { percentile } from './clock.js';
import type { RelayAnswer, RelayAppendsTo, RelayStageTask } from './relay-wire.js';
import { runTogether } from './together.js';

export interface StoreRelaySpec {
  /** Servers in series (a hop's two; three hops' four), each its own process and store. */
  stages: number;
  /** The transits pass events on as they arrive, committing beside it, rather than after their commit. */
  cutThrough: boolean;
  /** Trellis's store; the engine alone on a one-column table, its floor; or no store. */
  appendsTo: RelayAppendsTo;
  bodyBytes: number;
  ratePerS: number;
  events: number;
}

export interface StoreRelayBound extends StoreRelaySpec {
  /** Each stage's least time between the starts of two commits: the node's. */
  commitSpacingMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Mean events per commit over all stages. */
  eventsPerCommit: number;
  /** CPU of all stages together, as a share of one core, from the first post to the last commit. */
  stagesBusy: number;
}

export async function measureStoreRelay(dir: string, spec: StoreRelaySpec, limitMs: number): Promise<StoreRelayBound> {
  const { stages, cutThrough, appendsTo, bodyBytes, ratePerS, events } = spec;
  const name = `relay-${stages}-${cutThrough ? 'cut' : 'stored'}-${appendsTo}`;
  const socketOf = (index: number) => join(dir, `${name}-${index}.sock`);
  const tasks = Array.from({ length: stages }, (_, index): RelayStageTask => ({
    dataDir: join(dir, `${name}-${index}`), appendsTo, bodyBytes, events, ratePerS,
    ...(index > 0 ? { listenPath: socketOf(index) } : {}),
    ...(index + 1 < stages ? { nextPath: socketOf(index + 1) } : {}),
    forwardOnReceipt: cutThrough && index > 0 && index + 1 < stages,
  }));
  const answers = await runTogether<RelayStageTask, RelayAnswer>(new URL('./relay-stage.js', import.meta.url), tasks, limitMs);
  const postedAt = answers[0]!.postedAt!;
  const durableAt = new Map(answers.at(-1)!.durableAt!);
  const latencies = postedAt.map(([seq, atMs]) => durableAt.get(seq)! - atMs).sort((a, b) => a - b);
  const runMs = Math.max(...durableAt.values()) - postedAt[0]![1];
  const sum = (of: (answer: RelayAnswer) => number) => answers.reduce((total, answer) => total + of(answer), 0);
  return {
    ...spec, commitSpacingMs: COMMIT_SPACING_MS,
    p50Ms: percentile(latencies, 0.5), p99Ms: percentile(latencies, 0.99), maxMs: latencies.at(-1)!,
    eventsPerCommit: (events * stages) / Math.max(1, sum((answer) => answer.commits)),
    stagesBusy: sum((answer) => answer.cpuMs) / runMs,
  };
}
