import { isIP } from 'node:net';
import type { TrustConfig } from './config.js';
import { LinkFailure } from './errors.js';
import type { InboundSlot } from './handshake.js';
import { peerHost } from './transport.js';

/**
 * Accepted streams that have sent nothing yet, at once and from one address. Past either
 * bound the oldest silent stream (of all, or of that address) is dropped, not the new one
 * refused: a dialler sends its Hello first thing, so a real peer is silent for a moment
 * only and never the oldest, while a flood of silent streams displaces itself. Each costs
 * an HTTP/2 stream and a timer, for FIRST_FRAME_TIMEOUT_MS (router/handshake.ts) at most.
 */
export const SILENT_STREAMS_MAX = 128;
export const SILENT_STREAMS_PER_ADDRESS_MAX = 16;
/**
 * Handshakes past their Hello at once, and from one address, that share the general slots.
 * A claimed id that is a configured, enabled trust whose endpoint host is the very IP the
 * stream comes from takes that trust's own slot instead, so strangers who fill the general
 * slots cannot keep a paired server out. Any other claim finds a slot or is refused
 * `handshake-busy`.
 */
export const HANDSHAKES_IN_FLIGHT_MAX = 64;
export const HANDSHAKES_PER_ADDRESS_MAX = 16;

/** A stream's slot, with `release` for when its handshake ends, however it ends. */
export interface StreamSlot extends InboundSlot {
  release(): void;
}

interface Silent {
  address: string;
  drop(): void;
}

/** The handshake slots of one node's accepted streams, in their two phases (see the bounds above). */
export class HandshakeSlots {
  /** Silent streams, oldest first (Sets keep insertion order), in all and per address. */
  private readonly silent = new Set<Silent>();
  private readonly silentFrom = new Map<string, Set<Silent>>();
  private inFlight = 0;
  private readonly inFlightFrom = new Map<string, number>();
  /** Trusts whose own slot a handshake holds. */
  private readonly kept = new Set<string>();

  /** `keepsSlot`: whether a claim from an address may take the claimed trust's own slot (see trustKeepsSlot). */
  constructor(private readonly keepsSlot: (claimedId: string, address: string) => boolean) {}

  open(address: string): StreamSlot {
    let silent: Silent | undefined;
    let held: (() => void) | undefined;
    const leaveSilence = () => {
      if (silent) this.forget(silent);
      silent = undefined;
    };
    return {
      silent: () =>
        new Promise<never>((_, reject) => {
          const drop = () => (leaveSilence(), reject(new LinkFailure('handshake-busy', 'dropped: no Hello yet, and a newer stream needed its silent slot')));
          const entry: Silent = { address, drop };
          this.makeRoom(address);
          silent = entry;
          this.silent.add(entry);
          this.silentFrom.set(address, (this.silentFrom.get(address) ?? new Set()).add(entry));
        }),
      spoke: (claimedId) => {
        leaveSilence();
        held ??= this.take(claimedId, address);
      },
      release: () => {
        leaveSilence();
        held?.();
        held = undefined;
      },
    };
  }

  /** Drops the oldest silent stream of the address when it has its share, else the oldest of all when they are full. */
  private makeRoom(address: string): void {
    const fromAddress = this.silentFrom.get(address);
    const oldest = fromAddress && fromAddress.size >= SILENT_STREAMS_PER_ADDRESS_MAX ? fromAddress : this.silent.size >= SILENT_STREAMS_MAX ? this.silent : undefined;
    oldest?.values().next().value?.drop();
  }

  private forget(entry: Silent): void {
    this.silent.delete(entry);
    const fromAddress = this.silentFrom.get(entry.address);
    fromAddress?.delete(entry);
    if (fromAddress?.size === 0) this.silentFrom.delete(entry.address);
  }

  /** A post-Hello slot for the claim: the trust's own if it keeps one for this address and it is free, else a general one. */
  private take(claimedId: string, address: string): () => void {
    if (!this.kept.has(claimedId) && this.keepsSlot(claimedId, address)) {
      this.kept.add(claimedId);
      return () => this.kept.delete(claimedId);
    }
    const fromAddress = this.inFlightFrom.get(address) ?? 0;
    if (this.inFlight >= HANDSHAKES_IN_FLIGHT_MAX) throw new LinkFailure('handshake-busy', `all ${HANDSHAKES_IN_FLIGHT_MAX} handshake slots are taken; try again later`);
    if (fromAddress >= HANDSHAKES_PER_ADDRESS_MAX) throw new LinkFailure('handshake-busy', `${HANDSHAKES_PER_ADDRESS_MAX} handshakes from this address are in progress; try again later`);
    this.inFlight += 1;
    this.inFlightFrom.set(address, fromAddress + 1);
    return () => {
      this.inFlight -= 1;
      const left = (this.inFlightFrom.get(address) ?? 1) - 1;
      if (left > 0) this.inFlightFrom.set(address, left);
      else this.inFlightFrom.delete(address);
    };
  }
}

/**
 * Whether a stream from `address` claiming `trust`'s id takes the trust's own slot: the trust
 * is enabled and its endpoint's host is an IP literal equal to the address. A host name is
 * not resolved here (a lookup per stream is work a stranger could make us do).
 */
export function trustKeepsSlot(trust: TrustConfig | undefined, address: string): boolean {
  if (trust?.status !== 'enabled' || !trust.endpoint) return false;
  const host = canonicalIp(peerHost(trust.endpoint));
  return host !== undefined && host === canonicalIp(address);
}

/** One spelling per address: IPv4 as is (also when mapped into IPv6), IPv6 compressed and lower case. */
function canonicalIp(host: string): string | undefined {
  const unmapped = host.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
  const family = isIP(unmapped);
  if (family === 4) return unmapped;
  if (family === 6) return new URL(`http://[${unmapped}]/`).hostname;
  return undefined;
}
