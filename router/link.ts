import type { Logger } from 'pino';
import type { Event } from '../proto/gen/trellis/v1/event.js';
import type { Frame, EventBatch, BackfillAnswer, BackfillRequest, Forward, Reachability, ServerRecord } from '../proto/gen/trellis/v1/link.js';
import type { AuditEntry, CarriedEvent } from '../store/index.js';
import type { Now } from './clock.js';
import type { LinkTuning } from './config.js';
import { knownPeerCode, LinkFailure, peerMessage, type LinkErrorCode } from './errors.js';
import { errorFrame, type FrameChannel } from './frame-channel.js';
import type { LinkOpening } from './handshake.js';
import type { ChainGap, Inbound, InboundOutcome } from './inbound.js';
import type { Outbound } from './outbound.js';
import { BATCH_EVENTS_MAX } from './limits.js';
import { withForwards } from './queues/forwards.js';
import { Notifier, type CommitPacer } from './serial.js';

export { BATCH_EVENTS_MAX };

export interface LinkDeps {
  tuning: LinkTuning;
  logger: Logger;
  now: Now;
  inbound: Inbound;
  /** The node's commit spacing: a run of batches waits for it, and what arrives meanwhile joins the run. */
  pacer: CommitPacer;
  outbound: Outbound;
  /** Notified whenever this node appends events (a sender may have work). */
  appended: Notifier;
  /** A transit (ETS, RTS, TTS) passes events on; a CTS stores them for itself. */
  transit: boolean;
  audit(entry: AuditEntry, coalesceKey?: string): Promise<void>;
  /** What this node tells a peer first, before any event: its directory and what is reachable through it. */
  greeting(peerId: string): Frame[];
  onDirectory(peerId: string, records: ServerRecord[]): Promise<void>;
  onReachability(peerId: string, announcement: Reachability): Promise<void>;
  /** The peer stored batch `batchNo` of this link, which ended at our local seq `linkSeq`. */
  onAcked(peerId: string, batchNo: number, linkSeq: number): void;
}

export interface LinkStats {
  /** Our link sequence the peer had stored when this link opened: where our resend started. */
  resumedFrom: number;
  batchesSent: number;
  eventsSent: number;
  eventsReceived: number;
  /** Received events that were already stored: a resumed link should send none. */
  eventsDuplicate: number;
  eventsRefused: number;
  /** What the send loop waits for now: operators (and failing tests) read this to see a stall. */
  sendState: 'reading' | 'window-full' | 'idle' | 'writing' | 'ended';
  /** Our link sequence sent last, and how many batches the peer has not acknowledged. */
  sentLinkSeq: number;
  unackedBatches: number;
  framesSent: number;
  framesReceived: number;
  /** Encrypted body bytes of the events each way (what the chats weigh on this link). */
  bodyBytesSent: number;
  bodyBytesReceived: number;
  /** Times the send position moved back to resend for a destination whose route moved here. */
  rewinds: number;
}

export interface LinkEnd {
  code: LinkErrorCode | 'stream-ended' | 'stream-error' | 'internal';
  message: string;
}

/** Backfill requests remembered per link so one is not asked twice; past it the memory starts over. */
const BACKFILLS_REMEMBERED_MAX = 10_000;
/**
 * Frames read and not yet handled. Past it the link stops reading, and the stream's flow
 * control holds the peer back; a peer within its window (at most 64 batches) never gets there.
 */
export const INBOX_FRAMES_MAX = 128;
/** Events of the batches stored together in one transaction, at most: what one batch may hold. */
export const STORED_TOGETHER_EVENTS_MAX = BATCH_EVENTS_MAX;

type BatchFrame = Frame & { kind: { $case: 'batch'; value: EventBatch } };
const isBatch = (frame: Frame): frame is BatchFrame => frame.kind?.$case === 'batch';

/** A frame's own limits, checked as it is read: a batch too large or without a link sequence ends the link. */
export function checkedFrame(frame: Frame): Frame {
  if (!isBatch(frame)) return frame;
  const batch = frame.kind.value;
  if (batch.events.length > BATCH_EVENTS_MAX) throw new LinkFailure('batch-too-large', `batch of ${batch.events.length} events exceeds ${BATCH_EVENTS_MAX}`);
  if (batch.lastLinkSeq < 1) throw new LinkFailure('unexpected-frame', 'batch without a link sequence');
  return frame;
}

