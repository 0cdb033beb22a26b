/**
 * The machine's own bounds, measured in the same run as the link: how fast this core
 * verifies Ed25519; how fast each engine appends, reads back and commits one at a time
 * the events a link carries; and how fast embedded stores append when several do at
 * once, as a chain's servers do. A link figure is only meaningful next to these.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { chainEvent, identityFromSeed, verifySignature, type ChainPosition } from '../crypto/index.js';
import { EventKind, type Event } from '../proto/gen/trellis/v1/event.js';
import type { EngineName } from './engines.js';
import { openStore, type EventStore, type StoreLocation } from '../store/index.js';
import { percentile, sharedNowMs } from './clock.js';
import type { AppendTask } from './append-writer.js';
import { runTogether } from './together.js';

/** How long the verify loop runs. */
export const VERIFY_SAMPLE_MS = 1_000;
/** Events per append transaction: the node's LOCAL_BATCH_EVENTS_MAX and a link frame's default batch_events. */
export const STORE_BATCH_EVENTS = 512;
/** Single-event commits timed back to back: the median is the per-hop latency floor, the tail the engine's own stalls. */
export const COMMIT_SAMPLES = 3_000;
/**
 * Single-event commits timed at a paced server's rhythm, each after a pause of at least
 * PACED_COMMIT_PAUSE_MS: a commit that follows a pause can cost more time and CPU than
 * one that follows another at once (the engine's memory and the disk go cold meanwhile),
 * the more so the longer the pause.
 */
export const PACED_COMMIT_SAMPLES = 1_000;
export const PACED_COMMIT_PAUSE_MS = 1;

export interface StoreBounds {
  engine: EngineName;
  /** The embedded store's setting (store.durability); PostgreSQL's is the server's own. */
  durability?: 'fsync' | 'os';
  bodyBytes: number;
  /** Events in the sample chat. */
  chatEvents: number;
  /** One transaction per batch of STORE_BATCH_EVENTS: what a receiving node does per frame. */
  appendRowsPerS: number;
  /** The origin's outbound query (events for a peer after a link position), a page at a time. */
  readBackRowsPerS: number;
  /** Median time of a transaction that appends one event: the floor of each hop at low load. */
  commitOneMs: number;
  /** The same commits' 99th percentile and slowest: the engine's stalls. */
  commitOneP99Ms: number;
  commitOneMaxMs: number;
  /** The process's CPU (user and system, every thread) per one of those commits. */
  commitOneCpuMs: number;
  /** One-event commits each after a pause (PACED_COMMIT_PAUSE_MS): their median, 99th percentile and CPU each. */
  pacedCommitMs: number;
  pacedCommitP99Ms: number;
  pacedCommitCpuMs: number;
}

interface CommitTimes {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  cpuMs: number;
}

export function measureVerifyPerS(): number {
  const identity = identityFromSeed(randomBytes(32));
  const message = randomBytes(64);
  const signature = identity.sign(message);
  let count = 0;
  const start = sharedNowMs();
  while (sharedNowMs() - start < VERIFY_SAMPLE_MS) {
    for (let i = 0; i < 100; i++) if (!verifySignature(identity.publicKey, message, signature)) throw new Error('verify sample failed');
    count += 100;
  }
  return (count / (sharedNowMs() - start)) * 1000;
}

const ORIGIN = 'bench-origin';
const PEER = 'bench-peer';

/** One chat's chain from this origin: a chat-created event naming both servers, then messages. */
export function sampleChain(chatId: string, bodyBytes: number, count: number): Event[] {
  const events: Event[] = [];
  let head: ChainPosition | undefined;
  for (let i = 0; i < count; i++) {
    const created = i === 0;
    const event = chainEvent(ORIGIN, head, {
      chatId,
      senderUser: `alice@${ORIGIN}`,
      senderDevice: 'bench',
      kind: created ? EventKind.EVENT_KIND_CHAT_CREATED : EventKind.EVENT_KIND_MESSAGE_POSTED,
      ...(created ? { members: [`alice@${ORIGIN}`, `bob@${PEER}`] } : {}),
      body: randomBytes(bodyBytes),
    }, { ms: Date.now(), counter: i });
    head = { seq: event.seq, id: event.id };
    events.push(event);
  }
  return events;
}

// Each loop below yields a turn of the event loop per batch, so the bench's time limit
// and Ctrl-C are heard: PGlite itself resolves on promise callbacks alone.

