import type { EventStore } from '../../store/index.js';

/** A link's send position can be moved back; it answers the number of the first batch sent from there. */
export interface RewindableLink {
  rewind(toLocalSeq: number): number;
}

/** How often changed cursors are written: a stale one only costs resends (see schema destinationCursors). */
export const DELIVERY_FLUSH_MS = 1_000;

/**
 * Where each destination server's deliveries stand: every event for it up to its cursor
 * was acknowledged by the next hop that carried it (store-and-forward: from then on that
 * hop answers for it). When a destination's route moves, or its next hop's link is
 * replaced, the link that now carries it resends from the cursor, so what the old hop had
 * not acknowledged is queued to the new one; receivers drop what they already hold.
 *
 * A cursor moves only on acknowledgements of batches read after its destination joined
 * the link (`joined`): earlier batches were read with another filter and may lack its
 * events.
 */
export class DeliveryCursors {
  private delivered = new Map<string, number>();
  /** Per next hop: the destinations it carries now, and the first batch that carried each. */
  private readonly joined = new Map<string, Map<string, number>>();
  private readonly dirty = new Map<string, number>();

  constructor(private readonly store: EventStore) {}

  async load(): Promise<void> {
    this.delivered = await this.store.deliveredCursors();
  }

  deliveredTo(destination: string): number {
    return this.delivered.get(destination) ?? 0;
  }

  /** A destination's next hop moved (to undefined: it waits for a path); `link` is the new hop's, if up. */
  moved(destination: string, from: string | undefined, to: string | undefined, link: RewindableLink | undefined): void {
    if (from) this.joined.get(from)?.delete(destination);
    if (to && link) this.join(to, destination, link);
  }

  /**
   * A new link to a next hop: it resends from the lowest cursor among the destinations it
   * carries. The peer's own cursor first moves to what it says it stored of our stream: a
   * server is always its own next hop while its link is up, so every event for it up to
   * there came over that link.
   */
  linkUp(peerId: string, peerStoredLinkSeq: number, destinations: Iterable<string>, link: RewindableLink): void {
    if (peerStoredLinkSeq > this.deliveredTo(peerId)) {
      this.delivered.set(peerId, peerStoredLinkSeq);
      this.dirty.set(peerId, peerStoredLinkSeq);
    }
    this.joined.delete(peerId);
    for (const destination of destinations) this.join(peerId, destination, link);
  }

  linkDown(peerId: string): void {
    this.joined.delete(peerId);
  }

  private join(peerId: string, destination: string, link: RewindableLink): void {
    let carried = this.joined.get(peerId);
    if (!carried) this.joined.set(peerId, (carried = new Map()));
    carried.set(destination, link.rewind(this.deliveredTo(destination)));
  }

  /** The peer stored batch `batchNo` of its link, which ended at `linkSeq`. */
  acked(peerId: string, batchNo: number, linkSeq: number): void {
    for (const [destination, firstBatch] of this.joined.get(peerId) ?? []) {
      if (batchNo < firstBatch || this.deliveredTo(destination) >= linkSeq) continue;
      this.delivered.set(destination, linkSeq);
      this.dirty.set(destination, linkSeq);
    }
  }

  /** Writes the cursors that moved since the last flush. */
  async flush(): Promise<void> {
    if (this.dirty.size === 0) return;
    const changed = new Map(this.dirty);
    this.dirty.clear();
    await this.store.saveDeliveredCursors(changed);
  }
}
