import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type * as grpc from '@grpc/grpc-js';
import { chainEvent, checkDraftShape, identityFromPem, MEMBERSHIP_KINDS, type ChainPosition, type EventDraft, type Identity, type TrustError } from '../crypto/index.js';
import { EventKind, type Event } from '../proto/gen/trellis/v1/event.js';
import type { Frame, Reachability, ServerRecord } from '../proto/gen/trellis/v1/link.js';
import { openStore, type AuditEntry, type EventStore, type StoredEvent } from '../store/index.js';
import { reconnectDelayMs } from './backoff.js';
import { ChainHeads } from './chain-heads.js';
import { HybridClock, type Now } from './clock.js';
import { storeLocation, upstreamOf, type NodeConfig, type TrustConfig } from './config.js';
import { LinkFailure, type LinkErrorCode } from './errors.js';
import { errorFrame, FrameChannel } from './frame-channel.js';
import { acceptHandshake, dialHandshake, type HandshakeContext, type LinkClaim, type LinkOpening } from './handshake.js';
import { HandshakeSlots, trustKeepsSlot } from './handshake-slots.js';
import { AuditJournal } from './audit.js';
import { HeldEvents } from './held-events.js';
import { Inbound } from './inbound.js';
import { LinkSession, type LinkEnd } from './link.js';
import { createLogger, type Logger } from './logger.js';
import { Outbound } from './outbound.js';
import { FailureRateLimiter } from './rate-limit.js';
import { linkColour, NodeInspector, type LinkColour } from './inspect.js';
import { DELIVERY_FLUSH_MS, DeliveryCursors } from './queues/delivery-cursors.js';
import { Routing, ServerDirectory, type PathRefusals, type RouteChange, type ServerEntry } from './routing/index.js';
import { LinkOwnership, type LinkLeases } from './replicas.js';
import { CommitPacer, Notifier, SerialQueue } from './serial.js';
import { peerHost, Transport } from './transport.js';

/** Local posts committed in one transaction at most. */
export const LOCAL_BATCH_EVENTS_MAX = 512;
/**
 * The least time between the starts of two of this node's commits (router/serial.ts,
 * CommitPacer). At 1,000 events/s over one hop, alternating runs of `BENCH_ONLY=one-hop
 * npm run bench` with 2 ms and without gave a lower paced p50 in every pair and no loss
 * of throughput: fewer commits, and a commit costs the engine about as much CPU for one
 * event as for several (the bench's one-event commit CPU against its batch appends).
 */
export const COMMIT_SPACING_MS = 2;
const SHUTDOWN_GRACE_MS = 2_000;

export interface LinkStatus {
  serverId: string;
  name: string;
  endpoint?: string;
  /** domain.md: green linked, purple blocked, red configured but down. */
  status: LinkColour;
}

export interface NodeOptions {
  logger?: Logger;
  now?: Now;
  /** An already-open store (tests, several nodes in one process); else the config's. */
  store?: EventStore;
  /**
   * Replicas of one server sharing one PostgreSQL: leases on the trust links, so each link
   * is owned by one replica at a time. Absent: this node is the server's only process.
   */
  leases?: LinkLeases;
}

/** How often a replica looks for what the other replicas appended, to wake the links it owns. */
export const REPLICA_POLL_MS = 20;

export class PostError extends Error {
  readonly code = 'invalid-draft';
  constructor(message: string) {
    super(message);
    this.name = 'PostError';
  }
}

interface QueuedPost {
  draft: EventDraft;
  resolve(event: Event): void;
  reject(error: unknown): void;
}

/** A device's draft must make an event a receiver would accept (crypto's shape rules) and name its members. */
function checkDraft(draft: EventDraft): void {
  if (!EventKind[draft.kind] || draft.kind === EventKind.EVENT_KIND_UNSPECIFIED) throw new PostError(`kind ${draft.kind} is not an event kind`);
  if (MEMBERSHIP_KINDS.has(draft.kind) && !draft.members?.length) throw new PostError('a membership event must list the members');
  if (!draft.senderUser || !draft.senderDevice) throw new PostError('sender user and device are required');
  try {
    checkDraftShape(draft);
  } catch (error) {
    throw new PostError((error as Error).message);
  }
}

/**
 * One Trellis node: the store, the chains this server originates, its trust links
 * (accepted on `listen`, dialled to each enabled trust's endpoint), and what it tells
 * operators. Emits 'appended' (StoredEvent[]), 'link-up' and 'link-down' (LinkSession),
 * 'link-error' (peer id, TrustError | LinkFailure | Error) for the dialling side.
 */