export async function timeBatchAppends(store: EventStore, events: Event[]): Promise<number> {
  const start = sharedNowMs();
  for (let i = 0; i < events.length; i += STORE_BATCH_EVENTS) {
    await store.append({ events: events.slice(i, i + STORE_BATCH_EVENTS) });
    await nextTurn();
  }
  return (events.length / (sharedNowMs() - start)) * 1000;
}

async function timeReadBack(store: EventStore, rows: number): Promise<number> {
  const start = sharedNowMs();
  let read = 0;
  for (let after = 0; read < rows; ) {
    const page = await store.outboundEvents(ORIGIN, [PEER], after, STORE_BATCH_EVENTS);
    if (page.length === 0) break;
    read += page.length;
    after = page.at(-1)!.localSeq;
    await nextTurn();
  }
  return (read / (sharedNowMs() - start)) * 1000;
}

/** One-event commits in a chat of their own, each after `pauseMs` (0: the next turn of the event loop). */
async function timeSingleCommits(store: EventStore, chatId: string, bodyBytes: number, samples: number, pauseMs: number): Promise<CommitTimes> {
  const events = sampleChain(chatId, bodyBytes, samples);
  const times: number[] = [];
  const cpuBefore = process.cpuUsage();
  for (const event of events) {
    const start = sharedNowMs();
    await store.append({ events: [event] });
    times.push(sharedNowMs() - start);
    if (pauseMs > 0) await sleep(pauseMs);
    else await nextTurn();
  }
  const cpu = process.cpuUsage(cpuBefore);
  times.sort((a, b) => a - b);
  return { p50Ms: percentile(times, 0.5), p99Ms: percentile(times, 0.99), maxMs: times.at(-1)!, cpuMs: (cpu.user + cpu.system) / 1000 / events.length };
}

/**
 * Appends, reads back and single commits of `bodyBytes` bodies on a fresh store in
 * `location` (an engine's fresh store), in one chat of `events` events: the read-back's cost grows with the length of
 * the chat (see the report), so the sample chat is as long as the link run's.
 */
export async function measureStore(engine: EngineName, location: StoreLocation, bodyBytes: number, events: number): Promise<StoreBounds> {
  const store = await openStore(location);
  try {
    const chain = sampleChain('batch-appends', bodyBytes, events);
    const appendRowsPerS = await timeBatchAppends(store, chain);
    const readBackRowsPerS = await timeReadBack(store, chain.length);
    const once = await timeSingleCommits(store, 'single-commits', bodyBytes, COMMIT_SAMPLES, 0);
    const paced = await timeSingleCommits(store, 'paced-commits', bodyBytes, PACED_COMMIT_SAMPLES, PACED_COMMIT_PAUSE_MS);
    return {
      engine, ...(location.durability ? { durability: location.durability } : {}), bodyBytes, chatEvents: events, appendRowsPerS, readBackRowsPerS,
      commitOneMs: once.p50Ms, commitOneP99Ms: once.p99Ms, commitOneMaxMs: once.maxMs, commitOneCpuMs: once.cpuMs,
      pacedCommitMs: paced.p50Ms, pacedCommitP99Ms: paced.p99Ms, pacedCommitCpuMs: paced.cpuMs,
    };
  } finally {
    await store.close();
  }
}

/** Past this the stores appending together are killed and the bench fails. */
const APPENDS_TOGETHER_LIMIT_MS = 60_000;

export interface AppendsTogether {
  /** Stores appending at once, each in its own process, each on its own embedded store with fsync. */
  stores: number;
  bodyBytes: number;
  /** Each store's rows/s while all of them append. */
  rowsPerS: number[];
}

/**
 * The append ceiling of `stores` embedded stores appending at the same moment, as the
 * servers of a chain do under load: on a machine with fewer cores than stores, or whose
 * cores share caches, each gets less than one store alone. No code of ours but the
 * append itself is in this figure.
 */
export async function measureAppendsTogether(dir: string, stores: number, bodyBytes: number, events: number): Promise<AppendsTogether> {
  const tasks: AppendTask[] = Array.from({ length: stores }, (_, index) => ({ dataDir: join(dir, `together-${stores}-${index}`), bodyBytes, events }));
  const rowsPerS = await runTogether<AppendTask, number>(new URL('./append-writer.js', import.meta.url), tasks, APPENDS_TOGETHER_LIMIT_MS);
  return { stores, bodyBytes, rowsPerS };
}
