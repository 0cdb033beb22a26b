import type { StoredEvent } from '../../store/index.js';

/** The tail keeps at most this many events, and this many body bytes; older ones are read from the store. */
export const TAIL_EVENTS_MAX = 16_384;
export const TAIL_BODY_BYTES_MAX = 64 * 1024 * 1024;
/** Evicted slots are dropped from the array once this many have piled up at its front. */
const COMPACT_AFTER = 4_096;

/** What a read of the tail found, and how far it looked: a reader may move past what it skipped. */
export interface TailRead<E> {
  events: E[];
  /** The local seq of the last event examined (`after` when there was none). */
  scannedTo: number;
}

/**
 * This node's recent appends, in append order: the in-memory part of every next hop's
 * destination queue (Dendrite's federation sender keeps the same). A link sends from
 * here instead of reading back from the store what was just written, which cost more
 * than writing it. Bounded; a link that has fallen behind the tail reads from the store
 * (`after` answers undefined).
 */
export class AppendTail {
  private readonly events: StoredEvent[] = [];
  private start = 0;
  private bodyBytes = 0;

  /**
   * @param coveredAfter every own event with a larger local seq is (or will be) in the tail;
   * by default none yet, until `cover` says so.
   */
  constructor(private coveredAfter = Number.POSITIVE_INFINITY) {}

  /** From here on every event after `localSeq` is pushed (a reader that listened before reading the store's head). */
  cover(localSeq: number): void {
    this.coveredAfter = localSeq;
  }

  /** Appends in local seq order; one seen already (a listener attached before `cover`) is skipped. */
  push(event: StoredEvent): void {
    const last = this.events[this.events.length - 1];
    if (last && event.localSeq <= last.localSeq) return;
    this.events.push(event);
    this.bodyBytes += event.body.length;
    while (this.events.length - this.start > TAIL_EVENTS_MAX || this.bodyBytes > TAIL_BODY_BYTES_MAX) this.evictOldest();
  }

  /**
   * Up to `limit` events after local seq `after` that `wanted` keeps, in order; undefined
   * when the tail no longer reaches back to `after`.
   */
  async after(after: number, limit: number, wanted: (event: StoredEvent) => boolean | Promise<boolean> = () => true): Promise<TailRead<StoredEvent> | undefined> {
    if (after < this.coveredAfter) return undefined;
    const events: StoredEvent[] = [];
    let scannedTo = after;
    for (let index = this.firstAfter(after); index < this.events.length && events.length < limit; index++) {
      const event = this.events[index]!;
      scannedTo = event.localSeq;
      if (await wanted(event)) events.push(event);
    }
    return { events, scannedTo };
  }

  /** A stored event was given more destinations to pass it on to: the tail's copy follows. */
  setForwards(localSeq: number, forwardTo: readonly string[]): void {
    const index = this.firstAfter(localSeq - 1);
    const event = this.events[index];
    if (index >= this.start && event?.localSeq === localSeq) this.events[index] = { ...event, forwardTo };
  }

  private firstAfter(localSeq: number): number {
    let low = this.start;
    let high = this.events.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.events[middle]!.localSeq <= localSeq) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  private evictOldest(): void {
    const oldest = this.events[this.start]!;
    this.coveredAfter = Math.max(this.coveredAfter, oldest.localSeq);
    this.bodyBytes -= oldest.body.length;
    this.start += 1;
    if (this.start >= COMPACT_AFTER) {
      this.events.splice(0, this.start);
      this.start = 0;
    }
  }
}