export class TrellisNode extends EventEmitter {
  readonly id: string;
  readonly store: EventStore;
  private readonly identity: Identity;
  private readonly log: Logger;
  private readonly now: Now;
  private readonly clock: HybridClock;
  private readonly serial = new SerialQueue();
  private readonly pacer = new CommitPacer(COMMIT_SPACING_MS);
  private readonly heads: ChainHeads;
  private readonly appended = new Notifier();
  private readonly inbound: Inbound;
  private readonly outbound: Outbound;
  private readonly limiter: FailureRateLimiter;
  private readonly transport: Transport;
  private readonly trusts = new Map<string, TrustConfig>();
  private readonly links = new Map<string, LinkSession>();
  /** Keys the administrator pinned in the config (pinned_servers), for servers we hold no trust with. */
  private readonly configPins = new Map<string, Uint8Array>();
  /** Trusts' keys pinned at their first handshake (read from the store at start): a pin never changes. */
  private readonly handshakePins = new Map<string, Uint8Array>();
  /** A directory change waits for the end of the turn: its paths are judged again once for all of it. */
  private rejudgeScheduled = false;
  readonly directory: ServerDirectory;
  readonly routing: Routing;
  private readonly delivery: DeliveryCursors;
  /** What operators read: the graph, a chat's routes, link counters and queues. */
  readonly inspect: NodeInspector;
  private flushTimer: NodeJS.Timeout | undefined;
  /** Replicas only: the links this process owns, and the poll for what the others appended. */
  private readonly ownership: LinkOwnership | undefined;
  private replicaPoll: NodeJS.Timeout | undefined;
  private lastSeenLocalSeq = 0;
  private announceScheduled = false;
  /** Handshakes that hold a peer's link slot but are not links yet (see claimLink). */
  private readonly claims = new Map<string, LinkClaim>();
  private readonly dialling = new Map<string, AbortController>();
  private readonly localQueue: QueuedPost[] = [];
  private localFlushScheduled = false;
  /** Accepted streams before and during their handshake, bounded (router/handshake-slots.ts). */
  private readonly handshakeSlots = new HandshakeSlots((claimedId, address) => trustKeepsSlot(this.trusts.get(claimedId), address));
  /** Links that ended while a frame of theirs was still being stored (see claimLink). */
  private readonly settling = new Map<string, Promise<void>>();
  private readonly journal: AuditJournal;
  private server: grpc.Server | undefined;
  private stopping = false;
  port = 0;

  private constructor(readonly config: NodeConfig, store: EventStore, options: NodeOptions) {
    super();
    this.id = config.server.id;
    this.store = store;
    this.log = (options.logger ?? createLogger(config.log_level)).child({ node: config.server.name });
    this.now = options.now ?? Date.now;
    this.clock = new HybridClock(this.now, config.link.max_clock_skew_ms);
    this.journal = new AuditJournal((entry) => this.writeAudit(entry), this.now);
    this.identity = identityFromPem(readIdentityFile(config.identity_key_file));
    // Replicas: another process may append to any chain, so heads are read from the store each time.
    this.heads = new ChainHeads(store, { cached: !options.leases });
    this.ownership = options.leases && new LinkOwnership(options.leases, store, this.log, (peerId, reason) => this.leaseLost(peerId, reason));
    this.limiter = new FailureRateLimiter(this.now);
    this.transport = new Transport(config);
    for (const trust of config.trusts) this.trusts.set(trust.server_id, trust);
    for (const pinned of config.pinned_servers) this.configPins.set(pinned.server_id, Buffer.from(pinned.identity_key, 'base64'));
    const transit = config.server.kind !== 'CTS';
    this.routing = new Routing({
      selfId: this.id,
      transit,
      trusts: () => this.trusts.values(),
      trustOf: (serverId) => this.trusts.get(serverId),
      isUp: (peerId) => this.link(peerId) !== undefined,
      believed: (serverId) => this.directory.get(serverId),
    });
    this.directory = new ServerDirectory(
      this.identity,
      { id: this.id, kind: config.server.kind, name: config.server.name, upstream: upstreamOf(config)?.server_id ?? '' },
      this.now(),
      { store, trustedKey: (id) => this.trustedKey(id), trustOf: (id) => this.trusts.get(id), audit: (entry, key) => this.audit(entry, key), now: this.now },
    );
    this.delivery = new DeliveryCursors(store);
    this.inspect = new NodeInspector({
      self: { id: this.id, name: config.server.name, kind: config.server.kind, transit },
      store,
      routing: this.routing,
      directory: this.directory,
      delivery: this.delivery,
      trusts: () => this.trusts.values(),
      linkStats: (peerId) => this.link(peerId)?.stats,
      now: this.now,
    });
    this.outbound = new Outbound({
      selfId: this.id,
      identity: this.identity,
      store,
      transit,
      routes: this.routing,
      rewindAll: (toLocalSeq) => {
        for (const session of this.links.values()) session.rewind(toLocalSeq);
      },
      replicated: this.ownership !== undefined,
    });
    this.inbound = new Inbound({
      store,
      heads: this.heads,
      serial: this.serial,
      clock: this.clock,
      held: new HeldEvents({
        eventsPerChain: config.link.held_events_per_chain,
        bytesPerChain: config.link.held_bytes_per_chain,
        eventsPerPeer: config.link.held_events_per_peer,
        bytesPerPeer: config.link.held_bytes_per_peer,
      }),
      originKey: (origin) => this.originKey(origin),
      onAppended: (events) => this.onAppended(events),
      onReforwarded: (events) => this.outbound.reforwarded(events),
      audit: (entry, key) => this.audit(entry, key),
      fenceOf: (peerId) => this.ownership?.fenceOf(peerId),
      forwardRoutes: {
        selfId: this.id,
        runsThrough: (destination, peerId) => this.routing.runsThrough(destination, peerId),
        knows: (serverId) => this.trusts.has(serverId) || this.directory.get(serverId) !== undefined,
      },
    });
  }

