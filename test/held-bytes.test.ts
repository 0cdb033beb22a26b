import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EventKind, type Event } from '../proto/gen/trellis/v1/event.js';
import { heldEventBytes, type HeldSummary } from '../store/index.js';
import type { TestChat } from './support/devices.js';
import { TestPair, waitFor } from './support/federation.js';
import { RoguePeer, type RogueLink } from './support/rogue-peer.js';

/** Byte bounds small enough for a few events with long member lists; the event bounds stay far off. */
const HELD_BOUNDS = { held_bytes_per_chain: 40 * 1024, held_bytes_per_peer: 64 * 1024, held_events_per_chain: 1_000, held_events_per_peer: 1_000 };
/** Events sent beyond each gap: their member lists alone are several times a chain's byte bound. */
const EVENTS_BEYOND_GAP = 30;
const MEMBERS_PER_EVENT = 40;

const sumBytes = (shares: readonly HeldSummary[]) => shares.reduce((sum, share) => sum + share.bytes, 0);

/**
 * Issue item 9: events held beyond a gap count what the store keeps of them (members,
 * sender, forward set, body), within one batch as much as across batches.
 */
describe('held events are counted by the bytes the store keeps of them', () => {
  let pair: TestPair;
  let rogue: RoguePeer;
  let link: RogueLink;

  beforeEach(async () => {
    pair = await TestPair.start({ link: HELD_BOUNDS });
    rogue = await RoguePeer.attach(pair.a);
    link = await rogue.connect();
  });
  afterEach(async () => {
    link?.close();
    await pair?.stop();
  });

  /** A stored chat of the rogue's, then `EVENTS_BEYOND_GAP` members-added events with long lists past a one-event gap. */
  async function beyondGap(): Promise<{ chat: TestChat; events: Event[] }> {
    const chat = rogue.newChat();
    expect(await link.exchange(rogue.events(chat, 1))).toEqual([]);
    const members = Array.from({ length: MEMBERS_PER_EVENT }, (_, i) => `member-${i}-${'m'.repeat(150)}@${rogue.id}`);
    const forged = rogue.forge(chat, Array.from({ length: EVENTS_BEYOND_GAP + 1 }, () => ({ kind: EventKind.EVENT_KIND_MEMBERS_ADDED, members: [...chat.members, ...members] })));
    return { chat, events: rogue.signedRun(forged.slice(1)) };
  }

  it('a batch of events with long member lists is held up to the byte bounds, the rest refused and journalled, the link up', async () => {
    const first = await beyondGap();
    const eventBytes = heldEventBytes(first.events[0]!);
    // Each event carries kilobytes of members against a short body: only a count of them sees the bound.
    expect(eventBytes * EVENTS_BEYOND_GAP).toBeGreaterThan(2 * HELD_BOUNDS.held_bytes_per_chain);

    // One batch, one round: the chain bound stops it.
    expect(await link.exchange(first.events)).toEqual(['too-far-ahead']);
    const chainHeld = (await pair.a.store.heldSummary()).filter((share) => share.chatId === first.chat.id);
    expect(sumBytes(chainHeld)).toBeLessThanOrEqual(HELD_BOUNDS.held_bytes_per_chain);
    expect(sumBytes(chainHeld)).toBeGreaterThan(HELD_BOUNDS.held_bytes_per_chain - eventBytes);

    // A second chat of the same peer: the peer bound stops it.
    const second = await beyondGap();
    expect(await link.exchange(second.events)).toEqual(['too-far-ahead']);
    const peerHeld = (await pair.a.store.heldSummary()).filter((share) => share.peer === rogue.id);
    expect(sumBytes(peerHeld)).toBeLessThanOrEqual(HELD_BOUNDS.held_bytes_per_peer);
    expect(sumBytes(peerHeld)).toBeGreaterThan(HELD_BOUNDS.held_bytes_per_peer - eventBytes);
    for (const chat of [first.chat, second.chat]) {
      expect(sumBytes(peerHeld.filter((share) => share.chatId === chat.id))).toBeLessThanOrEqual(HELD_BOUNDS.held_bytes_per_chain);
    }

    await waitFor('too-far-ahead journalled', async () =>
      (await pair.a.store.auditLog()).some((entry) => entry.kind === 'event-refused' && entry.code === 'too-far-ahead' && entry.peer === rogue.id),
    );
    // The link carries on: a good event of a new chat is stored.
    const chat = rogue.newChat();
    expect(await link.exchange(rogue.events(chat, 1))).toEqual([]);
    expect((await pair.a.store.head(chat.id, rogue.id))?.seq).toBe(1);
    expect(pair.a.link(rogue.id)).toBeDefined();
  });
});
