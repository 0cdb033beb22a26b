import { randomBytes, randomUUID } from 'node:crypto';
import { chainEvent, eventId, identityFromSeed, signAttestation, signEventId, signServerRecord, type ChainPosition, type Identity, type UnsignedEvent } from '../../crypto/index.js';
import { EventKind, type Event } from '../../proto/gen/trellis/v1/event.js';
import { AttestationBody, ServerRecordBody, type Attestation, type Forward, type Frame, type ServerRecord } from '../../proto/gen/trellis/v1/link.js';
import { dialHandshake, FrameChannel, LinkFailure, storelessDialContext, Transport, type LinkOpening, type ServerKind, type TrellisNode, type TrustConfig, type TrustRole } from '../../router/index.js';
import { createdDraft, messageDraft, newChat, type TestChat } from './devices.js';

/**
 * A peer under the test's control: it pairs with a node like any server (same
 * handshake code), then sends whatever frames the test hands it — tampered events,
 * wrong kinds, oversized batches — and reads what the node answers.
 */
export class RoguePeer {
  readonly id = randomUUID();
  readonly identity: Identity = identityFromSeed(randomBytes(32));
  /** What the node accepts from us, and what it presents to us. */
  readonly tokens = { nodeAccepts: randomBytes(24).toString('base64url'), nodePresents: randomBytes(24).toString('base64url') };
  private readonly heads = new Map<string, ChainPosition>();
  private hlcMs = Date.now();

  private constructor(
    readonly node: TrellisNode,
    /** What the node's trust makes us: a partner CTS unless the test says otherwise. */
    readonly kind: ServerKind,
    readonly role: TrustRole,
  ) {}

  /** Adds a trust for this peer to the running node (it never dials us: no endpoint). */
  static async attach(node: TrellisNode, as: { kind?: ServerKind; role?: TrustRole } = {}): Promise<RoguePeer> {
    const peer = RoguePeer.unpaired(node, as);
    await node.setTrust(peer.trustFor(node));
    return peer;
  }

  /** A server the node holds no trust with yet (the test may add one later with `trustFor`). */
  static unpaired(node: TrellisNode, as: { kind?: ServerKind; role?: TrustRole } = {}): RoguePeer {
    return new RoguePeer(node, as.kind ?? 'CTS', as.role ?? 'partner');
  }

  /**
   * A server record signed by `identity`: ours (as our trust makes us; a server below the
   * node names it its upstream) unless the test makes one up for another server.
   */
  record(fields: Partial<ServerRecordBody> = {}, identity: Identity = this.identity, attestations: Attestation[] = []): ServerRecord {
    const body: ServerRecordBody = {
      serverId: this.id,
      kind: this.kind,
      name: `rogue-${this.kind.toLowerCase()}`,
      identityKey: Buffer.from(identity.publicKey),
      upstream: this.role === 'downstream' ? this.node.id : '',
      issuedAtMs: Date.now(),
      ...fields,
    };
    const record = Buffer.from(ServerRecordBody.encode(body).finish());
    return { record, signature: signServerRecord(identity, record), attestations };
  }

  /** An attestation of a record's key, kind and upstream, by us (or by `attester` with its identity). */
  attest(signed: ServerRecord, attester: { id: string; identity: Identity } = this): Attestation {
    const body = ServerRecordBody.decode(signed.record);
    const statement = Buffer.from(
      AttestationBody.encode({ attester: attester.id, serverId: body.serverId, identityKey: body.identityKey, kind: body.kind, upstream: body.upstream, issuedAtMs: Date.now() }).finish(),
    );
    return { statement, signature: signAttestation(attester.identity, statement) };
  }

  /** A node's trust in this peer, as its administrator would write it (no endpoint: we dial). */
  trustFor(node: TrellisNode): TrustConfig {
    return {
      server_id: this.id,
      name: `rogue-for-${node.config.server.name}`,
      kind: this.kind,
      token_for_accepting: this.tokens.nodeAccepts,
      token_for_connecting: this.tokens.nodePresents,
      status: 'enabled',
      allow_trust_search: false,
      role: this.role,
    };
  }

  /** Opens a stream to the node without a handshake (for frames that must be refused before one). */
  open(): { channel: FrameChannel; close(): void } {
    const { client, call } = new Transport(this.node.config).dial(`127.0.0.1:${this.node.port}`);
    const channel = new FrameChannel(call, 'node');
    return { channel, close: () => (channel.abort(), client.close()) };
  }