  static async start(config: NodeConfig, options: NodeOptions = {}): Promise<TrellisNode> {
    const store = options.store ?? (await openStore(storeLocation(config.store, process.env)));
    let node: TrellisNode | undefined;
    try {
      node = new TrellisNode(config, store, options);
      await node.listen();
      return node;
    } catch (error) {
      await node?.stop().catch(() => undefined);
      if (!node) await store.close().catch(() => undefined);
      throw error;
    }
  }

  get publicKey(): Uint8Array {
    return this.identity.publicKey;
  }

  private async listen(): Promise<void> {
    await this.outbound.load();
    await this.delivery.load();
    for (const trust of this.trusts.values()) await this.loadHandshakePin(trust.server_id);
    await this.directory.load();
    await this.inbound.load();
    this.flushTimer = setInterval(() => void this.delivery.flush().catch((error) => this.log.warn({ err: error }, 'delivery cursors not written')), DELIVERY_FLUSH_MS);
    this.flushTimer.unref();
    if (this.ownership) this.watchOtherReplicas();
    const { server, port, widenedWindow } = await this.transport.listen(this.config.listen, (call) => void this.accept(call));
    this.server = server;
    this.port = port;
    if (!widenedWindow) this.log.warn('could not widen the HTTP/2 receive window of accepted links (grpc-js changed?); they run at 64 KiB');
    if (!this.transport.secure) {
      const note = 'trust links run without TLS';
      if (this.config.allow_plaintext) this.log.warn({ listen: this.config.listen }, `${note}: allow_plaintext is set; tokens stay secret but traffic metadata is visible`);
      else this.log.info({ listen: this.config.listen }, `${note} (loopback only)`);
    }
    this.log.info({ listen: this.config.listen, port, server: this.id, kind: this.config.server.kind, trusts: this.trusts.size, store: this.store.description }, 'node listening');
    for (const trust of this.trusts.values()) this.startDialling(trust);
  }

  /** Posts a device's event as this server's next in the chat; resolves once it is durable. */
  post(draft: EventDraft): Promise<Event> {
    if (this.stopping) return Promise.reject(new PostError('node is stopping'));
    checkDraft(draft);
    return new Promise((resolve, reject) => {
      this.localQueue.push({ draft, resolve, reject });
      this.scheduleLocalFlush();
    });
  }

  private scheduleLocalFlush(): void {
    if (this.localFlushScheduled) return;
    this.localFlushScheduled = true;
    void this.pacer.ready().then(() => this.serial.run(() => this.flushLocal()));
  }

  /** Group commit: every post queued meanwhile goes into one transaction. */
  private async flushLocal(): Promise<void> {
    this.localFlushScheduled = false;
    const posts = this.localQueue.splice(0, LOCAL_BATCH_EVENTS_MAX);
    if (this.localQueue.length > 0) this.scheduleLocalFlush();
    if (posts.length === 0) return;
    const events: Event[] = [];
    try {
      const stored = await this.appendPosts(posts, events);
      posts.forEach((post, index) => post.resolve(events[index]!));
      this.onAppended(stored);
    } catch (error) {
      for (const event of events) this.heads.forget(event.chatId, this.id);
      for (const post of posts) post.reject(error);
    }
  }

