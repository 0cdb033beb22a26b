/**
 * One measured run over the link, for any body size and offered load: post events at
 * the origin (as fast as the in-flight window allows, or paced at a fixed rate), and
 * time each from its post call at the origin to its durable append at the peer.
 */
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import type { EventDraft } from '../crypto/index.js';
import { createdDraft, messageDraft, newChat, type DeviceChat } from '../gateways/index.js';
import type { StoredEvent } from '../store/index.js';
import { percentile, sharedNowMs } from './clock.js';
import { machineBusyMs } from './cpu.js';
import type { AppendReport, Hops, LinkedChain } from './chain.js';
import type { EngineName } from './engines.js';
import type { AppendTime } from './store-timer.js';
import type { WakeCanary, WakeDelays } from './wake-canary.js';

export interface CaseSpec {
  name: string;
  /** Sealed body bytes per event (nonce, MAC and protobuf framing included). */
  bodyBytes: number;
  events: number;
  /** Posts not yet durable at the origin; the poster waits for a slot past this. */
  inFlightMax: number;
  /** Paced posting at this rate; absent: as fast as the window allows. */
  ratePerS?: number;
  timeLimitMs: number;
}

export interface CaseResult {
  name: string;
  /** Trust links between the origin and the destination. */
  hops: Hops;
  /** The store engine of every server in the run. */
  engine: EngineName;
  /** 'os': every server's embedded store ran without fsync, to show what fsync adds (a bound row). */
  durability?: 'os';
  bodyBytes: number;
  events: number;
  inFlightMax: number;
  /** The paced rate asked for; absent for a throughput run. */
  ratePerS?: number;
  /** Posts per second the poster achieved (the offered load). */
  offeredPerS: number;
  /** Events per second durable at the origin (its group commit). */
  originPerS: number;
  /** Events per second durable at the peer, first post to last peer append: the link's throughput. */
  eventsPerS: number;
  p50Ms: number;
  p99Ms: number;
  /** Mean events per transaction at the origin (its group commit) and per link frame. */
  eventsPerCommit: number;
  eventsPerFrame: number;
  /** Share of one core each server's process used from the first post to the last peer append: near 1, it is CPU-bound. */
  originBusy: number;
  peerBusy: number;
  /** The transits' processes together (0 for one hop). */
  transitsBusy: number;
  /** Share of the run the origin and the destination spent inside their store's appends, and the mean time of one (see store-timer.ts). */
  originInStore: number;
  originAppendMs: number;
  peerInStore: number;
  peerAppendMs: number;
  /** The same for each transit (their mean); absent for one hop. */
  transitsInStore?: number;
  transitsAppendMs?: number;
  /** Cores' worth of CPU other processes on the machine used meanwhile (undefined without /proc/stat): above ~0.1 the figures are low. */
  otherBusy: number | undefined;
  /** How late an idle process's 1 ms wake-ups came meanwhile (bench/wake-canary.ts); paced runs only. */
  wake?: WakeDelays;
}

/** When the peer durably appended each of the origin's events, by chat and seq. */
export class PeerArrivals {
  private readonly byChat = new Map<string, Map<number, number>>();
  private wake: (() => void) | undefined;

  constructor(pair: LinkedChain) {
    pair.onPeerAppended((report) => this.record(report));
  }

  private record(report: AppendReport): void {
    for (const { chatId, seqs } of report.chats) {
      const arrivals = this.byChat.get(chatId) ?? new Map<number, number>();
      for (const seq of seqs) if (!arrivals.has(seq)) arrivals.set(seq, report.atMs);
      this.byChat.set(chatId, arrivals);
    }
    this.wake?.();
  }

  of(chatId: string): ReadonlyMap<number, number> {
    return this.byChat.get(chatId) ?? new Map();
  }

  /** Resolves once the peer holds `count` events of the chat; throws past the deadline. */
  async until(chatId: string, count: number, deadlineMs: number): Promise<void> {
    while (this.of(chatId).size < count) {
      if (sharedNowMs() > deadlineMs) throw new Error(`the peer holds ${this.of(chatId).size} of ${count} events of the run at its time limit`);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 100).unref();
      });
    }
  }
}

/** A message text whose sealed body is as close to `bodyBytes` as it can be without passing it. */
function textFor(chat: DeviceChat, sender: string, bodyBytes: number): string {
  let text = 'x'.repeat(Math.max(0, bodyBytes - 40));
  while (text.length > 0 && messageDraft(chat, sender, text).body.length > bodyBytes) text = text.slice(1);
  return text;
}

/** Sealed before the clock starts: sealing is the sending device's work, not a server's. */
function sealedDrafts(chat: DeviceChat, sender: string, bodyBytes: number, count: number): EventDraft[] {
  const text = textFor(chat, sender, bodyBytes);
  return Array.from({ length: count }, () => messageDraft(chat, sender, text));
}

