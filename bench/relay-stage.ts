/**
 * One stage of the store-relay bound (bench/relay.ts), in a process of its own as each
 * server is: receives sequence numbers over a TCP socket, appends those events of its
 * own sample chat to a fresh embedded store (fsync on) with group commit (what arrives
 * during a commit, or while the node's commit spacing holds the next one back, goes
 * into the next one), and after each commit passes the numbers on to the next stage, or,
 * the last stage, reports when they were durable; a transit told to cut through passes
 * them on as they arrive instead. Of the router only its commit spacing is here: the
 * store's append, a socket and the event loop.
 */
import { createServer, connect, type Socket } from 'node:net';
import { CommitPacer } from '../router/index.js';
import { openStore, type EventStore } from '../store/index.js';
import { sampleChain } from './bounds.js';
import { sharedNowMs } from './clock.js';
import { cpuMs } from './cpu.js';
import { encodeSeqs, SeqReader, type RelayReport, type RelayStageTask, type ToRelayStage } from './relay-wire.js';

/** One-event commits on a chat of their own before the run, so the engine's caches and the JIT are warm. */
const WARMUP_COMMITS = 500;
/** Durable seqs are reported at most this often, as bench/link-peer.ts does, for the same reason. */
const REPORT_EVERY_MS = 20;

const send = (message: RelayReport) => process.send?.(message);

class Stage {
  private pending: number[] = [];
  private committing = false;
  private next: Socket | undefined;
  private durable: Array<[number, number]> = [];
  private reportTimer: NodeJS.Timeout | undefined;
  commits = 0;

  constructor(
    private readonly store: EventStore,
    private readonly chain: ReturnType<typeof sampleChain>,
    private readonly bodyBytes: number,
    private readonly forwardOnReceipt: boolean,
    private readonly pacer: CommitPacer,
  ) {}

  forwardTo(socket: Socket | undefined): void {
    this.next = socket;
  }

  received(seqs: number[]): void {
    if (this.forwardOnReceipt) this.next?.write(encodeSeqs(seqs, this.bodyBytes));
    this.pending.push(...seqs);
    if (!this.committing) void this.commitWhilePending();
  }

  private async commitWhilePending(): Promise<void> {
    this.committing = true;
    try {
      while (this.pending.length > 0) {
        await this.pacer.ready();
        const seqs = this.pending;
        this.pending = [];
        await this.store.append({ events: seqs.map((seq) => this.chain[seq]!) });
        this.commits += 1;
        if (!this.forwardOnReceipt) this.passOn(seqs);
      }
    } catch (error) {
      send({ type: 'error', message: (error as Error).message });
    } finally {
      this.committing = false;
    }
  }

  private passOn(seqs: number[]): void {
    if (this.next) {
      this.next.write(encodeSeqs(seqs, this.bodyBytes));
      return;
    }
    const atMs = sharedNowMs();
    for (const seq of seqs) this.durable.push([seq, atMs]);
    this.reportTimer ??= setTimeout(() => this.report(), REPORT_EVERY_MS);
  }

  report(): void {
    clearTimeout(this.reportTimer);
    this.reportTimer = undefined;
    if (this.durable.length > 0) send({ type: 'durable', seqs: this.durable });
    this.durable = [];
  }
}

async function prepare(task: RelayStageTask): Promise<{ stage: Stage; port: number }> {
  const store = await openStore({ dataDir: task.dataDir, durability: 'fsync' });
  const chain = sampleChain('relay', task.bodyBytes, task.events + 1);
  // The chat's first event (its creation, a membership event) before the run: the relay carries messages only.
  await store.append({ events: [chain[0]!] });
  for (const event of sampleChain('relay-warm-up', task.bodyBytes, WARMUP_COMMITS)) await store.append({ events: [event] });
  const stage = new Stage(store, chain, task.bodyBytes, task.forwardOnReceipt, new CommitPacer(task.commitSpacingMs));
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    const reader = new SeqReader();
    socket.on('data', (chunk: Buffer) => reader.push(chunk, (seqs) => stage.received(seqs)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { stage, port: (server.address() as { port: number }).port };
}

function main(): void {
  let stage: Stage | undefined;
  let cpuAtStartMs = 0;
  process.once('disconnect', () => process.exit(0));
  process.on('message', (message: ToRelayStage) => {
    if (message.type === 'prepare') {
      prepare(message.task).then(
        (prepared) => {
          stage = prepared.stage;
          send({ type: 'listening', port: prepared.port });
        },
        (error: Error) => send({ type: 'error', message: error.message }),
      );
    } else if (message.type === 'connect') {
      if (message.port === undefined) {
        send({ type: 'connected' });
        return;
      }
      const socket = connect(message.port, '127.0.0.1', () => send({ type: 'connected' }));
      socket.setNoDelay(true);
      socket.on('error', (error) => send({ type: 'error', message: error.message }));
      stage?.forwardTo(socket);
    } else if (message.type === 'go') {
      cpuAtStartMs = cpuMs();
    } else if (message.type === 'finish') {
      stage?.report();
      send({ type: 'finished', cpuMs: cpuMs() - cpuAtStartMs, commits: stage?.commits ?? 0 });
    }
  });
}

main();