  /**
   * Chains the posts on their heads and appends them; fills `events` in post order. One
   * process chains on the heads it keeps; replicas chain inside the store's transaction on
   * the heads stored then, so two replicas never take the same seq of a chain.
   */
  private async appendPosts(posts: readonly QueuedPost[], events: Event[]): Promise<StoredEvent[]> {
    const chainOn = (head: (chatId: string) => ChainPosition | undefined) => {
      events.length = 0;
      const next = new Map<string, ChainPosition | undefined>();
      for (const { draft } of posts) {
        const event = chainEvent(this.id, next.has(draft.chatId) ? next.get(draft.chatId) : head(draft.chatId), draft, this.clock.tick());
        next.set(event.chatId, { seq: event.seq, id: event.id });
        events.push(event);
      }
      return events;
    };
    if (this.ownership) {
      const chatIds = [...new Set(posts.map((post) => post.draft.chatId))];
      return this.store.appendOwn(this.id, chatIds, (heads) => chainOn((chatId) => heads.get(chatId)));
    }
    const heads = new Map<string, ChainPosition | undefined>();
    for (const { draft } of posts) if (!heads.has(draft.chatId)) heads.set(draft.chatId, await this.heads.get(draft.chatId, this.id));
    chainOn((chatId) => heads.get(chatId));
    for (const event of events) this.heads.advance(event.chatId, this.id, { seq: event.seq, id: event.id });
    return this.store.append({ events });
  }

  /** Replicas: what the others appended wakes the links this one owns (they read it from the store). */
  private watchOtherReplicas(): void {
    this.replicaPoll = setInterval(() => {
      void this.store.lastLocalSeq().then(
        (seq) => {
          if (seq > this.lastSeenLocalSeq) {
            this.lastSeenLocalSeq = seq;
            this.appended.notify();
          }
        },
        (error: Error) => this.log.warn({ err: error.message }, 'could not read the store for other replicas\' appends'),
      );
    }, REPLICA_POLL_MS);
    this.replicaPoll.unref();
  }

  /** Our lease on a link lapsed (another replica may hold it now): the link ends, and we wait to own it again. */
  private leaseLost(peerId: string, reason: string): void {
    this.links.get(peerId)?.close('lease-lost', reason);
    void this.audit({ kind: 'lease-lost', peer: peerId, detail: reason }, peerId);
  }

  private onAppended(events: StoredEvent[]): void {
    this.inbound.appended(events);
    this.outbound.observe(events);
    this.appended.notify();
    this.emit('appended', events);
  }

  /** An origin's key: ours, the one our own authority holds for it, else the one its believed record carries. */
  private async originKey(origin: string): Promise<Uint8Array | undefined> {
    return origin === this.id ? this.identity.publicKey : (this.trustedKey(origin) ?? this.directory.get(origin)?.identityKey);
  }

  /**
   * The key our own authority holds for a server (architecture.md, "Server directory"): a
   * trust's or pinned_servers' key from the config, else the one pinned at the trust's
   * first handshake. Never a key learnt from a neighbour.
   */
  private trustedKey(serverId: string): Uint8Array | undefined {
    const trust = this.trusts.get(serverId);
    if (trust?.identity_key) return Buffer.from(trust.identity_key, 'base64');
    return this.configPins.get(serverId) ?? (trust ? this.handshakePins.get(serverId) : undefined);
  }

  /** The key the trust's handshake must present: configured, else pinned at its first handshake. */
  private async handshakeKey(serverId: string): Promise<Uint8Array | undefined> {
    return this.trustedKey(serverId) ?? (await this.loadHandshakePin(serverId));
  }

  private async loadHandshakePin(serverId: string): Promise<Uint8Array | undefined> {
    const key = await this.store.pinnedKey(serverId);
    if (key) this.handshakePins.set(serverId, key);
    return key;
  }

  /** A trust's first handshake pins the key it presented; what the directory believed of the server is judged again. */
  private async pinAtHandshake(serverId: string, key: Uint8Array): Promise<void> {
    // Every handshake offers its key; only the first pins one (checkIdentity made sure a later one matches).
    if (this.trustedKey(serverId)) return;
    await this.store.pinKey(serverId, key);
    await this.loadHandshakePin(serverId);
    await this.trustKeyChanged(serverId);
  }