/**
 * One live trust link after its handshake: sends this node's events from where the
 * peer's cursor stands, with at most `window_frames` batches unacknowledged; appends
 * what the peer sends and acknowledges it only once durable; heartbeats both ways;
 * asks for backfill when a chain has a gap. Ends on the first stream or protocol error;
 * the node then redials, and the next link resumes from the stored cursors.
 */
export class LinkSession {
  readonly stats: LinkStats;
  readonly ended: Promise<LinkEnd>;
  private end: LinkEnd | undefined;
  private finish!: (end: LinkEnd) => void;
  private readonly acks: Notifier;
  /** Batches sent and not acknowledged yet, oldest first; the peer acknowledges each in order. */
  private readonly unacked: Array<{ batchNo: number; linkSeq: number }> = [];
  /** Batches read so far; a batch's number is taken when its read starts. */
  private batchesRead = 0;
  /** Where the send position must move back to before the next read (see rewind). */
  private rewindTo: number | undefined;
  private readonly backfillsAsked = new Set<string>();
  /** The frame being handled now; a link that replaces this one waits for it (see drain). */
  private handling: Promise<void> = Promise.resolve();
  /** True while a received frame is being stored: the peer is not silent, we are busy. */
  private busy = false;
  /** Frames read and waiting to be handled, in order (acks and heartbeats are handled as they are read). */
  private readonly inbox: Frame[] = [];
  private readonly inboxChanged = new Notifier();
  /** The peer ended its side of the stream: once the inbox is handled, the link ends. */
  private peerEnded = false;
  private lastHeardAt: number;
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly log: Logger;

  constructor(
    private readonly deps: LinkDeps,
    private readonly channel: FrameChannel,
    readonly opening: LinkOpening,
    /** The server id of the side that dialled: the duplicate-link rule compares it. */
    readonly diallerId: string,
  ) {
    this.acks = new Notifier();
    this.stats = {
      resumedFrom: opening.peerStoredLinkSeq,
      batchesSent: 0,
      eventsSent: 0,
      eventsReceived: 0,
      eventsDuplicate: 0,
      eventsRefused: 0,
      sendState: 'reading',
      sentLinkSeq: opening.peerStoredLinkSeq,
      unackedBatches: 0,
      framesSent: 0,
      framesReceived: 0,
      bodyBytesSent: 0,
      bodyBytesReceived: 0,
      rewinds: 0,
    };
    this.ended = new Promise((resolve) => (this.finish = resolve));
    this.lastHeardAt = deps.now();
    this.log = deps.logger.child({ peer: opening.peerId, dialler: diallerId });
  }

  get peerId(): string {
    return this.opening.peerId;
  }

  get isOpen(): boolean {
    return this.end === undefined;
  }

  /** Starts the loops, and asks the peer again for every gap and chat this node still lacks that it may hold. */
  start(): void {
    const { heartbeat_interval_ms: interval, dead_after_heartbeats: deadAfter } = this.deps.tuning;
    this.heartbeat = setInterval(() => this.beat(interval * deadAfter), interval);
    this.heartbeat.unref();
    void this.receiveLoop();
    void this.handleLoop();
    void this.greetThenSend();
    void this.deps.inbound
      .openRequests(this.peerId)
      .then((open) => this.ask(open.gaps, open.syncs))
      .catch((error) => this.fail(error));
  }

  /** Our directory and reachability go first: every event batch after them can be checked by the peer. */
  private async greetThenSend(): Promise<void> {
    try {
      for (const frame of this.deps.greeting(this.peerId)) await this.send(frame);
    } catch (error) {
      if (!this.end) this.fail(error);
      return;
    }
    await this.sendLoop();
  }

  /** Sends a frame outside the event stream (a directory or reachability update); a closed link drops it. */
  sendControl(frame: Frame): void {
    if (this.end) return;
    this.send(frame).catch(() => undefined);
  }

  private send(frame: Frame): Promise<void> {
    this.stats.framesSent += 1;
    return this.channel.send(frame);
  }

