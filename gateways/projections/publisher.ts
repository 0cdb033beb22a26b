import { AppendTail, askAgainMs, renewEveryMs, type LinkLeases, type Logger, type TrellisNode } from '../../router/index.js';
import { Pause } from './pause.js';
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
   * Replicas of one server: the relays run only in the replica holding the
   * PUBLISHER_LEASE among the server's leases, so each record is published by one of
   * them; another takes over within the lease time when it goes. The others append too,
   * so the relays read every batch from the store, never from this process's appends.
   */
  leases?: LinkLeases;
}

/** The lease, among a server's link leases, that says which replica publishes (no server id looks like it). */
export const PUBLISHER_LEASE = 'projection-publisher';

/** The three relays of one stint of publishing: made afresh each time, they start from the stored cursors. */
class Relays {
  readonly chatEvents: Relay;
  readonly journal: Relay;
  readonly routing: Relay;

  constructor(node: PublishedNode, options: PublisherOptions, recent: AppendTail | undefined) {
    const { sink, cursorPrefix, log } = options;
    const relay = (name: string, source: ConstructorParameters<typeof Relay>[0]['source'], onSaved?: (position: number) => Promise<void>) =>
      new Relay({ cursorName: `${cursorPrefix}:${name}`, source, sink, store: node.store, log, ...(onSaved ? { onSaved } : {}) });
    this.chatEvents = relay('chat-events', new ChatEventSource(node.store, node.id, recent));
    this.journal = relay('journal', new JournalSource(node.store, node.id));
    // What the routing relay published leaves the outbox.
    this.routing = relay('routing', new RoutingSource(node.store, node.id), async (position) => void (await node.store.trimOutbox(position, Number.MAX_SAFE_INTEGER)));
  }

  get all(): Relay[] {
    return [this.chatEvents, this.journal, this.routing];
  }

  /** Publishes what is stored (for at most `drainMs`; says whether all of it was), then stops. */
  async stop(drainMs: number): Promise<boolean> {
    const drained = drainMs > 0 && (await Promise.all(this.all.map((relay) => relay.drain(drainMs).catch(() => false)))).every(Boolean);
    await Promise.all(this.all.map((relay) => relay.stop(STOP_IN_FLIGHT_MS)));
    return drained;
  }
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
  /** While this process publishes (always without a lease; while it holds it with one). */
  private relays: Relays | undefined;
  private readonly recorder: RoutingRecorder;
  private stopped = false;
  private readonly leasePause = new Pause(() => this.stopped);
  private leaseLoop: Promise<void> | undefined;

  private readonly onAppended = (events: StoredEvent[]) => {
    for (const event of events) this.recent?.push(event);
    this.relays?.chatEvents.wake();
  };
  private readonly onRoutingWritten = () => this.relays?.routing.wake();
  private readonly onLinkChange = () => this.relays?.journal.wake();

  private constructor(
    private readonly node: PublishedNode,
    private readonly options: PublisherOptions,
  ) {
    this.recent = options.leases ? undefined : new AppendTail();
    // Every replica records its own links' changes into the outbox; the publishing one sends them on.
    this.recorder = routingRecorder(node, options.log);
  }

  static async start(node: PublishedNode, options: PublisherOptions): Promise<ProjectionPublisher> {
    const publisher = new ProjectionPublisher(node, options);
    await publisher.begin();
    return publisher;
  }

  /** True while this process is the one publishing. */
  get publishing(): boolean {
    return this.relays !== undefined;
  }

  private async begin(): Promise<void> {
    // Listening first, then reading the head: every later append reaches the tail.
    this.node.on('appended', this.onAppended);
    this.recent?.cover(await this.node.store.lastLocalSeq());
    this.recorder.attach(this.onRoutingWritten);
    this.node.on('link-up', this.onLinkChange);
    this.node.on('link-down', this.onLinkChange);
    await this.node.audit({ kind: 'node-started', detail: `node started; publishing projections to ${this.options.describe}` });
    if (this.options.leases) this.leaseLoop = this.publishWhileLeased(this.options.leases);
    else await this.startRelays();
  }

  private async startRelays(): Promise<void> {
    const relays = new Relays(this.node, this.options, this.recent);
    await Promise.all(relays.all.map((relay) => relay.start()));
    this.relays = relays;
    relays.journal.wake();
    this.options.log.info({ to: this.options.describe, from: { chatEvents: relays.chatEvents.publishedPosition, journal: relays.journal.publishedPosition } }, 'publishing projections');
  }

  /** Asks for the publisher lease until it is ours, publishes while it stays ours, and asks again after losing it. */
  private async publishWhileLeased(lease: LinkLeases): Promise<void> {
    let failing = false;
    while (!this.stopped) {
      const token = await lease.acquire(PUBLISHER_LEASE).then(
        (token) => {
          if (failing) this.options.log.info('asking for the publisher lease works again');
          failing = false;
          return token;
        },
        (error: Error) => {
          // Once per outage: the ask is repeated every retry until Redis answers.
          if (!failing) this.options.log.warn({ err: error.message }, 'asking for the publisher lease failed; asking again until Redis answers');
          failing = true;
          return undefined;
        },
      );
      if (token === undefined) await this.leasePause.for(askAgainMs(lease.ttlMs));
      else await this.publishWhileHeld(lease, token);
    }
  }

  /** Publishes until the lease is lost (stopping at once) or the publisher stops (draining, and giving the lease up). */
  private async publishWhileHeld(lease: LinkLeases, token: number): Promise<void> {
    let held = true;
    try {
      await this.startRelays();
      while (held && !this.stopped) {
        await this.leasePause.for(renewEveryMs(lease.ttlMs));
        if (!this.stopped) held = await lease.renew(PUBLISHER_LEASE, token).catch(() => false);
      }
    } catch (error) {
      this.options.log.error({ err: (error as Error).message }, 'publishing projections failed to start; giving the lease up');
    }
    if (!held) {
      // Another replica may publish by now: stop at once (what was in flight may go out twice; consumers de-duplicate by event id).
      this.options.log.warn({ replica: lease.replicaId }, 'lost the publisher lease; stopped publishing');
      await this.stopRelays(0);
      return;
    }
    await this.stopRelays(STOP_DRAIN_MS);
    await lease.release(PUBLISHER_LEASE, token).catch(() => undefined);
    // A failed start: wait before asking again, as for a lease held elsewhere.
    if (!this.stopped) await this.leasePause.for(askAgainMs(lease.ttlMs));
  }

  /** Stops publishing, first publishing what is stored for at most `drainMs` (none: at once). */
  private async stopRelays(drainMs: number): Promise<void> {
    const relays = this.relays;
    this.relays = undefined;
    if (relays && !(await relays.stop(drainMs)) && drainMs > 0) this.options.log.warn('stopping with records not yet published; they are published at the next start');
  }

  /**
   * Journals node-stopped, publishes what is stored (bounded by STOP_DRAIN_MS), and stops
   * the relays (with a lease: and gives it up). Call before the node stops: its store must still be open.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    await this.recorder.detach(this.onRoutingWritten);
    this.node.off('link-up', this.onLinkChange);
    this.node.off('link-down', this.onLinkChange);
    await this.node.audit({ kind: 'node-stopped', detail: 'node stopping; its links go down' }).catch(() => undefined);
    this.stopped = true;
    this.leasePause.wake();
    if (this.leaseLoop) await this.leaseLoop;
    else await this.stopRelays(STOP_DRAIN_MS);
    this.node.off('appended', this.onAppended);
  }
}