  /** Our own authority now holds (or no longer holds) a server's key: the directory is judged again, and its held events checked. */
  private async trustKeyChanged(serverId: string): Promise<void> {
    const changed = await this.judgeDirectory(() => this.directory.trustChanged(serverId), '');
    for (const entry of changed) await this.inbound.originKnown(entry.id);
    if (this.trustedKey(serverId) && !changed.some((entry) => entry.id === serverId)) await this.inbound.originKnown(serverId);
  }

  /** Journals an entry (and logs it); entries sharing a coalescing key are summarised under a flood. */
  audit(entry: AuditEntry, coalesceKey?: string): Promise<void> {
    return this.journal.record(entry, coalesceKey);
  }

  private async writeAudit(entry: AuditEntry): Promise<void> {
    this.log.info({ audit: entry.kind, peer: entry.peer, code: entry.code }, entry.detail);
    await this.store.audit(entry).catch((error) => this.log.error({ err: error }, 'audit write failed'));
  }

  private handshakeContext(): HandshakeContext {
    return {
      selfId: this.id,
      identity: this.identity,
      timeoutMs: this.config.link.handshake_timeout_ms,
      limiter: this.limiter,
      trustOf: (serverId) => this.trusts.get(serverId),
      pinnedKey: (serverId) => this.handshakeKey(serverId),
      pinKey: (serverId, key) => this.pinAtHandshake(serverId, key),
      claimLink: (peerId, diallerId) => this.claimLink(peerId, diallerId),
      storedLinkSeq: (peerId) => this.store.linkCursor(peerId),
      audit: (entry, key) => this.audit(entry, key),
    };
  }

  private async accept(call: grpc.ServerDuplexStream<Frame, Frame>): Promise<void> {
    const channel = new FrameChannel(call, peerHost(call.getPeer()));
    const address = channel.remoteAddress;
    if (this.stopping) {
      channel.close(errorFrame('shutting-down', 'node is stopping'));
      return;
    }
    const slot = this.handshakeSlots.open(address);
    try {
      const opening = await acceptHandshake({ ...this.handshakeContext(), inbound: slot }, channel);
      this.adopt(channel, opening, opening.peerId);
    } catch (error) {
      this.log.debug({ code: (error as TrustError).code, remote: address }, 'inbound link refused');
    } finally {
      slot.release();
    }
  }

  /**
   * Exactly one link per trust. When both sides dial at once, both keep the link dialled
   * by the lower server id; a redial by the same side replaces its own stale link. The
   * rule is applied to the live link and to a claim still in its handshake alike, so two
   * handshakes can never both win. The link replaced is drained first, so the cursor the
   * new one sends in Welcome covers everything the old one stored.
   */
  private async claimLink(peerId: string, diallerId: string): Promise<LinkClaim> {
    if (this.stopping) throw new LinkFailure('shutting-down', 'node is stopping');
    if (this.ownership && !(await this.ownership.own(peerId))) throw new LinkFailure('not-owner', 'another replica of this server holds this link');
    const existing = this.links.get(peerId);
    const holders = [this.claims.get(peerId)?.diallerId, existing?.isOpen ? existing.diallerId : undefined];
    if (holders.some((holder) => holder !== undefined && !replaces(diallerId, holder))) {
      throw new LinkFailure('duplicate-link', 'a link to this server is already up');
    }
    const claim: LinkClaim = {
      diallerId,
      release: () => {
        if (this.claims.get(peerId) === claim) this.claims.delete(peerId);
      },
    };
    this.claims.set(peerId, claim);
    await existing?.drain('duplicate-link', 'replaced by a newer link');
    // A link that already ended may still be storing its last frame: the cursor read next must include it.
    await this.settling.get(peerId);
    return claim;
  }