  /**
   * Moves the send position back to `toLocalSeq` (if it is ahead of it): a destination
   * whose route moved to this link is resent what its old next hop had not acknowledged.
   * A read in flight is dropped. Answers the number of the first batch read from there.
   */
  rewind(toLocalSeq: number): number {
    this.rewindTo = Math.min(this.rewindTo ?? Number.MAX_SAFE_INTEGER, toLocalSeq);
    this.stats.rewinds += 1;
    this.deps.appended.notify();
    return this.batchesRead + 1;
  }

  /** Resolves once the frame being handled when the link ended is stored or given up. */
  get settled(): Promise<void> {
    return this.handling.catch(() => undefined);
  }

  /** Ends the link; with a code the peer is told why. */
  close(code: LinkErrorCode, message: string, tellPeer = true): void {
    if (this.end) return;
    this.finishWith({ code, message });
    this.channel.close(tellPeer ? errorFrame(code, message) : undefined);
  }

  /**
   * Ends the link (if it is still open) and resolves once the frame it was handling is
   * stored or given up: frames that arrive after the end are ignored, so from then on
   * this link changes nothing in the store.
   */
  async drain(code: LinkErrorCode, message: string): Promise<void> {
    this.close(code, message);
    await this.handling.catch(() => undefined);
  }

  private finishWith(end: LinkEnd): void {
    if (this.end) return;
    this.end = end;
    clearInterval(this.heartbeat);
    this.acks.notify();
    this.deps.appended.notify();
    this.finish(end);
  }

  private fail(error: unknown): void {
    if (!this.end) this.log.error({ err: error }, 'link failed');
    else this.log.warn({ code: (error as { code?: string }).code, reason: (error as Error).message }, 'a frame being handled when the link ended was not stored');
    if (error instanceof LinkFailure) this.close(error.code, error.message);
    else {
      this.finishWith({ code: 'internal', message: error instanceof Error ? error.message : String(error) });
      this.channel.abort();
    }
  }

  private beat(deadAfterMs: number): void {
    // Frames waiting to be stored are frames heard: a slow store must not look like a dead peer.
    if (this.busy) this.lastHeardAt = this.deps.now();
    if (this.deps.now() - this.lastHeardAt > deadAfterMs) {
      this.finishWith({ code: 'dead-link', message: `nothing heard for ${deadAfterMs} ms` });
      this.channel.abort();
      return;
    }
    this.channel.send({ kind: { $case: 'heartbeat', value: { sentAtMs: this.deps.now() } } }).catch(() => undefined);
  }

  /**
   * Reads frames as they come, while earlier ones are being stored: batches that arrive
   * during a commit are then stored together in the next (handleLoop). Acks and
   * heartbeats need no store, so they are handled at once, never behind a commit.
   */
  private async receiveLoop(): Promise<void> {
    try {
      for (;;) {
        if (this.inbox.length >= INBOX_FRAMES_MAX) {
          await this.inboxChanged.changedSince(this.inboxChanged.version);
          if (this.end) return;
          continue;
        }
        const frame = await this.channel.next();
        if (this.end) return;
        if (!frame) {
          this.peerEnded = true;
          this.inboxChanged.notify();
          return;
        }
        this.lastHeardAt = this.deps.now();
        this.stats.framesReceived += 1;
        if (frame.kind?.$case === 'ack') this.onAck(frame.kind.value.linkSeq);
        else if (frame.kind?.$case !== 'heartbeat') this.inbox.push(checkedFrame(frame));
        this.inboxChanged.notify();
      }
    } catch (error) {
      this.failFrom(error);
    }
  }

  /** Handles the inbox in order: a run of batches in one store transaction, any other frame alone. */
  private async handleLoop(): Promise<void> {
    while (!this.end) {
      const version = this.inboxChanged.version;
      if (this.inbox.length === 0) {
        if (this.peerEnded) return this.finishWith({ code: 'stream-ended', message: 'the peer ended the stream' });
        await this.inboxChanged.changedSince(version);
        continue;
      }
      if (isBatch(this.inbox[0]!)) await this.deps.pacer.ready();
      if (this.end) return;
      const batches = this.takeBatches();
      const frame = batches.length === 0 ? this.inbox.shift()! : undefined;
      this.inboxChanged.notify();
      this.busy = true;
      this.handling = frame ? this.onFrame(frame) : this.onBatches(batches);
      try {
        await this.handling;
      } catch (error) {
        return this.failFrom(error);
      } finally {
        this.busy = false;
        this.lastHeardAt = this.deps.now();
      }
    }
  }

