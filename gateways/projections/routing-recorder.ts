import type { LinkEnd, LinkSession, Logger, TrellisNode } from '../../router/index.js';
import type { EventStore } from '../../store/index.js';
import type { RoutingRecord } from '../../proto/gen/trellis/v1/projection.js';
import { encodeRoutingChange } from './records.js';
import { ROUTING_OUTBOX_TOPIC } from './topics.js';

/** Changes waiting to be written; past it the oldest are dropped (and counted in a warning). */
export const ROUTING_PENDING_MAX = 10_000;
/** Moves per record: a topology change of thousands of destinations becomes several records. */
export const ROUTE_MOVES_PER_RECORD_MAX = 2_048;
/** The outbox keeps at most this many records (a relay deletes what it published before that). */
export const OUTBOX_ROWS_KEPT = 100_000;
/** The retention bound is applied after this many records are written. */
const TRIM_EVERY_RECORDS = 1_000;

interface RouteChange {
  destination: string;
  from: string | undefined;
  to: string | undefined;
}

export type RoutingNode = Pick<TrellisNode, 'id' | 'store' | 'on' | 'off' | 'link'>;

/**
 * Writes the node's link and route changes to the outbox as they happen (the node emits
 * 'link-up', 'link-down' and 'routes-changed'), in order, one statement per group of
 * changes that came in together. One per node, shared by whatever publishes them
 * (routingRecorder), so each change is written once.
 */
export class RoutingRecorder {
  private pending: RoutingRecord['change'][] = [];
  private pendingAtMs: number[] = [];
  private writing: Promise<void> = Promise.resolve();
  private scheduled = false;
  private dropped = 0;
  private sinceTrim = 0;
  private users = 0;
  private readonly listeners = new Set<() => void>();

  private readonly onUp = (session: LinkSession) => this.add({ $case: 'link', value: { peerId: session.peerId, up: true, code: '' } });
  private readonly onDown = (session: LinkSession, end: LinkEnd) => {
    // A link replaced by a newer one ends after the newer one is up: not a change.
    if (end.code === 'duplicate-link' || this.node.link(session.peerId)) return;
    this.add({ $case: 'link', value: { peerId: session.peerId, up: false, code: end.code } });
  };
  private readonly onRoutes = (changes: RouteChange[]) => {
    for (let first = 0; first < changes.length; first += ROUTE_MOVES_PER_RECORD_MAX) {
      const moves = changes.slice(first, first + ROUTE_MOVES_PER_RECORD_MAX).map((c) => ({ destination: c.destination, fromHop: c.from ?? '', toHop: c.to ?? '' }));
      this.add({ $case: 'routes', value: { moves } });
    }
  };

  constructor(
    private readonly node: RoutingNode,
    private readonly log: Logger,
    private readonly nowMs: () => number = Date.now,
  ) {}

  /** Starts recording (at the first user) and calls `onWritten` after each write. */
  attach(onWritten: () => void): void {
    this.listeners.add(onWritten);
    if (this.users++ > 0) return;
    this.node.on('link-up', this.onUp);
    this.node.on('link-down', this.onDown);
    this.node.on('routes-changed', this.onRoutes);
  }

  /** Stops calling `onWritten`; the last user stops recording, after writing what is pending. */
  async detach(onWritten: () => void): Promise<void> {
    if (!this.listeners.delete(onWritten)) return;
    if (--this.users > 0) return;
    this.node.off('link-up', this.onUp);
    this.node.off('link-down', this.onDown);
    this.node.off('routes-changed', this.onRoutes);
    this.flush();
    await this.writing;
  }

  private add(change: RoutingRecord['change']): void {
    this.pending.push(change);
    this.pendingAtMs.push(this.nowMs());
    if (this.pending.length > ROUTING_PENDING_MAX) {
      this.pending.shift();
      this.pendingAtMs.shift();
      this.dropped += 1;
    }
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const records = this.pending.map((change, index) => ({ topic: ROUTING_OUTBOX_TOPIC, key: this.node.id, payload: encodeRoutingChange(this.pendingAtMs[index]!, change) }));
    this.pending = [];
    this.pendingAtMs = [];
    this.writing = this.writing.then(() => this.write(records));
  }

  private async write(records: Parameters<EventStore['enqueueOutbox']>[0]): Promise<void> {
    try {
      if (this.dropped > 0) this.log.warn({ dropped: this.dropped }, 'routing records dropped: more changes waited than the recorder holds');
      this.dropped = 0;
      await this.node.store.enqueueOutbox(records);
      this.sinceTrim += records.length;
      if (this.sinceTrim >= TRIM_EVERY_RECORDS) {
        this.sinceTrim = 0;
        await this.node.store.trimOutbox(0, OUTBOX_ROWS_KEPT);
      }
    } catch (error) {
      this.log.warn({ err: error instanceof Error ? error.message : String(error), records: records.length }, 'routing records not written to the outbox');
      return;
    }
    for (const listener of this.listeners) listener();
  }
}

const recorders = new WeakMap<object, RoutingRecorder>();

/** The node's one routing recorder. */
export function routingRecorder(node: RoutingNode, log: Logger): RoutingRecorder {
  let recorder = recorders.get(node);
  if (!recorder) {
    recorder = new RoutingRecorder(node, log);
    recorders.set(node, recorder);
  }
  return recorder;
}