  /**
   * Makes a handshaken stream the link to its peer, if its claim still holds the slot and
   * the trust it proved is still the one configured (an administrator may have changed
   * tokens or blocked the trust while the handshake ran).
   */
  private adopt(channel: FrameChannel, opening: LinkOpening, diallerId: string): LinkSession | undefined {
    const refusal: [LinkErrorCode, string] | undefined = this.stopping
      ? ['shutting-down', 'node is stopping']
      : this.trusts.get(opening.peerId) !== opening.trust
        ? ['trust-changed', 'the trust changed during the handshake; dial again']
        : this.claims.get(opening.peerId) !== opening.claim
          ? ['duplicate-link', 'a link to this server is already up']
          : undefined;
    if (refusal) {
      opening.claim.release();
      channel.close(errorFrame(...refusal));
      return undefined;
    }
    this.claims.delete(opening.peerId);
    this.links.get(opening.peerId)?.close('duplicate-link', 'replaced by a newer link');
    const session = new LinkSession(
      {
        tuning: this.config.link,
        logger: this.log,
        now: this.now,
        inbound: this.inbound,
        pacer: this.pacer,
        outbound: this.outbound,
        appended: this.appended,
        transit: this.config.server.kind !== 'CTS',
        audit: (e) => this.audit(e),
        greeting: (peerId) => [this.directoryFrame(this.directory.records()), this.reachabilityFrame(peerId)],
        onDirectory: (peerId, records) => this.onDirectory(peerId, records),
        onReachability: async (peerId, announcement) => this.onReachability(peerId, announcement),
        onAcked: (peerId, batchNo, linkSeq) => this.delivery.acked(peerId, batchNo, linkSeq),
      },
      channel,
      opening,
      diallerId,
    );
    this.links.set(opening.peerId, session);
    this.delivery.linkUp(opening.peerId, opening.peerStoredLinkSeq, this.routing.destinationsVia(opening.peerId), session);
    this.routesChanged();
    session.start();
    void this.audit({ kind: 'link-up', peer: opening.peerId, detail: `link up (dialled by ${diallerId === this.id ? 'us' : 'peer'}), resending from ${opening.peerStoredLinkSeq}` }, opening.peerId);
    this.emit('link-up', session);
    void session.ended.then((end) => this.onLinkEnded(session, end));
    return session;
  }

  private onLinkEnded(session: LinkSession, end: LinkEnd): void {
    if (this.links.get(session.peerId) === session) {
      this.links.delete(session.peerId);
      this.routing.pathsChanged(this.routing.reach.forget(session.peerId));
      this.delivery.linkDown(session.peerId);
      this.routesChanged();
    }
    const settled = session.settled;
    this.settling.set(session.peerId, settled);
    void settled.then(() => {
      if (this.settling.get(session.peerId) === settled) this.settling.delete(session.peerId);
    });
    if (end.code !== 'duplicate-link') void this.audit({ kind: 'link-down', peer: session.peerId, code: end.code, detail: end.message }, session.peerId);
    this.emit('link-down', session, end);
  }

  private startDialling(trust: TrustConfig): void {
    if (!trust.endpoint || trust.status !== 'enabled' || this.dialling.has(trust.server_id) || this.stopping) return;
    const abort = new AbortController();
    this.dialling.set(trust.server_id, abort);
    void this.dialLoop(trust.server_id, abort.signal).finally(() => {
      if (this.dialling.get(trust.server_id)?.signal === abort.signal) this.dialling.delete(trust.server_id);
    });
  }

  private async dialLoop(peerId: string, signal: AbortSignal): Promise<void> {
    const { reconnect_min_ms: minMs, reconnect_max_ms: maxMs } = this.config.link;
    for (let attempt = 0; !signal.aborted; ) {
      const trust = this.trusts.get(peerId);
      if (!trust?.endpoint || trust.status !== 'enabled') return;
      const existing = this.links.get(peerId);
      if (existing?.isOpen) {
        await untilEndedOrAborted(existing.ended, signal);
        attempt = 0;
      } else if (this.ownership && !(await this.ownership.own(peerId).catch(() => false))) {
        // Another replica holds the link: ask again as often as it must renew.
        await sleep(this.ownership.retryMs, undefined, { signal }).catch(() => undefined);
        continue;
      } else if (await this.dialOnce(trust, signal)) attempt = 0;
      else attempt += 1;
      await sleep(reconnectDelayMs(attempt, minMs, maxMs), undefined, { signal }).catch(() => undefined);
    }
  }

  /** One dial; true if a link came up (and has now ended). */
  private async dialOnce(trust: TrustConfig, signal: AbortSignal): Promise<boolean> {
    const { client, call } = this.transport.dial(trust.endpoint!);
    const channel = new FrameChannel(call, trust.endpoint!);
    const onAbort = () => channel.abort();
    signal.addEventListener('abort', onAbort);
    try {
      const opening = await dialHandshake(this.handshakeContext(), channel, trust);
      const session = this.adopt(channel, opening, this.id);
      if (session) await session.ended;
      return session !== undefined;
    } catch (error) {
      if (!signal.aborted) {
        this.log.warn({ peer: trust.server_id, code: (error as TrustError).code }, 'dial failed');
        this.emit('link-error', trust.server_id, error);
      }
      return false;
    } finally {
      signal.removeEventListener('abort', onAbort);
      client.close();
    }
  }

