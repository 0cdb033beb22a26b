/**
 * Two positions per destination server, both this node's local seqs (README, "What
 * delivered means"):
 *
 * - `handed`: every event for it up to here was acknowledged by the next hop that carried
 *   it. Store-and-forward: that hop answers for it from then on, so a new link or a route
 *   that moves resends from here, and what the old hop had not acknowledged is queued to
 *   the new one.
 * - `delivered`: every event for it up to here is known to be stored by the destination
 *   itself. The node knows that only from the destination: when it is its own next hop
 *   (a server always is while its link is up), its acks, and on link-up the cursor of our
 *   stream its Welcome says it stored. A transit's ack moves `handed` only.
 *
 * A hop that withdraws its path to a destination, or whose path we refuse (the directory
 * no longer vouches for it), gives back what it had not proved delivered: `handed` goes
 * back to `delivered` and the next route resends from there (receivers drop duplicates).
 * So a hostile hop that acks and withdraws makes us resend; it cannot make us forget.
 * A hop whose link merely drops keeps its share: an honest transit holds the events
 * durably and delivers them when it is back, and one that never comes back still has its
 * path forgotten with the link, which is no withdrawal; handing back on every flap would
 * resend each destination's history at every reconnect.
 *
 * Cost: a hand-back makes the next route resend every event for the destination after
 * `delivered`, read page by page from the store like any resend (bounded by the link
 * window, not held in memory). `delivered` lags for a destination that is never our next
 * hop, so there that is everything we sent it since it was last linked to us. No window
 * bounds it: past a window a hijacker could still make us forget. What keeps it rare: the
 * hop that handed back is resent, when it announces the path again, only from where it
 * had taken them (`resumeAt`): it holds the rest, or dropped it on purpose, and a resend
 * to it changes neither. So an honest ETS whose CTS flaps costs nothing; only a route
 * that takes over in between (another transit) is resent the unconfirmed history.
 * Measured on the 2-core dev machine: handing back 10,001 events of ~100 B to a new
 * transit took 134 ms to send (20 batches, 1 MB of bodies); a storing receiver takes
 * them at its catch-up rate (about 11,000 events/s in bench/results/link.json).
 *
 * A cursor moves only on acknowledgements of batches read after its destination joined
 * the link (`joined`): earlier batches were read with another filter and may lack its
 * events.
 */

import type { DestinationCursor, EventStore } from '../../store/index.js';

/** A link's send position can be moved back; it answers the number of the first batch sent from there. */
export interface RewindableLink {
  rewind(toLocalSeq: number): number;
}

/** How often changed cursors are written: a stale one only costs resends (see schema destinationCursors). */
export const DELIVERY_FLUSH_MS = 1_000;
/** Hops per destination whose hand-back position is remembered; past it the oldest is forgotten (it is then resent from `handed`). */
export const RESUME_HOPS_PER_DESTINATION_MAX = 8;

/** Where each destination's deliveries stand: handed to a hop, and delivered end to end (see above). */
export class DeliveryCursors {
  private cursors = new Map<string, DestinationCursor>();
  /** Per next hop: the destinations it carries now, and the first batch that carried each. */
  private readonly joined = new Map<string, Map<string, number>>();
  private readonly dirty = new Set<string>();
  /** Per destination: how far each hop that handed it back had taken it (in memory: after a restart that hop is resent from `handed`). */
  private readonly resumeAt = new Map<string, Map<string, number>>();

  constructor(private readonly store: EventStore) {}

  async load(): Promise<void> {
    this.cursors = await this.store.deliveredCursors();
  }

  /** Up to where the destination itself acknowledged everything for it. */
  deliveredTo(destination: string): number {
    return this.cursors.get(destination)?.deliveredSeq ?? 0;
  }

  /** Up to where a next hop took everything for the destination over (never below `deliveredTo`). */
  handedTo(destination: string): number {
    const cursor = this.cursors.get(destination);
    return cursor ? Math.max(cursor.handedSeq, cursor.deliveredSeq) : 0;
  }