  /** The batches at the front of the inbox, as many as one transaction stores. */
  private takeBatches(): EventBatch[] {
    const batches: EventBatch[] = [];
    let events = 0;
    for (const frame of this.inbox) {
      if (!isBatch(frame)) break;
      const next = frame.kind.value;
      if (batches.length > 0 && events + next.events.length > STORED_TOGETHER_EVENTS_MAX) break;
      batches.push(next);
      events += next.events.length;
    }
    this.inbox.splice(0, batches.length);
    return batches;
  }

  /** A read or a frame's handling failed: a protocol violation is told to the peer, anything else drops the stream. */
  private failFrom(error: unknown): void {
    if (this.end) return;
    if (error instanceof LinkFailure) return this.fail(error);
    this.finishWith({ code: 'stream-error', message: (error as Error).message });
    this.channel.abort();
  }

  private async onFrame(frame: Frame): Promise<void> {
    const kind = frame.kind;
    switch (kind?.$case) {
      case 'backfillRequest':
        return this.onBackfillRequest(kind.value);
      case 'backfillAnswer':
        return this.onBackfillAnswer(kind.value);
      case 'error':
        return this.onPeerError(kind.value.code, kind.value.message, kind.value.fatal);
      case 'directory':
        return this.deps.onDirectory(this.peerId, kind.value.records);
      case 'reachability':
        return this.deps.onReachability(this.peerId, kind.value);
      default:
        throw new LinkFailure('unexpected-frame', `frame ${kind?.$case ?? '(empty)'} is not allowed after the handshake`);
    }
  }

  /** Stores batches read one after another in one transaction, then acknowledges each, in order. */
  private async onBatches(batches: readonly EventBatch[]): Promise<void> {
    for (const batch of batches) for (const event of batch.events) this.stats.bodyBytesReceived += event.body.length;
    const frames = batches.map((batch) => this.carried(batch.events, batch.forwards));
    const outcome = await this.deps.inbound.acceptFrames(this.peerId, frames, { peerId: this.peerId, linkSeq: batches.at(-1)!.lastLinkSeq });
    await this.report(outcome);
    for (const batch of batches) await this.send({ kind: { $case: 'ack', value: { linkSeq: batch.lastLinkSeq } } });
  }

  /** A transit keeps what the peer asks it to pass on; any other node stores the events for itself alone. */
  private carried(events: Event[], forwards: Forward[]): CarriedEvent[] {
    return this.deps.transit ? withForwards(events, forwards) : events;
  }

  /** Tells the peer what was refused (the link stays up) and asks for what is missing. */
  private async report(outcome: InboundOutcome): Promise<void> {
    this.stats.eventsReceived += outcome.appended.length;
    this.stats.eventsDuplicate += outcome.duplicates;
    this.stats.eventsRefused += outcome.refused.length;
    for (const refusal of outcome.refused) {
      this.log.warn({ code: refusal.code }, 'event refused');
      await this.send(errorFrame(refusal.code, refusal.message, false));
    }
    await this.ask(outcome.gaps, outcome.syncs);
  }

  /** Asks the peer for gaps in chains and for whole chats (empty origin), each once per link. */
  private async ask(gaps: readonly ChainGap[], syncs: readonly string[]): Promise<void> {
    const requests = [...gaps, ...syncs.map((chatId) => ({ chatId, origin: '', fromSeq: 1 }))];
    for (const request of requests) {
      const key = `${request.chatId}\u0000${request.origin}\u0000${request.fromSeq}`;
      if (this.backfillsAsked.has(key)) continue;
      if (this.backfillsAsked.size >= BACKFILLS_REMEMBERED_MAX) this.backfillsAsked.clear();
      this.backfillsAsked.add(key);
      this.log.info({ chat: request.chatId, origin: request.origin || '(all)', seq: request.fromSeq }, 'asking backfill');
      await this.send({ kind: { $case: 'backfillRequest', value: request } });
    }
  }

