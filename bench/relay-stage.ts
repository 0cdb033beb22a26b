/**
 * One stage of the store-relay bound (bench/relay.ts), in a process of its own as each
 * server is, started with the others (bench/together.ts). It appends events of its own
 * sample chat to a fresh embedded store (fsync on) with group commit: what arrives
 * during a commit, or while the node's commit spacing holds the next one back, goes into
 * the next one. After each commit it passes the events' seqs on to the next stage over
 * a local socket; a transit told to cut through passes them on as they arrive instead.
 * The first stage posts the events itself at the paced rate, as an origin's clients do;
 * the last one notes when each was durable. Of the router only its commit spacing is
 * here: the store's append (or the engine's alone, or none: task.appendsTo), a socket and
 * the event loop.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { COMMIT_SPACING_MS, CommitPacer } from '../router/index.js';
import { openPglite, openStore } from '../store/index.js';
import { sampleChain } from './bounds.js';
import { sharedNowMs } from './clock.js';
import { cpuMs } from './cpu.js';
import { encodeSeqs, SeqReader, type RelayAnswer, type RelayStageTask } from './relay-wire.js';
import { serveTogether } from './together.js';

/** Makes the seqs' events durable, as the task's store does it. */
type AppendSeqs = (seqs: readonly number[]) => Promise<void>;

/** One-event commits on a chat of their own before the run, so the engine's caches and the JIT are warm. */
const WARMUP_COMMITS = 500;

class Stage {
  private pending: number[] = [];
  private committing = false;
  private committed = 0;
  private allCommitted: () => void = () => undefined;
  readonly done = new Promise<void>((resolve) => (this.allCommitted = resolve));
  /** [seq, when its commit returned], kept by the last stage only. */
  readonly durableAt: Array<[number, number]> = [];
  commits = 0;
  private readonly pacer = new CommitPacer(COMMIT_SPACING_MS);

  constructor(
    private readonly append: AppendSeqs,
    private readonly task: RelayStageTask,
    private readonly next: Socket | undefined,
  ) {}

  received(seqs: number[]): void {
    if (this.task.forwardOnReceipt) this.next?.write(encodeSeqs(seqs, this.task.bodyBytes));
    this.pending.push(...seqs);
    if (!this.committing) void this.commitWhilePending();
  }

  private async commitWhilePending(): Promise<void> {
    this.committing = true;
    while (this.pending.length > 0) {
      await this.pacer.ready();
      const seqs = this.pending;
      this.pending = [];
      await this.append(seqs);
      this.commits += 1;
      this.committed += seqs.length;
      this.passOn(seqs);
    }
    this.committing = false;
    if (this.committed === this.task.events) this.allCommitted();
  }

  private passOn(seqs: number[]): void {
    if (this.next) {
      if (!this.task.forwardOnReceipt) this.next.write(encodeSeqs(seqs, this.task.bodyBytes));
      return;
    }
    const atMs = sharedNowMs();
    for (const seq of seqs) this.durableAt.push([seq, atMs]);
  }
}

/** Posts seqs 1..events into the stage at the paced rate, a burst per turn of the event loop as bench/link-case.ts posts; returns each post's time. */
async function postPaced(stage: Stage, { events, ratePerS }: RelayStageTask): Promise<Array<[number, number]>> {
  const postedAt: Array<[number, number]> = [];
  const firstMs = sharedNowMs();
  for (let next = 1; next <= events; ) {
    const due = Math.min(events, Math.floor(((sharedNowMs() - firstMs) * ratePerS) / 1000) + 1);
    const burst: number[] = [];
    for (; next <= due; next++) burst.push(next);
    const atMs = sharedNowMs();
    for (const seq of burst) postedAt.push([seq, atMs]);
    if (burst.length > 0) stage.received(burst);
    const waitMs = firstMs + ((next - 1) * 1000) / ratePerS - sharedNowMs();
    await (waitMs > 0 ? sleep(waitMs) : nextTurn());
  }
  return postedAt;
}

const ONE_COLUMN_INSERT = "insert into relay (body) select decode(body, 'base64') from unnest($1::text[]) as t(body)";

/** Opens and warms the task's store (fsync on); answers how the stage appends. */
async function openAppend(task: RelayStageTask): Promise<AppendSeqs> {
  // No store: a turn of the event loop stands for the commit, so what arrives meanwhile still joins the next one.
  if (task.appendsTo === 'nothing') return async () => void (await nextTurn());
  const chain = sampleChain('relay', task.bodyBytes, task.events + 1);
  const warmUp = sampleChain('relay-warm-up', task.bodyBytes, WARMUP_COMMITS);
  if (task.appendsTo === 'one-column') {
    const db = await openPglite({ dataDir: task.dataDir, durability: 'fsync' });
    await db.query('create table relay (n bigserial primary key, body bytea not null)');
    const bodies = (events: readonly { body: Buffer }[]) => [events.map((event) => event.body.toString('base64'))];
    for (const event of warmUp) await db.query(ONE_COLUMN_INSERT, bodies([event]));
    return async (seqs) => void (await db.query(ONE_COLUMN_INSERT, bodies(seqs.map((seq) => chain[seq]!))));
  }
  const store = await openStore({ dataDir: task.dataDir, durability: 'fsync' });
  // The chat's first event (its creation, a membership event) before the run: the relay carries messages only.
  await store.append({ events: [chain[0]!] });
  for (const event of warmUp) await store.append({ events: [event] });
  return async (seqs) => void (await store.append({ events: seqs.map((seq) => chain[seq]!) }));
}

/** Opens and warms the store and listens for the previous stage; the returned run connects to the next one, relays every event and answers. */
async function prepareStage(task: RelayStageTask): Promise<() => Promise<RelayAnswer>> {
  const append = await openAppend(task);
  let stage: Stage | undefined;
  // The previous stage may send before this one has reached the next: those wait for the stage.
  const early: number[][] = [];
  const server: Server | undefined = task.listenPath === undefined ? undefined : createServer((socket) => {
    const reader = new SeqReader();
    socket.on('data', (chunk: Buffer) => reader.push(chunk, (seqs) => (stage ? stage.received(seqs) : early.push(seqs))));
  });
  if (server) await new Promise<void>((resolve) => server.listen(task.listenPath, resolve));
  return async () => {
    const cpuAtStartMs = cpuMs();
    const next = task.nextPath === undefined ? undefined : await connected(task.nextPath);
    stage = new Stage(append, task, next);
    for (const seqs of early) stage.received(seqs);
    const postedAt = task.listenPath === undefined ? await postPaced(stage, task) : undefined;
    await stage.done;
    if (next) await new Promise<void>((resolve) => next.end(resolve));
    server?.close();
    return { postedAt, durableAt: next ? undefined : stage.durableAt, cpuMs: cpuMs() - cpuAtStartMs, commits: stage.commits };
  };
}

function connected(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(path, () => resolve(socket)).once('error', reject);
  });
}

serveTogether(prepareStage);