/** Counts posts in flight; the poster waits on it when every slot is taken. */
class InFlight {
  count = 0;
  private wake: (() => void) | undefined;

  freed(): Promise<void> {
    return new Promise((resolve) => (this.wake = resolve));
  }

  done(): void {
    this.count -= 1;
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

interface Offered {
  /** Post call time by chain seq. */
  postedAt: Map<number, number>;
  firstPostMs: number;
  lastPostMs: number;
  lastDurableMs: number;
}

/**
 * Posts every draft, paced or as fast as the window allows, and resolves when all are
 * durable at the origin. Posts are made in bursts, one burst per turn of the event loop:
 * every post that is due and has a slot, as a server's network layer hands over all the
 * requests one poll returns. Posting from promise callbacks instead would never yield
 * to the event loop and starve the node's own I/O (its link) while the run lasts.
 */
async function offer(pair: LinkedChain, drafts: EventDraft[], spec: CaseSpec, deadlineMs: number): Promise<Offered> {
  const postedAt = new Map<number, number>();
  const inFlight = new InFlight();
  const posts: Array<Promise<void>> = [];
  let lastDurableMs = 0;
  let failure: unknown;
  const post = (draft: EventDraft) => {
    const startMs = sharedNowMs();
    inFlight.count += 1;
    const done = pair.origin.post(draft).then(
      (event) => {
        postedAt.set(event.seq, startMs);
        lastDurableMs = sharedNowMs();
      },
      (error: unknown) => {
        failure ??= error;
      },
    );
    posts.push(done.finally(() => inFlight.done()));
  };
  const firstPostMs = sharedNowMs();
  const dueBy = (nowMs: number) => (spec.ratePerS ? Math.min(drafts.length, Math.floor(((nowMs - firstPostMs) * spec.ratePerS) / 1000) + 1) : drafts.length);
  for (let next = 0; next < drafts.length; ) {
    if (failure) throw failure;
    if (sharedNowMs() > deadlineMs) throw new Error(`posted ${next} of ${drafts.length} events within the time limit`);
    const burst = Math.min(dueBy(sharedNowMs()) - next, spec.inFlightMax - inFlight.count);
    for (let i = 0; i < burst; i++) post(drafts[next++]!);
    if (inFlight.count >= spec.inFlightMax) await inFlight.freed();
    const nextDueMs = spec.ratePerS ? firstPostMs + (next * 1000) / spec.ratePerS : 0;
    const waitMs = nextDueMs - sharedNowMs();
    await (waitMs > 0 ? sleep(waitMs) : nextTurn());
  }
  const lastPostMs = sharedNowMs();
  await Promise.all(posts);
  if (failure) throw failure;
  return { postedAt, firstPostMs, lastPostMs, lastDurableMs };
}

/** Counts the origin's transactions that hold events of the chat: it emits 'appended' once per commit. */
function countCommits(pair: LinkedChain, chatId: string): { readonly count: number; stop(): void } {
  const counter = { count: 0, stop: () => pair.origin.off('appended', onAppended) };
  const onAppended = (events: StoredEvent[]) => {
    if (events.some((event) => event.chatId === chatId && event.origin === pair.origin.id)) counter.count += 1;
  };
  pair.origin.on('appended', onAppended);
  return counter;
}

function linkFrames(pair: LinkedChain): { batches: number; events: number } {
  const stats = pair.origin.link(pair.firstHopId)?.stats;
  if (!stats) throw new Error('the link went down during the run');
  return { batches: stats.batchesSent, events: stats.eventsSent };
}

const perS = (count: number, fromMs: number, toMs: number) => (count / Math.max(toMs - fromMs, 1e-3)) * 1000;

/** `canary`: sampled while the case runs, so its wake-up delays stand beside the case's latency. */
export async function runCase(pair: LinkedChain, arrivals: PeerArrivals, spec: CaseSpec, canary?: WakeCanary): Promise<CaseResult> {
  const deadlineMs = sharedNowMs() + spec.timeLimitMs;
  const sender = `alice@${pair.origin.id}`;
  const chat = newChat([sender, `bob@${pair.peerId}`]);
  // A fresh chat per run, created and delivered before the clock starts, so runs do not share a chain.
  await pair.origin.post(createdDraft(chat, sender));
  await arrivals.until(chat.id, 1, deadlineMs);
  const drafts = sealedDrafts(chat, sender, spec.bodyBytes, spec.events);
  const framesBefore = linkFrames(pair);
  const commits = countCommits(pair, chat.id);
  const cpuBefore = { ...(await pair.cpuMs()), machine: machineBusyMs() };
  canary?.start();
  const offered = await offer(pair, drafts, spec, deadlineMs).finally(() => commits.stop());
  await arrivals.until(chat.id, spec.events + 1, deadlineMs);
  const wake = await canary?.stop();
  const cpuAfter = { ...(await pair.cpuMs()), machine: machineBusyMs() };
  const framesAfter = linkFrames(pair);
  const arrived = arrivals.of(chat.id);
  const latencies = [...offered.postedAt].map(([seq, postedMs]) => arrived.get(seq)! - postedMs).sort((a, b) => a - b);
  const lastArrivalMs = [...offered.postedAt.keys()].reduce((latest, seq) => Math.max(latest, arrived.get(seq)!), 0);
  const runMs = lastArrivalMs - offered.firstPostMs;
  const busy = (before: number, after: number) => (after - before) / runMs;
  const processes = (cpu: { origin: number; peer: number; transits: number }) => cpu.origin + cpu.peer + cpu.transits;
  const inStore = (before: AppendTime, after: AppendTime) => ({ share: (after.ms - before.ms) / runMs, meanMs: (after.ms - before.ms) / Math.max(1, after.appends - before.appends) });
  const [originStore, peerStore] = [inStore(cpuBefore.originStore, cpuAfter.originStore), inStore(cpuBefore.peerStore, cpuAfter.peerStore)];
  const transitsStore = inStore(cpuBefore.transitsStore, cpuAfter.transitsStore);
  const transits = pair.hops - 1;
  return {
    name: spec.name,
    hops: pair.hops,
    engine: pair.engine,
    ...(pair.durability ? { durability: pair.durability } : {}),
    bodyBytes: drafts[0]!.body.length,
    events: spec.events,
    inFlightMax: spec.inFlightMax,
    ...(spec.ratePerS ? { ratePerS: spec.ratePerS } : {}),
    offeredPerS: perS(spec.events, offered.firstPostMs, offered.lastPostMs),
    originPerS: perS(spec.events, offered.firstPostMs, offered.lastDurableMs),
    eventsPerS: perS(spec.events, offered.firstPostMs, lastArrivalMs),
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    eventsPerCommit: spec.events / Math.max(1, commits.count),
    eventsPerFrame: (framesAfter.events - framesBefore.events) / Math.max(1, framesAfter.batches - framesBefore.batches),
    // CPU time is read just before the first post and just after the last arrival: it covers the run and little else.
    originBusy: busy(cpuBefore.origin, cpuAfter.origin),
    peerBusy: busy(cpuBefore.peer, cpuAfter.peer),
    transitsBusy: busy(cpuBefore.transits, cpuAfter.transits),
    originInStore: originStore.share,
    originAppendMs: originStore.meanMs,
    peerInStore: peerStore.share,
    peerAppendMs: peerStore.meanMs,
    ...(transits > 0 ? { transitsInStore: transitsStore.share / transits, transitsAppendMs: transitsStore.meanMs } : {}),
    otherBusy:
      cpuBefore.machine === undefined || cpuAfter.machine === undefined
        ? undefined
        : Math.max(0, busy(cpuBefore.machine, cpuAfter.machine) - busy(processes(cpuBefore), processes(cpuAfter))),
    ...(wake ? { wake } : {}),
  };
}

export interface CatchUpResult {
  events: number;
  /** From the trust coming back to the destination holding every event the origin stored meanwhile. */
  seconds: number;
  eventsPerS: number;
  originBusy: number;
  peerBusy: number;
}

/**
 * A destination that was away: the origin stores `events` while the trust is blocked,
 * then the trust comes back and the link sends the backlog (the oldest of it from the
 * store, past the in-memory tail). Times the catch-up only.
 */
export async function runCatchUp(pair: LinkedChain, arrivals: PeerArrivals, events: number, timeLimitMs: number): Promise<CatchUpResult> {
  const deadlineMs = sharedNowMs() + timeLimitMs;
  const sender = `alice@${pair.origin.id}`;
  const chat = newChat([sender, `bob@${pair.peerId}`]);
  await pair.origin.post(createdDraft(chat, sender));
  await arrivals.until(chat.id, 1, deadlineMs);
  await pair.origin.setTrustStatus(pair.firstHopId, 'disabled');
  await offer(pair, sealedDrafts(chat, sender, 256, events), { name: 'backlog', bodyBytes: 256, events, inFlightMax: 256, timeLimitMs }, deadlineMs);
  const cpuBefore = await pair.cpuMs();
  const startMs = sharedNowMs();
  await pair.origin.setTrustStatus(pair.firstHopId, 'enabled');
  await arrivals.until(chat.id, events + 1, deadlineMs);
  const endMs = [...arrivals.of(chat.id).values()].reduce((latest, at) => Math.max(latest, at), 0);
  const cpuAfter = await pair.cpuMs();
  const runMs = endMs - startMs;
  return {
    events,
    seconds: runMs / 1000,
    eventsPerS: perS(events, startMs, endMs),
    originBusy: (cpuAfter.origin - cpuBefore.origin) / runMs,
    peerBusy: (cpuAfter.peer - cpuBefore.peer) / runMs,
  };
}
