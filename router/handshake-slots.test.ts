import { describe, expect, it } from 'vitest';
import type { TrustConfig } from './config.js';
import { HANDSHAKES_IN_FLIGHT_MAX, HANDSHAKES_PER_ADDRESS_MAX, HandshakeSlots, SILENT_STREAMS_MAX, SILENT_STREAMS_PER_ADDRESS_MAX, trustKeepsSlot, type StreamSlot } from './handshake-slots.js';

const TRUSTED = 'trusted-id';
const trust = (endpoint: string | undefined, status: TrustConfig['status'] = 'enabled') => ({ server_id: TRUSTED, status, ...(endpoint ? { endpoint } : {}) }) as TrustConfig;

/** A slot that has gone silent, and what became of its silence: dropped (with the code) or not. */
function silentSlot(slots: HandshakeSlots, address: string): { slot: StreamSlot; dropped: () => string | undefined } {
  const slot = slots.open(address);
  let code: string | undefined;
  slot.silent().catch((error: { code: string }) => (code = error.code));
  return { slot, dropped: () => code };
}

const settled = () => new Promise((resolve) => setImmediate(resolve));

describe('handshake slots', () => {
  it('drops the oldest silent stream when the silent slots are full, never the new one', async () => {
    const slots = new HandshakeSlots(() => false);
    const perAddress = SILENT_STREAMS_PER_ADDRESS_MAX;
    const first = Array.from({ length: SILENT_STREAMS_MAX }, (_, i) => silentSlot(slots, `10.0.${Math.floor(i / perAddress)}.1`));
    await settled();
    expect(first.filter((s) => s.dropped())).toEqual([]);
    const newcomer = silentSlot(slots, '10.1.0.1');
    await settled();
    expect(first[0]!.dropped()).toBe('handshake-busy');
    expect(first.slice(1).every((s) => s.dropped() === undefined)).toBe(true);
    expect(newcomer.dropped()).toBeUndefined();
  });

  it('lets one address displace only its own silent streams', async () => {
    const slots = new HandshakeSlots(() => false);
    const other = silentSlot(slots, '10.0.0.2');
    const own = Array.from({ length: SILENT_STREAMS_PER_ADDRESS_MAX + 3 }, () => silentSlot(slots, '10.0.0.1'));
    await settled();
    expect(own.map((s) => s.dropped() !== undefined)).toEqual(own.map((_, i) => i < 3));
    expect(other.dropped()).toBeUndefined();
  });

  it('a stream that spoke is no longer silent: it is never dropped for a newer one', async () => {
    const slots = new HandshakeSlots(() => false);
    const spoken = silentSlot(slots, '10.0.0.1');
    spoken.slot.spoke('someone');
    for (let i = 0; i < SILENT_STREAMS_PER_ADDRESS_MAX + 1; i++) silentSlot(slots, '10.0.0.1');
    await settled();
    expect(spoken.dropped()).toBeUndefined();
  });

  it('refuses claims past the general bounds, but keeps a trust its own slot', () => {
    const slots = new HandshakeSlots((claimedId, address) => claimedId === TRUSTED && address === '10.9.9.9');
    const held: StreamSlot[] = [];
    const addresses = HANDSHAKES_IN_FLIGHT_MAX / HANDSHAKES_PER_ADDRESS_MAX;
    for (let a = 0; a < addresses; a++) {
      for (let i = 0; i < HANDSHAKES_PER_ADDRESS_MAX; i++) {
        const slot = slots.open(`10.0.${a}.1`);
        slot.spoke(TRUSTED);
        held.push(slot);
      }
    }
    expect(() => slots.open('10.5.0.1').spoke(TRUSTED)).toThrow(expect.objectContaining({ code: 'handshake-busy' }));
    expect(() => slots.open('10.9.9.9').spoke('a-stranger')).toThrow(expect.objectContaining({ code: 'handshake-busy' }));
    const kept = slots.open('10.9.9.9');
    expect(() => kept.spoke(TRUSTED)).not.toThrow();
    // One kept slot per trust: a second handshake of it competes for the general ones.
    expect(() => slots.open('10.9.9.9').spoke(TRUSTED)).toThrow(expect.objectContaining({ code: 'handshake-busy' }));
    // Released slots are free again, the kept one and a general one.
    kept.release();
    held[0]!.release();
    expect(() => slots.open('10.9.9.9').spoke(TRUSTED)).not.toThrow();
    expect(() => slots.open('10.5.0.1').spoke('a-stranger')).not.toThrow();
  });

  it('a per-address bound leaves the other addresses their general slots', () => {
    const slots = new HandshakeSlots(() => false);
    for (let i = 0; i < HANDSHAKES_PER_ADDRESS_MAX; i++) slots.open('10.0.0.1').spoke('x');
    expect(() => slots.open('10.0.0.1').spoke('x')).toThrow(expect.objectContaining({ code: 'handshake-busy' }));
    expect(() => slots.open('10.0.0.2').spoke('x')).not.toThrow();
  });

  it('keeps a trust its slot only for the IP literal its endpoint names, and only while enabled', () => {
    expect(trustKeepsSlot(trust('10.1.2.3:5001'), '10.1.2.3')).toBe(true);
    expect(trustKeepsSlot(trust('10.1.2.3:5001'), '::ffff:10.1.2.3')).toBe(true);
    expect(trustKeepsSlot(trust('[2001:db8:0:0::1]:5001'), '2001:db8::1')).toBe(true);
    expect(trustKeepsSlot(trust('10.1.2.3:5001'), '10.1.2.4')).toBe(false);
    expect(trustKeepsSlot(trust('cts.example.com:5001'), '10.1.2.3')).toBe(false);
    expect(trustKeepsSlot(trust('10.1.2.3:5001', 'disabled'), '10.1.2.3')).toBe(false);
    expect(trustKeepsSlot(trust(undefined), '10.1.2.3')).toBe(false);
    expect(trustKeepsSlot(undefined, '10.1.2.3')).toBe(false);
  });
});
