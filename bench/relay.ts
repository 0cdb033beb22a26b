/**
 * The store-relay bound: the latency a chain of servers cannot go below on this machine
 * with this engine, whatever the router does. `stages` processes, one per server of a
 * chain, each on a fresh embedded store with fsync, relay events posted at the paced
 * rate: each commits what it has received (group commit, spaced as a node spaces its
 * commits) and passes it on over a TCP socket on 127.0.0.1 after the commit, as a server
 * forwards only what is durable; with `cutThrough` the transits (neither the first stage
 * nor the last) pass events on as they arrive and commit beside it, the lever a router
 * could still pull. The time from a post to the last stage's commit is the figure.
 * No gRPC, signatures, hashing, checks or routing: a link's paced latency is this plus
 * what the router's own work costs.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { COMMIT_SPACING_MS } from '../router/index.js';
import { percentile, sharedNowMs } from './clock.js';
import { encodeSeqs, type RelayReport, type RelayStageTask, type ToRelayStage } from './relay-wire.js';

export interface StoreRelaySpec {
  /** Servers in series (a hop's two; three hops' four), each its own process and store. */
  stages: number;
  /** The transits pass events on as they arrive, committing beside it, rather than after their commit. */
  cutThrough: boolean;
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
  /** CPU of all stages together, as a share of one core, over the run. */
  stagesBusy: number;
}

/** A stage process and the next message it is awaited for. */
class StageProcess {
  readonly child: ChildProcess;
  private waiting: { type: RelayReport['type']; resolve: (report: RelayReport) => void } | undefined;
  private failure: Error | undefined;

  constructor(script: URL, onDurable: (seqs: Array<[number, number]>) => void, onFailure: (error: Error) => void) {
    this.child = fork(script, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const fail = (error: Error) => {
      this.failure ??= error;
      onFailure(error);
    };
    this.child.on('message', (report: RelayReport) => {
      if (report.type === 'durable') onDurable(report.seqs);
      else if (report.type === 'error') fail(new Error(`relay stage: ${report.message}`));
      else if (this.waiting?.type === report.type) this.waiting.resolve(report);
    });
    this.child.once('exit', (code) => fail(new Error(`relay stage exited (${code ?? 'killed'})`)));
  }

  ask<T extends RelayReport['type']>(message: ToRelayStage, answer: T): Promise<Extract<RelayReport, { type: T }>> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve) => {
      this.waiting = { type: answer, resolve: resolve as (report: RelayReport) => void };
      this.child.send(message);
    });
  }
}

/** Posts seqs 1..events at `ratePerS` into `socket`, a burst per turn of the event loop as bench/link-case.ts posts; returns each post's time. */
async function postPaced(socket: Socket, events: number, ratePerS: number, bodyBytes: number, stopped: () => Error | undefined): Promise<Map<number, number>> {
  const postedAt = new Map<number, number>();
  const firstMs = sharedNowMs();
  for (let next = 1; next <= events; ) {
    const failure = stopped();
    if (failure) throw failure;
    const due = Math.min(events, Math.floor(((sharedNowMs() - firstMs) * ratePerS) / 1000) + 1);
    const burst: number[] = [];
    for (; next <= due; next++) burst.push(next);
    const atMs = sharedNowMs();
    for (const seq of burst) postedAt.set(seq, atMs);
    if (burst.length > 0) socket.write(encodeSeqs(burst, bodyBytes));
    const waitMs = firstMs + ((next - 1) * 1000) / ratePerS - sharedNowMs();
    await (waitMs > 0 ? sleep(waitMs) : nextTurn());
  }
  return postedAt;
}

export async function measureStoreRelay(dir: string, spec: StoreRelaySpec, limitMs: number): Promise<StoreRelayBound> {
  const { stages, cutThrough, bodyBytes, ratePerS, events } = spec;
  const script = new URL('./relay-stage.js', import.meta.url);
  const durableAt = new Map<number, number>();
  let failure: Error | undefined;
  let allDurable: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (allDurable = resolve));
  const processes = Array.from({ length: stages }, () => new StageProcess(script, (seqs) => {
    for (const [seq, atMs] of seqs) durableAt.set(seq, atMs);
    if (durableAt.size === events) allDurable();
  }, (error) => (failure ??= error)));
  const limit = setTimeout(() => (failure ??= new Error(`the store relay did not finish within ${limitMs} ms`)), limitMs);
  let socket: Socket | undefined;
  try {
    const ports = await Promise.all(processes.map((stage, index) => {
      const forwardOnReceipt = cutThrough && index > 0 && index + 1 < stages;
      const task: RelayStageTask = { dataDir: join(dir, `relay-${stages}-${cutThrough ? 'cut' : 'stored'}-${index}`), bodyBytes, events, forwardOnReceipt, commitSpacingMs: COMMIT_SPACING_MS };
      return stage.ask({ type: 'prepare', task }, 'listening').then((report) => report.port);
    }));
    await Promise.all(processes.map((stage, index) => stage.ask({ type: 'connect', ...(index + 1 < stages ? { port: ports[index + 1] } : {}) }, 'connected')));
    socket = await new Promise<Socket>((resolve, reject) => {
      const opened = connect(ports[0]!, '127.0.0.1', () => resolve(opened)).once('error', reject);
      opened.setNoDelay(true);
    });
    processes.forEach((stage) => stage.child.send({ type: 'go' } satisfies ToRelayStage));
    const postedAt = await postPaced(socket, events, ratePerS, bodyBytes, () => failure);
    const firstPostMs = postedAt.get(1)!;
    while (!failure && durableAt.size < events) await Promise.race([done, sleep(100)]);
    if (failure) throw failure;
    const lastMs = Math.max(...durableAt.values());
    const finished = await Promise.all(processes.map((stage) => stage.ask({ type: 'finish' }, 'finished')));
    const latencies = [...postedAt].map(([seq, atMs]) => durableAt.get(seq)! - atMs).sort((a, b) => a - b);
    const commits = finished.reduce((sum, stage) => sum + stage.commits, 0);
    return {
      ...spec, commitSpacingMs: COMMIT_SPACING_MS,
      p50Ms: percentile(latencies, 0.5), p99Ms: percentile(latencies, 0.99), maxMs: latencies.at(-1)!,
      eventsPerCommit: (events * stages) / Math.max(1, commits),
      stagesBusy: finished.reduce((sum, stage) => sum + stage.cpuMs, 0) / (lastMs - firstPostMs),
    };
  } finally {
    clearTimeout(limit);
    socket?.destroy();
    processes.forEach((stage) => stage.child.kill());
  }
}