  /** Dials and completes the handshake, presenting `token` (the right one unless told otherwise). */
  async connect(token = this.tokens.nodeAccepts): Promise<RogueLink> {
    // A connection that fails before the handshake starts (the channel's first connect) is dialled again, as a node redials.
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.connectOnce(token);
      } catch (error) {
        if (!(error instanceof LinkFailure && error.code === 'unreachable') || attempt >= CONNECT_ATTEMPTS_MAX) throw error;
      }
    }
  }

  private async connectOnce(token: string): Promise<RogueLink> {
    const stream = this.open();
    const trust: TrustConfig = {
      server_id: this.node.id,
      name: 'node',
      kind: 'CTS',
      token_for_connecting: token,
      token_for_accepting: this.tokens.nodePresents,
      status: 'enabled',
      allow_trust_search: false,
      role: 'partner',
    };
    try {
      const opening = await dialHandshake(storelessDialContext(this.id, this.identity, trust, 5_000), stream.channel, trust);
      return new RogueLink(stream.channel, opening, stream.close);
    } catch (error) {
      stream.close();
      throw error;
    }
  }

  /** A chat with one member on the node and one here, opened by a chat-created event of ours. */
  newChat(): TestChat {
    return newChat([`victor@${this.node.id}`, `mallory@${this.id}`]);
  }

  /** Our next `count` events of the chat (the first ever is chat-created), signed at the last one (by `signer`: another origin's key). */
  events(chat: TestChat, count: number, origin: string = this.id, signer: Identity = this.identity): Event[] {
    const events: Event[] = [];
    for (let i = 0; i < count; i++) {
      const key = `${chat.id}/${origin}`;
      const head = this.heads.get(key);
      const draft = head ? messageDraft(chat, `mallory@${origin}`, `rogue message ${i}`) : createdDraft(chat, `mallory@${origin}`);
      const event = chainEvent(origin, head, draft, { ms: (this.hlcMs += 1), counter: 0 });
      this.heads.set(key, { seq: event.seq, id: event.id });
      events.push(event);
    }
    const last = events.at(-1);
    if (last) last.signature = signEventId(signer, last.id);
    return events;
  }

  /**
   * Our next events of the chat with any fields set as the test says (a forged kind,
   * member list, clock, sender), each chained and given its true id, the last signed:
   * validly signed hostile events.
   */
  forge(chat: TestChat, edits: Array<Partial<UnsignedEvent>>, origin = this.id): Event[] {
    const key = `${chat.id}/${origin}`;
    const events = edits.map((edit) => {
      const head = this.heads.get(key);
      const base = chainEvent(origin, head, messageDraft(chat, `mallory@${origin}`, 'forged'), { ms: (this.hlcMs += 1), counter: 0 });
      const { id: _, signature: __, ...unsigned } = base;
      const forged: UnsignedEvent = { ...unsigned, ...edit };
      const event: Event = { ...forged, id: eventId(forged), signature: Buffer.alloc(0) };
      this.heads.set(key, { seq: event.seq, id: event.id });
      return event;
    });
    const last = events.at(-1);
    if (last) last.signature = signEventId(this.identity, last.id);
    return events;
  }

  /** The same events with the last one signed: a run cut from a longer one, as a sender would send it. */
  signedRun(events: Event[]): Event[] {
    const last = events.at(-1);
    return last ? [...events.slice(0, -1), { ...last, signature: signEventId(this.identity, last.id) }] : [];
  }

  /** Forgets that events were built (the test will not send them), so the next ones start over from `head`. */
  rewind(chat: TestChat, head: ChainPosition | undefined, origin = this.id): void {
    const key = `${chat.id}/${origin}`;
    if (head) this.heads.set(key, head);
    else this.heads.delete(key);
  }
}

type FrameKind = NonNullable<Frame['kind']>['$case'];
type FrameValue<K extends FrameKind> = Extract<NonNullable<Frame['kind']>, { $case: K }>['value'];

/** Dials of a connect before its failure to reach the node is the test's. */
const CONNECT_ATTEMPTS_MAX = 3;

/** How often a rogue link heartbeats, so the node never takes a quiet test for a dead peer. */
const ROGUE_HEARTBEAT_MS = 250;

