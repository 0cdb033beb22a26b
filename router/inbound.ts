import { checkRun, EventError } from '../crypto/index.js';
import type { Event } from '../proto/gen/trellis/v1/event.js';
import type { AuditEntry, EventStore, StoredEvent } from '../store/index.js';
import type { ChainHeads } from './chain-heads.js';
import type { HybridClock } from './clock.js';
import type { SerialQueue } from './serial.js';

export interface ChainGap {
  chatId: string;
  origin: string;
  /** The first seq this node lacks. */
  fromSeq: number;
}

export interface InboundOutcome {
  appended: StoredEvent[];
  /** Events this node already held: a resend that was not needed. */
  duplicates: number;
  refused: EventError[];
  gaps: ChainGap[];
}

export interface InboundDeps {
  store: EventStore;
  heads: ChainHeads;
  serial: SerialQueue;
  clock: HybridClock;
  /** The Ed25519 key of an origin server, if this node knows it. */
  originKey(origin: string): Promise<Uint8Array | undefined>;
  onAppended(events: StoredEvent[]): void;
  audit(entry: AuditEntry): Promise<void>;
}

const keyOf = (chatId: string, origin: string) => `${chatId}\u0000${origin}`;

function groupByChain(events: readonly Event[]): Map<string, Event[]> {
  const runs = new Map<string, Event[]>();
  for (const event of events) {
    const key = keyOf(event.chatId, event.origin);
    const run = runs.get(key);
    if (run) run.push(event);
    else runs.set(key, [event]);
  }
  return runs;
}

/** Events that follow `head` without a break, from the front of a seq-ordered list. */
function contiguousAfter(head: { seq: number; id: Uint8Array } | undefined, events: readonly Event[]): Event[] {
  const out: Event[] = [];
  let seq = head?.seq ?? 0;
  let id: Uint8Array = head?.id ?? Buffer.alloc(0);
  for (const event of events) {
    if (event.seq <= seq) continue;
    if (event.seq !== seq + 1 || !event.prev.equals(id)) break;
    out.push(event);
    seq = event.seq;
    id = event.id;
  }
  return out;
}

/**
 * The receiving half of every link: authenticates each (chat, origin) run of a batch,
 * appends what follows its chain, holds what lies beyond a gap until backfill closes
 * it, and refuses (and audits) the rest, without failing the batch's other runs.
 */
export class Inbound {
  private pendingChains = new Set<string>();

  constructor(private readonly deps: InboundDeps) {}

  /** Loads which chains have held events, so their gaps are asked for again after a restart. */
  async load(): Promise<ChainGap[]> {
    const gaps: ChainGap[] = [];
    for (const held of await this.deps.store.pendingGaps()) {
      this.pendingChains.add(keyOf(held.chatId, held.origin));
      const head = await this.deps.heads.get(held.chatId, held.origin);
      gaps.push({ chatId: held.chatId, origin: held.origin, fromSeq: (head?.seq ?? 0) + 1 });
    }
    return gaps;
  }

  async accept(peerId: string, events: readonly Event[], cursor?: { peerId: string; linkSeq: number }): Promise<InboundOutcome> {
    const outcome: InboundOutcome = { appended: [], duplicates: 0, refused: [], gaps: [] };
    const authentic: Event[][] = [];
    for (const run of groupByChain(events).values()) {
      try {
        authentic.push(await this.authenticate(run));
      } catch (error) {
        if (!(error instanceof EventError)) throw error;
        outcome.refused.push(error);
      }
    }
    await this.deps.serial.run(() => this.place(authentic, outcome, cursor));
    // Refusals from authentication and from placing on the chain alike: each is journalled.
    for (const refusal of outcome.refused) {
      await this.deps.audit({ kind: 'event-refused', peer: peerId, code: refusal.code, detail: refusal.message });
    }
    if (outcome.appended.length > 0) this.deps.onAppended(outcome.appended);
    return outcome;
  }

  private async authenticate(run: Event[]): Promise<Event[]> {
    const first = run[0]!;
    const key = await this.deps.originKey(first.origin);
    if (!key) throw new EventError('unknown-origin', `events of unknown origin server (chat ${first.chatId})`);
    return checkRun(run, key);
  }

  /** Inside the serial queue: decides per run what to append, hold or refuse, then commits once. */
  private async place(runs: Event[][], outcome: InboundOutcome, cursor?: { peerId: string; linkSeq: number }): Promise<void> {
    const toAppend: Event[] = [];
    const toHold: Event[] = [];
    for (const run of runs) {
      const { chatId, origin } = run[0]!;
      const head = await this.deps.heads.get(chatId, origin);
      const fresh = run.filter((event) => event.seq > (head?.seq ?? 0));
      outcome.duplicates += run.length - fresh.length;
      const atHead = head && run.find((event) => event.seq === head.seq);
      if (atHead && !atHead.id.equals(head.id)) {
        outcome.refused.push(new EventError('bad-chain', `event conflicts with the stored chain (chat ${chatId}, seq ${head.seq})`));
        continue;
      }
      const next = contiguousAfter(head, fresh);
      if (fresh.length > 0 && next.length === 0 && fresh[0]!.seq === (head?.seq ?? 0) + 1) {
        outcome.refused.push(new EventError('bad-chain', `event does not link to the stored chain (chat ${chatId}, seq ${fresh[0]!.seq})`));
        continue;
      }
      toAppend.push(...next);
      if (next.length < fresh.length) {
        toHold.push(...fresh.slice(next.length));
        this.pendingChains.add(keyOf(chatId, origin));
        outcome.gaps.push({ chatId, origin, fromSeq: (next.at(-1)?.seq ?? head?.seq ?? 0) + 1 });
      }
    }
    await this.deps.store.holdPending(toHold);
    await this.commit(toAppend, outcome, cursor);
    await this.releaseHeld(runs, outcome);
  }

  private async commit(events: Event[], outcome: InboundOutcome, cursor?: { peerId: string; linkSeq: number }): Promise<void> {
    try {
      outcome.appended.push(...(await this.deps.store.append({ events, ...(cursor ? { cursor } : {}) })));
    } catch (error) {
      for (const event of events) this.deps.heads.forget(event.chatId, event.origin);
      throw error;
    }
    for (const event of events) {
      this.deps.heads.advance(event.chatId, event.origin, { seq: event.seq, id: event.id });
      this.deps.clock.observe({ ms: event.hlcMs, counter: event.hlcCounter });
    }
  }

  /** Moves held events whose gap is now closed into the log. */
  private async releaseHeld(runs: Event[][], outcome: InboundOutcome): Promise<void> {
    for (const run of runs) {
      const { chatId, origin } = run[0]!;
      const key = keyOf(chatId, origin);
      if (!this.pendingChains.has(key)) continue;
      const held = await this.deps.store.pendingEvents(chatId, origin);
      const released = contiguousAfter(await this.deps.heads.get(chatId, origin), held);
      if (released.length > 0) await this.commit(released, outcome);
      const head = await this.deps.heads.get(chatId, origin);
      await this.deps.store.dropPending(chatId, origin, head?.seq ?? 0);
      outcome.gaps = outcome.gaps.filter((gap) => keyOf(gap.chatId, gap.origin) !== key);
      if (held.every((event) => event.seq <= (head?.seq ?? 0))) this.pendingChains.delete(key);
      else outcome.gaps.push({ chatId, origin, fromSeq: (head?.seq ?? 0) + 1 });
    }
  }
}
