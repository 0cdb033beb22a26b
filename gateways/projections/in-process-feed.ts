import type { Logger, TrellisNode } from '../../router/index.js';
import { Deduplicator } from './dedup.js';
import type { Delivered, ProjectionFeed, StartAt, SubscribeOptions, Subscription } from './feed.js';
import { chainOf, decodeRecord } from './records.js';
import { retryDelayMs } from './relay.js';
import { routingRecorder, type RoutingRecorder } from './routing-recorder.js';
import { ChatEventSource, JournalSource, RoutingSource, type ProjectionSource } from './sources.js';
import type { ProjectionName } from './topics.js';
import { Pause } from './pause.js';

/** Records handed to a subscriber at once, at most. */
export const FEED_BATCH_RECORDS_MAX = 1_000;
/** With nothing new, a subscription looks again after this long even if nothing woke it. */
export const FEED_POLL_MS = 250;

export type FeedNode = Pick<TrellisNode, 'id' | 'store' | 'on' | 'off' | 'link'>;

/**
 * The projections read straight from the node's store, for a server without Kafka: the
 * log (woken by the node's 'appended'), the journal and the outbox's routing records. A
 * subscription's position is kept in the store under its group (projection_cursors,
 * `feed:<projection>:<group>`), as Kafka keeps a consumer group's offsets.
 */
export class InProcessFeed implements ProjectionFeed {
  private readonly recorder: RoutingRecorder;
  private readonly subscriptions = new Set<{ readonly projection: ProjectionName; wake(): void; close(): Promise<void> }>();
  private readonly onRoutingWritten = () => this.wakeAll('routing');

  constructor(
    private readonly node: FeedNode,
    private readonly log: Logger,
  ) {
    // Link and route changes are recorded from now on, so a subscriber that starts later reads them too.
    this.recorder = routingRecorder(node, log);
    this.recorder.attach(this.onRoutingWritten);
  }

  async subscribe<P extends ProjectionName>(options: SubscribeOptions<P>): Promise<Subscription> {
    if (!options.group) throw new Error('a subscription needs a group name');
    const source = this.sourceFor(options.projection);
    const cursorName = `feed:${options.projection}:${options.group}`;
    const after = await this.startAfter(options.from ?? 'earliest', cursorName, source);
    const subscription = new FeedSubscription(options, source, cursorName, after, this.node, this.log, (closed) => this.subscriptions.delete(closed));
    this.subscriptions.add(subscription);
    subscription.start();
    return subscription;
  }

  /** Closes every subscription and stops recording routing changes (for this feed). */
  async close(): Promise<void> {
    await Promise.all([...this.subscriptions].map((subscription) => subscription.close()));
    await this.recorder.detach(this.onRoutingWritten);
  }

  private sourceFor(projection: ProjectionName): ProjectionSource {
    switch (projection) {
      case 'chat-events':
        return new ChatEventSource(this.node.store, this.node.id);
      case 'routing':
        return new RoutingSource(this.node.store, this.node.id);
      case 'admin-events':
      case 'system-events':
        return new JournalSource(this.node.store, this.node.id);
    }
  }

  private async startAfter(from: StartAt, cursorName: string, source: ProjectionSource): Promise<number> {
    if (typeof from === 'object') return Math.max(0, (from.offsets[0] ?? 0) - 1);
    const acknowledged = await this.node.store.projectionCursor(cursorName);
    if (acknowledged !== undefined) return acknowledged;
    return from === 'latest' ? source.head() : 0;
  }

  private wakeAll(projection: ProjectionName): void {
    for (const subscription of this.subscriptions) if (subscription.projection === projection) subscription.wake();
  }
}

class FeedSubscription<P extends ProjectionName> implements Subscription {
  private closed = false;
  private woken = false;
  private readonly pause = new Pause(() => this.closed);
  private loop: Promise<void> | undefined;
  private readonly dedup = new Deduplicator();
  private readonly onAppended = () => this.wake();

  constructor(
    private readonly options: SubscribeOptions<P>,
    private readonly source: ProjectionSource,
    private readonly cursorName: string,
    private after: number,
    private readonly node: FeedNode,
    private readonly log: Logger,
    private readonly onClosed: (subscription: FeedSubscription<P>) => void,
  ) {}

  get projection(): P {
    return this.options.projection;
  }

  start(): void {
    if (this.projection === 'chat-events') this.node.on('appended', this.onAppended);
    this.loop = this.run().catch((error: unknown) => this.log.error({ err: error, feed: this.cursorName }, 'in-process feed stopped'));
  }

  wake(): void {
    this.woken = true;
    this.pause.wake();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.node.off('appended', this.onAppended);
    this.pause.wake();
    await this.loop;
    this.onClosed(this);
  }

  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.closed) {
      this.woken = false;
      try {
        const moved = await this.deliverNext();
        attempt = 0;
        if (!moved && !this.woken) await this.pause.for(FEED_POLL_MS);
      } catch (error) {
        if (this.closed) return;
        this.log.warn({ feed: this.cursorName, err: error instanceof Error ? error.message : String(error) }, 'subscriber failed a batch; handing it over again');
        await this.pause.for(retryDelayMs(attempt++), false);
      }
    }
  }

  /** Reads the next batch, hands over what is new, and moves (and keeps) the position; says whether it moved. */
  private async deliverNext(): Promise<boolean> {
    const batch = await this.source.read(this.after, FEED_BATCH_RECORDS_MAX);
    if (batch.position <= this.after) return false;
    const projection = this.projection;
    const delivered: Array<Delivered<P>> = batch.records
      .filter((record) => record.projection === projection)
      .map((record) => ({ projection, partition: 0, offset: record.position, key: record.key, record: decodeRecord(projection, record.value) }));
    const { fresh, commit } = this.dedup.select(delivered, (d) => chainOf(projection, d.record));
    if (fresh.length > 0 && !this.closed) await this.options.onRecords(fresh);
    if (this.closed) return false;
    commit();
    this.after = batch.position;
    await this.node.store.saveProjectionCursor(this.cursorName, this.after);
    return true;
  }
}