  /**
   * Routes may have moved (a link went up or down, a neighbour announced): each
   * destination that moved is resent, by its new next hop, what its old one had not
   * acknowledged; every neighbour hears what is reachable through us now.
   */
  private routesChanged(): void {
    const changes: RouteChange[] = this.routing.recompute();
    for (const { destination, from, to } of changes) this.delivery.moved(destination, from, to, to ? this.links.get(to) : undefined);
    if (changes.length > 0) {
      this.log.info({ moved: changes.length }, 'routes changed');
      this.appended.notify();
      this.emit('routes-changed', changes);
    }
    this.scheduleAnnouncement();
  }

  /**
   * Reachability updates go out once per turn of the event loop, however many changes came
   * in it, and carry only the destinations that changed: a link's first frame had the whole set.
   */
  private scheduleAnnouncement(): void {
    if (this.announceScheduled) return;
    this.announceScheduled = true;
    setImmediate(() => {
      this.announceScheduled = false;
      const changed = this.routing.takeUnannounced();
      for (const session of this.links.values()) {
        const update = session.isOpen ? this.routing.updateFor(session.peerId, changed) : undefined;
        if (update) session.sendControl({ kind: { $case: 'reachability', value: update } });
      }
    });
  }

  private reachabilityFrame(peerId: string): Frame {
    return { kind: { $case: 'reachability', value: this.routing.announcementFor(peerId) } };
  }

  /** A CTS tells only of itself; a transit passes on every record it holds. */
  private directoryFrame(records: ServerRecord[]): Frame {
    const shared = this.config.server.kind === 'CTS' ? [this.directory.self.signed] : records;
    return { kind: { $case: 'directory', value: { records: shared } } };
  }

  private async onDirectory(peerId: string, records: ServerRecord[]): Promise<void> {
    const changed = await this.judgeDirectory(() => this.directory.offer(peerId, records), peerId);
    for (const entry of changed) await this.inbound.originKnown(entry.id);
  }

  /**
   * Runs a change of the directory and passes on what it believes anew. A record it no
   * longer believes is in no `changed` list, so a lost belief rejudges the paths all the
   * same: a path through that server is refused, and its hop hands back what it took.
   */
  private async judgeDirectory(change: () => Promise<ServerEntry[]>, fromPeer: string): Promise<ServerEntry[]> {
    const forgotten = this.directory.forgotten;
    const changed = await change();
    this.directoryChanged(changed, fromPeer);
    if (this.directory.forgotten !== forgotten) this.scheduleRejudge();
    return changed;
  }

  /**
   * What the directory believes changed: a transit passes the changed records on (to all
   * but the peer they came from), and every kept path is judged again at the end of the turn.
   */
  private directoryChanged(changed: readonly ServerEntry[], fromPeer: string): void {
    if (changed.length === 0) return;
    if (this.config.server.kind !== 'CTS') {
      const frame = this.directoryFrame(changed.map((entry) => entry.signed));
      for (const session of this.links.values()) if (session.peerId !== fromPeer) session.sendControl(frame);
    }
    this.scheduleRejudge();
  }

  /** Every kept path is judged again at the end of the turn, once however many changes came in it. */
  private scheduleRejudge(): void {
    if (this.rejudgeScheduled) return;
    this.rejudgeScheduled = true;
    setImmediate(() => {
      this.rejudgeScheduled = false;
      const { changed: moved, refused } = this.routing.rejudge();
      for (const [peerId, refusals] of refused) this.journalPathRefusals(peerId, refusals);
      this.handBackWithdrawn(moved);
      if (moved.length > 0) this.routesChanged();
    });
  }

  private onReachability(peerId: string, announcement: Reachability): void {
    const outcome = this.routing.accept(peerId, announcement);
    this.journalPathRefusals(peerId, outcome.refused);
    this.handBackWithdrawn(outcome.changed);
    if (outcome.changed.length > 0) this.routesChanged();
  }

  /**
   * Called after the reachability table changed and before routes are recomputed: a
   * destination whose next hop, still up, no longer has a usable path to it (withdrawn, or
   * refused on a rejudge) hands back what that hop had not proved delivered end to end
   * (queues/delivery-cursors.ts). A hop whose link ended is not asked here: it keeps its share.
   */
  private handBackWithdrawn(destinations: readonly string[]): void {
    for (const destination of destinations) {
      const hop = this.routing.nextHop(destination, 0);
      if (!hop || hop === destination || !this.link(hop) || this.routing.reach.reachOf(hop).has(destination)) continue;
      const handedBack = this.delivery.handBack(destination, hop);
      if (handedBack > 0) void this.audit({ kind: 'delivery-handed-back', peer: hop, detail: `path to ${destination} withdrawn: resending what it had not acknowledged itself (${handedBack} local seqs)` }, hop);
    }
  }

