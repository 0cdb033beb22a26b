import { AppendTail, type Logger, type TrellisNode } from '../../router/index.js';
import type { StoredEvent } from '../../store/index.js';
import { Relay, type RecordSink } from './relay.js';
import { routingRecorder, type RoutingRecorder } from './routing-recorder.js';
import { ChatEventSource, JournalSource, RoutingSource } from './sources.js';

/** At stop, how long the relays may take to publish what is stored (node-stopped included), then the publish in flight. */
export const STOP_DRAIN_MS = 3_000;
export const STOP_IN_FLIGHT_MS = 2_000;

export type PublishedNode = Pick<TrellisNode, 'id' | 'store' | 'on' | 'off' | 'link' | 'audit'>;

export interface PublisherOptions {
  sink: RecordSink;
  /** Names the relays' cursors (`<prefix>:chat-events`, `:journal`, `:routing`): a new bus or prefix starts from the beginning. */
  cursorPrefix: string;
  /** Where the records go, for the node-started journal entry (no secrets). */
  describe: string;
  log: Logger;
  /**
   * Replicas of one server: the others append too, so the relay reads every batch from the
   * store (their appends reach it by the relay's poll), never from this process's appends.
   */
  replicated?: boolean;
}

/**
 * Publishes a node's projections through three relays, each with its own cursor: the
 * event log (every stored event, to chat-events), the audit journal (admin-events and
 * system-events) and the outbox (routing). The log and the journal are outboxes
 * already: written by the node when the change happens, in order, so publishing adds no
 * statement to the node's append path. Journals node-started and node-stopped.
 */
export class ProjectionPublisher {
  /** The node's latest appends, so the chat-events relay does not read back what was just written; none for replicas (others append too). */
  private readonly recent: AppendTail | undefined;
  readonly chatEvents: Relay;
  readonly journal: Relay;
  readonly routing: Relay;
  private readonly recorder: RoutingRecorder;
  private stopped = false;

  private readonly onAppended = (events: StoredEvent[]) => {
    for (const event of events) this.recent?.push(event);
    this.chatEvents.wake();
  };
  private readonly onRoutingWritten = () => this.routing.wake();
  private readonly onLinkChange = () => this.journal.wake();

  private constructor(
    private readonly node: PublishedNode,
    private readonly options: PublisherOptions,
  ) {
    const { sink, cursorPrefix, log } = options;
    this.recent = options.replicated ? undefined : new AppendTail();
    const relay = (name: string, source: ConstructorParameters<typeof Relay>[0]['source'], onSaved?: (position: number) => Promise<void>) =>
      new Relay({ cursorName: `${cursorPrefix}:${name}`, source, sink, store: node.store, log, ...(onSaved ? { onSaved } : {}) });
    this.chatEvents = relay('chat-events', new ChatEventSource(node.store, node.id, this.recent));
    this.journal = relay('journal', new JournalSource(node.store, node.id));
    // What the routing relay published leaves the outbox.
    this.routing = relay('routing', new RoutingSource(node.store, node.id), async (position) => void (await node.store.trimOutbox(position, Number.MAX_SAFE_INTEGER)));
    this.recorder = routingRecorder(node, log);
  }

  static async start(node: PublishedNode, options: PublisherOptions): Promise<ProjectionPublisher> {
    const publisher = new ProjectionPublisher(node, options);
    await publisher.begin();
    return publisher;
  }

  private async begin(): Promise<void> {
    // Listening first, then reading the head: every later append reaches the tail.
    this.node.on('appended', this.onAppended);
    this.recent?.cover(await this.node.store.lastLocalSeq());
    this.recorder.attach(this.onRoutingWritten);
    this.node.on('link-up', this.onLinkChange);
    this.node.on('link-down', this.onLinkChange);
    await Promise.all([this.chatEvents.start(), this.journal.start(), this.routing.start()]);
    await this.node.audit({ kind: 'node-started', detail: `node started; publishing projections to ${this.options.describe}` });
    this.journal.wake();
    this.options.log.info({ to: this.options.describe, from: { chatEvents: this.chatEvents.publishedPosition, journal: this.journal.publishedPosition } }, 'publishing projections');
  }

  /**
   * Journals node-stopped, publishes what is stored (bounded by STOP_DRAIN_MS), and stops
   * the relays. Call before the node stops: its store must still be open.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.recorder.detach(this.onRoutingWritten);
    this.node.off('link-up', this.onLinkChange);
    this.node.off('link-down', this.onLinkChange);
    await this.node.audit({ kind: 'node-stopped', detail: 'node stopping; its links go down' }).catch(() => undefined);
    const relays = [this.chatEvents, this.journal, this.routing];
    const drained = await Promise.all(relays.map((relay) => relay.drain(STOP_DRAIN_MS).catch(() => false)));
    if (drained.some((done) => !done)) this.options.log.warn('stopping with records not yet published; they are published at the next start');
    await Promise.all(relays.map((relay) => relay.stop(STOP_IN_FLIGHT_MS)));
    this.node.off('appended', this.onAppended);
  }
}
