import type { EventStore, LinkFence } from '../store/index.js';
import type { Logger } from './logger.js';

/**
 * Leases on trust links, shared by the replicas of one server (gateways/redis keeps them
 * in Redis). A lease is held for `ttlMs` unless renewed; each acquisition gets a fencing
 * token higher than every earlier one for that peer.
 */
export interface LinkLeases {
  readonly replicaId: string;
  readonly ttlMs: number;
  /** The new lease's fencing token, or undefined while another replica holds the link. */
  acquire(peerId: string): Promise<number | undefined>;
  /** Extends our lease; false when it is no longer ours (it expired and may have been taken). */
  renew(peerId: string, token: number): Promise<boolean>;
  release(peerId: string, token: number): Promise<void>;
}

/** How often a held lease is renewed, as a share of its time to live: two renewals may fail before it lapses. */
const RENEW_SHARE = 1 / 3;
/** How often a replica asks for a link another one holds, as a share of the lease (at least RETRY_MIN_MS). */
const RETRY_SHARE = 1 / 10;
const RETRY_MIN_MS = 100;

/** How long a replica waits before asking again for a link another one holds, for a lease of `ttlMs`. */
export const askAgainMs = (ttlMs: number) => Math.max(RETRY_MIN_MS, ttlMs * RETRY_SHARE);

/** How often a held lease of `ttlMs` is renewed. */
export const renewEveryMs = (ttlMs: number) => ttlMs * RENEW_SHARE;

/**
 * The links this replica owns. Owning one means holding its lease and having raised its
 * fence in the store, so appends for the link made by a replica that lost it are refused
 * by the store itself (event-store.ts), whatever that replica still believes.
 */
export class LinkOwnership {
  private readonly owned = new Map<string, { token: number; timer: NodeJS.Timeout }>();
  /**
   * The newest token this replica held per peer, kept after the lease is lost: a frame
   * still being stored then is fenced by the store with it, never written without one.
   */
  private readonly lastTokens = new Map<string, number>();

  constructor(
    private readonly leases: LinkLeases,
    private readonly store: EventStore,
    private readonly log: Logger,
    /** Called when a lease is lost: the link must end now. */
    private readonly onLost: (peerId: string, reason: string) => void,
  ) {}

  get replicaId(): string {
    return this.leases.replicaId;
  }

  /** How long to wait before asking again for a link another replica holds: often, so a dead owner's link moves soon after its lease lapses. */
  get retryMs(): number {
    return askAgainMs(this.leases.ttlMs);
  }

  fenceOf(peerId: string): LinkFence | undefined {
    const token = this.lastTokens.get(peerId);
    return token === undefined ? undefined : { peerId, token };
  }

  /** True if this replica owns the link to `peerId` now (taking the lease if it is free). */
  async own(peerId: string): Promise<boolean> {
    if (this.owned.has(peerId)) return true;
    const token = await this.leases.acquire(peerId);
    if (token === undefined) return false;
    if (!(await this.store.raiseFence({ peerId, token }))) {
      // A newer token is stored: another replica took the link after us.
      await this.leases.release(peerId, token).catch(() => undefined);
      return false;
    }
    if (this.owned.has(peerId)) return true;
    this.lastTokens.set(peerId, token);
    const timer = setInterval(() => void this.renew(peerId, token), renewEveryMs(this.leases.ttlMs));
    timer.unref();
    this.owned.set(peerId, { token, timer });
    this.log.info({ peer: peerId, token, replica: this.replicaId }, 'took the lease on the link');
    return true;
  }

  private async renew(peerId: string, token: number): Promise<void> {
    const kept = await this.leases.renew(peerId, token).catch((error: Error) => {
      this.log.warn({ peer: peerId, err: error.message }, 'lease renewal failed');
      return false;
    });
    if (!kept && this.owned.get(peerId)?.token === token) this.lose(peerId, 'the lease on the link lapsed');
  }

  private lose(peerId: string, reason: string): void {
    const lease = this.owned.get(peerId);
    if (!lease) return;
    clearInterval(lease.timer);
    this.owned.delete(peerId);
    this.log.warn({ peer: peerId, token: lease.token }, reason);
    this.onLost(peerId, reason);
  }

  /** Gives up a link (its trust was removed or blocked, or the node stops). */
  async release(peerId: string): Promise<void> {
    const lease = this.owned.get(peerId);
    if (!lease) return;
    clearInterval(lease.timer);
    this.owned.delete(peerId);
    await this.leases.release(peerId, lease.token).catch(() => undefined);
  }

  async releaseAll(): Promise<void> {
    await Promise.all([...this.owned.keys()].map((peerId) => this.release(peerId)));
  }
}