  /** One journal entry per refusal code of an announcement, coalesced per peer under a flood. */
  private journalPathRefusals(peerId: string, refused: PathRefusals): void {
    for (const [code, { count, why }] of refused) {
      void this.audit({ kind: 'reachability-refused', peer: peerId, code, detail: `${count} path(s) refused: ${why}` }, peerId);
    }
  }

  link(peerId: string): LinkSession | undefined {
    const session = this.links.get(peerId);
    return session?.isOpen ? session : undefined;
  }

  linkStatus(): LinkStatus[] {
    return [...this.trusts.values()].map((trust) => ({
      serverId: trust.server_id,
      name: trust.name,
      ...(trust.endpoint ? { endpoint: trust.endpoint } : {}),
      status: linkColour(trust, this.link(trust.server_id) !== undefined),
    }));
  }

  /** Adds or changes a trust while running: a disabled or changed trust drops its link at once. */
  async setTrust(trust: TrustConfig): Promise<void> {
    const before = this.trusts.get(trust.server_id);
    this.trusts.set(trust.server_id, trust);
    await this.loadHandshakePin(trust.server_id);
    await this.audit({ kind: before ? 'trust-changed' : 'trust-added', peer: trust.server_id, detail: `trust ${trust.name} ${trust.status}` });
    await this.trustKeyChanged(trust.server_id);
    if (before) this.dropLink(trust.server_id, trust.status === 'enabled' ? 'trust changed' : 'trust blocked');
    this.claims.get(trust.server_id)?.release();
    this.startDialling(trust);
    this.routesChanged();
  }

  /** Blocks (disabled) or enables a configured trust; a blocked trust carries nothing. */
  async setTrustStatus(serverId: string, status: TrustConfig['status']): Promise<void> {
    const trust = this.trusts.get(serverId);
    if (!trust) throw Object.assign(new Error(`no trust with server ${serverId}`), { code: 'unknown-trust' });
    if (trust.status !== status) await this.setTrust({ ...trust, status });
  }

  async removeTrust(serverId: string): Promise<void> {
    if (!this.trusts.delete(serverId)) return;
    this.handshakePins.delete(serverId);
    await this.audit({ kind: 'trust-removed', peer: serverId, detail: 'trust removed' });
    await this.trustKeyChanged(serverId);
    this.dropLink(serverId, 'trust removed');
    this.routesChanged();
  }

  private dropLink(peerId: string, why: string): void {
    this.dialling.get(peerId)?.abort();
    this.dialling.delete(peerId);
    this.links.get(peerId)?.close('refused-by-peer', why);
  }

  /** Stops dialling and accepting, ends every link, lets committed work finish, closes the store. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.flushTimer);
    clearInterval(this.replicaPoll);
    for (const abort of this.dialling.values()) abort.abort();
    for (const session of this.links.values()) session.close('shutting-down', 'node is stopping');
    for (const post of this.localQueue.splice(0)) post.reject(new PostError('node is stopping'));
    await this.shutdownServer();
    await this.serial.run(async () => undefined);
    await this.delivery.flush().catch((error) => this.log.warn({ err: error }, 'delivery cursors not written'));
    await this.ownership?.releaseAll();
    await this.journal.close();
    await this.store.close();
    this.log.info('node stopped');
  }

  private async shutdownServer(): Promise<void> {
    const server = this.server;
    if (!server) return;
    await Promise.race([new Promise<void>((resolve) => server.tryShutdown(() => resolve())), sleep(SHUTDOWN_GRACE_MS)]);
    server.forceShutdown();
  }
}

/** Waits for a link to end or the dial loop to be stopped, leaving no listener behind on the signal. */
async function untilEndedOrAborted(ended: Promise<unknown>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return;
  let onAbort!: () => void;
  const aborted = new Promise<void>((resolve) => {
    onAbort = resolve;
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    await Promise.race([ended, aborted]);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/** The one-link rule: a lower dialler id wins, and a side's redial replaces its own link. */
function replaces(diallerId: string, holderDiallerId: string): boolean {
  return diallerId <= holderDiallerId;
}

function readIdentityFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new Error(`identity_key_file ${path}: ${code === 'ENOENT' ? 'not found; create one with `trellis keygen --out ' + path + '`' : code ?? String(error)}`);
  }
}