  /** A gap in one origin's chain, or (empty origin) every chain of a chat, for a peer that has members in it. */
  private async onBackfillRequest(request: BackfillRequest): Promise<void> {
    const answers = await this.deps.outbound.backfill(this.peerId, request);
    if (!answers) {
      await this.send(errorFrame('backfill-refused' satisfies LinkErrorCode, 'no such chat shared with you', false));
      return;
    }
    for (const answer of answers) await this.send({ kind: { $case: 'backfillAnswer', value: answer } });
  }

  /** Stores a page, and asks for the next one while the peer says more follow. */
  private async onBackfillAnswer(answer: BackfillAnswer): Promise<void> {
    if (answer.events.length > BATCH_EVENTS_MAX) throw new LinkFailure('batch-too-large', `backfill of ${answer.events.length} events exceeds ${BATCH_EVENTS_MAX}`);
    const outcome = await this.deps.inbound.accept(this.peerId, answer.events);
    const last = answer.events.at(-1);
    if (answer.more && last && last.chatId === answer.chatId && last.origin === answer.origin) {
      outcome.gaps.push({ chatId: answer.chatId, origin: answer.origin, fromSeq: last.seq + 1 });
    }
    await this.report(outcome);
  }

  /** A peer's refusal, recorded with a known code (else `unknown`) and its message cut short; floods are coalesced. */
  private async onPeerError(peerCode: string, peerText: string, fatal: boolean): Promise<void> {
    const code = knownPeerCode(peerCode);
    const message = peerMessage(peerText);
    this.log.warn({ code, fatal }, 'peer reported an error');
    await this.deps.audit({ kind: 'refused-by-peer', peer: this.peerId, code, detail: message }, this.peerId);
    if (fatal) {
      this.finishWith({ code: 'refused-by-peer', message: `${code}: ${message}` });
      this.channel.close();
    }
  }

  /** The peer acknowledges every batch, in the order sent (after a rewind, link seqs may go down). */
  private onAck(linkSeq: number): void {
    const batch = this.unacked[0];
    if (!batch || batch.linkSeq !== linkSeq) throw new LinkFailure('unexpected-frame', `ack of link seq ${linkSeq}, expected ${batch ? batch.linkSeq : 'none'}`);
    this.unacked.shift();
    this.deps.onAcked(this.peerId, batch.batchNo, linkSeq);
    this.acks.notify();
  }

  private async sendLoop(): Promise<void> {
    const { window_frames: windowFrames, batch_events: batchEvents } = this.deps.tuning;
    let position = this.opening.peerStoredLinkSeq;
    try {
      while (!this.end) {
        this.stats.unackedBatches = this.unacked.length;
        if (this.unacked.length >= windowFrames) {
          this.stats.sendState = 'window-full';
          await this.acks.changedSince(this.acks.version);
          continue;
        }
        if (this.rewindTo !== undefined) {
          position = Math.min(position, this.rewindTo);
          this.rewindTo = undefined;
        }
        this.stats.sendState = 'reading';
        const version = this.deps.appended.version;
        const batchNo = ++this.batchesRead;
        const { events, forwards, lastLinkSeq } = await this.deps.outbound.batchFor(this.peerId, position, batchEvents);
        // A rewind during the read: what was read may lack the events of the destination that moved here.
        if (this.rewindTo !== undefined) continue;
        if (events.length === 0) {
          // Nothing for this peer up to where the read looked: move on, and wait only at the end.
          if (lastLinkSeq > position) {
            position = lastLinkSeq;
            continue;
          }
          this.stats.sendState = 'idle';
          await this.deps.appended.changedSince(version);
          continue;
        }
        position = lastLinkSeq;
        this.unacked.push({ batchNo, linkSeq: position });
        this.stats.sendState = 'writing';
        await this.send({ kind: { $case: 'batch', value: { lastLinkSeq: position, events, forwards } } });
        this.stats.sentLinkSeq = position;
        this.stats.batchesSent += 1;
        this.stats.eventsSent += events.length;
        for (const event of events) this.stats.bodyBytesSent += event.body.length;
      }
      this.stats.sendState = 'ended';
    } catch (error) {
      if (!this.end) this.fail(error);
    }
  }
}