export class RogueLink {
  private linkSeq: number;
  private readonly heartbeat: NodeJS.Timeout;

  constructor(
    readonly channel: FrameChannel,
    readonly opening: LinkOpening,
    private readonly end: () => void,
  ) {
    // Our link stream resumes where the node says it has stored it.
    this.linkSeq = opening.peerStoredLinkSeq;
    this.heartbeat = setInterval(() => void channel.send({ kind: { $case: 'heartbeat', value: { sentAtMs: Date.now() } } }).catch(() => undefined), ROGUE_HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  close(): void {
    clearInterval(this.heartbeat);
    this.end();
  }

  send(frame: Frame): Promise<void> {
    return this.channel.send(frame);
  }

  /** Passes records on, as a directory frame. */
  sendRecords(records: ServerRecord[]): Promise<void> {
    return this.send({ kind: { $case: 'directory', value: { records } } });
  }

  /** Announces what is reachable through us: the whole set (`update` false) or changes. */
  announce(paths: string[][], options: { update?: boolean; withdrawn?: string[] } = {}): Promise<void> {
    return this.send({ kind: { $case: 'reachability', value: { paths: paths.map((servers) => ({ servers })), withdrawn: options.withdrawn ?? [], update: options.update ?? false } } });
  }

  /** Sends events as the next batch of our link stream (naming what a transit passes them on to); returns its link sequence. */
  async sendBatch(events: Event[], forwards: Forward[] = []): Promise<number> {
    this.linkSeq += 1;
    await this.send({ kind: { $case: 'batch', value: { lastLinkSeq: this.linkSeq, events, forwards } } });
    return this.linkSeq;
  }

  /** Backfill requests the node sent us, in order (collected by `exchange` and `until`). */
  readonly backfillRequests: Array<{ chatId: string; origin: string; fromSeq: number }> = [];

  /**
   * Sends a batch and reads the node's answer up to its ack: the codes of the refusals
   * it sent (non-fatal error frames), in order. Backfill requests met on the way are kept.
   */
  async exchange(events: Event[], timeoutMs = 10_000, forwards: Forward[] = []): Promise<string[]> {
    const sent = await this.sendBatch(events, forwards);
    const codes: string[] = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const frame = await this.channel.next(Math.max(1, deadline - Date.now()));
      if (!frame) throw new Error('stream ended while waiting for the ack');
      const kind = frame.kind;
      if (kind?.$case === 'error') {
        if (kind.value.fatal) throw new Error(`fatal refusal ${kind.value.code}: ${kind.value.message}`);
        codes.push(kind.value.code);
      } else if (kind?.$case === 'backfillRequest') this.backfillRequests.push(kind.value);
      else if (kind?.$case === 'ack' && kind.value.linkSeq >= sent) return codes;
    }
  }

  /**
   * The node's event batches until `count` distinct events came (other frames skipped), as a
   * peer that stores them would take them; `ack` then acknowledges every batch taken, in order.
   */
  async takeEvents(count: number, timeoutMs = 10_000): Promise<{ events: Event[]; ack(): Promise<void> }> {
    const deadline = Date.now() + timeoutMs;
    const events = new Map<string, Event>();
    const batches: number[] = [];
    while (events.size < count) {
      const batch = await this.until('batch', Math.max(1, deadline - Date.now())).catch((error: Error) => {
        throw new Error(`the node sent ${events.size} of the ${count} events awaited within ${timeoutMs} ms (${error.message})`);
      });
      batches.push(batch.lastLinkSeq);
      for (const event of batch.events) events.set(event.id.toString('hex'), event);
    }
    return { events: [...events.values()], ack: async () => void (await Promise.all(batches.map((linkSeq) => this.send({ kind: { $case: 'ack', value: { linkSeq } } })))) };
  }

  /** Frames from the node until one of `kind` arrives (heartbeats and the node's own batches skipped). */
  async until<K extends FrameKind>(kind: K, timeoutMs = 10_000): Promise<FrameValue<K>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const frame = await this.channel.next(Math.max(1, deadline - Date.now()));
      if (!frame) throw new Error(`stream ended while waiting for ${kind}`);
      if (frame.kind?.$case === 'backfillRequest') this.backfillRequests.push(frame.kind.value);
      if (frame.kind?.$case === kind) return frame.kind.value as unknown as FrameValue<K>;
    }
  }
}

export { EventKind };