  /** A destination's next hop moved (to undefined: it waits for a path); `link` is the new hop's, if up. */
  moved(destination: string, from: string | undefined, to: string | undefined, link: RewindableLink | undefined): void {
    if (from) this.joined.get(from)?.delete(destination);
    if (to && link) this.join(to, destination, link);
  }

  /**
   * The hop carrying a destination withdrew its path, or we refused it: what it had not
   * proved delivered end to end is owed again. Call before the route moves (`moved`), so the
   * next hop resends from `delivered`. Answers how many local seqs were handed back.
   */
  handBack(destination: string, hop: string): number {
    const cursor = this.cursors.get(destination);
    if (!cursor || cursor.handedSeq <= cursor.deliveredSeq) return 0;
    const handedBack = cursor.handedSeq - cursor.deliveredSeq;
    this.remember(destination, hop, cursor.handedSeq);
    this.set(destination, cursor.deliveredSeq, cursor.deliveredSeq);
    return handedBack;
  }

  private remember(destination: string, hop: string, handedSeq: number): void {
    let hops = this.resumeAt.get(destination);
    if (!hops) this.resumeAt.set(destination, (hops = new Map()));
    hops.delete(hop);
    hops.set(hop, handedSeq);
    if (hops.size > RESUME_HOPS_PER_DESTINATION_MAX) hops.delete(hops.keys().next().value!);
  }

  /**
   * A new link to a next hop: it resends from the lowest handed position among the
   * destinations it carries. The peer's own cursors first move to what it says it stored
   * of our stream: a server is always its own next hop while its link is up, so every
   * event for it up to there came over that link, and it holds them itself.
   */
  linkUp(peerId: string, peerStoredLinkSeq: number, destinations: Iterable<string>, link: RewindableLink): void {
    if (peerStoredLinkSeq > this.deliveredTo(peerId)) this.set(peerId, peerStoredLinkSeq, Math.max(peerStoredLinkSeq, this.handedTo(peerId)));
    this.joined.delete(peerId);
    for (const destination of destinations) this.join(peerId, destination, link);
  }

  linkDown(peerId: string): void {
    this.joined.delete(peerId);
  }

  private join(peerId: string, destination: string, link: RewindableLink): void {
    let carried = this.joined.get(peerId);
    if (!carried) this.joined.set(peerId, (carried = new Map()));
    // A hop that handed the destination back is not resent what it took before: it holds that, or dropped it on purpose.
    const resume = Math.max(this.handedTo(destination), this.resumeAt.get(destination)?.get(peerId) ?? 0);
    carried.set(destination, link.rewind(resume));
  }

  /** The peer stored batch `batchNo` of its link, which ended at `linkSeq`: delivered for the peer itself, handed over for the rest. */
  acked(peerId: string, batchNo: number, linkSeq: number): void {
    for (const [destination, firstBatch] of this.joined.get(peerId) ?? []) {
      if (batchNo < firstBatch) continue;
      const delivered = destination === peerId ? Math.max(this.deliveredTo(destination), linkSeq) : this.deliveredTo(destination);
      const handed = Math.max(this.handedTo(destination), linkSeq);
      if (delivered !== this.deliveredTo(destination) || handed !== this.handedTo(destination)) this.set(destination, delivered, handed);
    }
  }

  private set(destination: string, deliveredSeq: number, handedSeq: number): void {
    this.cursors.set(destination, { deliveredSeq, handedSeq });
    this.dirty.add(destination);
  }

  /** Writes the cursors that moved since the last flush. */
  async flush(): Promise<void> {
    if (this.dirty.size === 0) return;
    const changed = new Map([...this.dirty].map((destination) => [destination, this.cursors.get(destination)!]));
    this.dirty.clear();
    await this.store.saveDeliveredCursors(changed);
  }
}
