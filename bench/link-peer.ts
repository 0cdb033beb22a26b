/**
 * A server of the link bench other than the origin (a transit, or the destination), in
 * its own process as a real server would be. The destination reports each durable
 * append of the other servers' events (when, and which) to the parent. Exits when told
 * to stop or when the parent goes away.
 */
import { cryptoReady } from '../crypto/index.js';
import { createLogger, parseConfig, TrellisNode } from '../router/index.js';
import type { StoredEvent } from '../store/index.js';
import { sharedNowMs } from './clock.js';
import { cpuMs } from './cpu.js';
import type { AppendReport, FromPeer, ToPeer } from './peer-messages.js';
import { openTimedStore, type AppendTime } from './store-timer.js';

/** A peer that cannot stop cleanly in this time exits anyway. */
const STOP_LIMIT_MS = 5_000;
/**
 * Appends are reported to the parent at most this often: a message per append would wake
 * the origin's process (the parent) once per frame, work no real origin does, and on a
 * two-core machine that extra wakeup shows up in the very latency being measured.
 */
const REPORT_EVERY_MS = 20;

function send(message: FromPeer): void {
  process.send?.(message);
}

/** Groups one append's foreign events by chat. */
function report(node: TrellisNode, events: StoredEvent[]): AppendReport | undefined {
  const atMs = sharedNowMs();
  const byChat = new Map<string, number[]>();
  for (const event of events) {
    if (event.origin === node.id) continue;
    const seqs = byChat.get(event.chatId) ?? [];
    seqs.push(event.seq);
    byChat.set(event.chatId, seqs);
  }
  if (byChat.size === 0) return undefined;
  return { atMs, chats: [...byChat].map(([chatId, seqs]) => ({ chatId, seqs })) };
}

/** Collects reports and sends what it holds every REPORT_EVERY_MS, and before any other answer. */
class ReportBatcher {
  private pending: AppendReport[] = [];
  private timer: NodeJS.Timeout | undefined;

  add(report: AppendReport): void {
    this.pending.push(report);
    this.timer ??= setTimeout(() => this.flush(), REPORT_EVERY_MS);
  }

  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.length === 0) return;
    send({ type: 'appended', reports: this.pending });
    this.pending = [];
  }
}

function exitAfterStopping(node: TrellisNode | undefined, code: number): void {
  setTimeout(() => process.exit(code), STOP_LIMIT_MS).unref();
  void (node?.stop() ?? Promise.resolve()).catch(() => undefined).finally(() => process.exit(code));
}

async function main(): Promise<void> {
  await cryptoReady();
  let node: TrellisNode | undefined;
  const reports = new ReportBatcher();
  let storeTime: AppendTime = { ms: 0, appends: 0 };
  // The parent going away (even killed) closes the IPC channel: never outlive it.
  process.once('disconnect', () => exitAfterStopping(node, 0));
  process.on('message', (message: ToPeer) => {
    if (message.type === 'stop') exitAfterStopping(node, 0);
    if (message.type === 'cpu') {
      // Every append so far is reported before the answer, so the parent's tally is complete at this point.
      reports.flush();
      // CPU time first: the collection below is the bench's work, not the node's.
      const usedMs = cpuMs();
      // Memory after a full collection, so the figure is what the process holds, not garbage not yet collected.
      (globalThis as { gc?: () => void }).gc?.();
      send({ type: 'cpu', cpuMs: usedMs, rssBytes: process.memoryUsage.rss(), store: { ...storeTime } });
    }
  });
  const start = await new Promise<ToPeer>((resolve) => process.once('message', resolve));
  if (start.type !== 'start') return;
  const config = parseConfig(start.config, 'bench peer');
  const { store, time } = await openTimedStore(config);
  storeTime = time;
  node = await TrellisNode.start(config, { store, logger: createLogger('silent') });
  const started = node;
  if (start.report) {
    started.on('appended', (events: StoredEvent[]) => {
      const appended = report(started, events);
      if (appended) reports.add(appended);
    });
  }
  send({ type: 'ready', port: started.port });
}

main().catch((error) => {
  send({ type: 'failed', message: error instanceof Error ? error.message : String(error) });
  process.exit(1);
});
