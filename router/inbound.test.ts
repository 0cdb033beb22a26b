import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { chainEvent, cryptoReady, identityFromSeed, signEventId, type ChainPosition, type Identity } from '../crypto/index.js';
import { EventKind, type Event } from '../proto/gen/trellis/v1/event.js';
import { openEmbeddedStore, type EventStore, type LinkFence } from '../store/index.js';
import { ChainHeads } from './chain-heads.js';
import { HybridClock } from './clock.js';
import { HeldEvents } from './held-events.js';
import { Inbound } from './inbound.js';
import { SerialQueue } from './serial.js';

/**
 * Frames a link read while it was storing earlier ones are stored together
 * (Inbound.acceptFrames): the store must end exactly as if each frame had been accepted
 * alone, in order: the same events, the same signatures kept, the same held events and
 * the same cursor, through resends, gaps and membership changes.
 */
const PEER = 'peer';
const ORIGINS = ['origin-a', 'origin-b'];

function signedRun(identity: Identity, events: Event[]): Event[] {
  const last = events.at(-1)!;
  return [...events.slice(0, -1), { ...last, signature: signEventId(identity, last.id) }];
}

/** An origin's honest chain in one chat: origin-a opens it with the creation naming both origins and adds members at seq 6; the rest are messages. */
function chain(origin: string, chatId: string, length: number): Event[] {
  const creator = origin === ORIGINS[0];
  const events: Event[] = [];
  let head: ChainPosition | undefined;
  for (let seq = 1; seq <= length; seq++) {
    const kind = !creator ? EventKind.EVENT_KIND_MESSAGE_POSTED : seq === 1 ? EventKind.EVENT_KIND_CHAT_CREATED : seq === 6 ? EventKind.EVENT_KIND_MEMBERS_ADDED : EventKind.EVENT_KIND_MESSAGE_POSTED;
    const members = kind === EventKind.EVENT_KIND_MESSAGE_POSTED ? [] : ORIGINS.map((id) => `user@${id}`);
    const event = chainEvent(origin, head, { chatId, senderUser: `user@${origin}`, senderDevice: 'd', kind, members, body: Buffer.from(`body ${seq}`) }, { ms: Date.now(), counter: seq });
    head = { seq: event.seq, id: event.id };
    events.push(event);
  }
  return events;
}

const identities = new Map(ORIGINS.map((id, index) => [id, identityFromSeed(Buffer.alloc(32, index + 7))]));
const stores: EventStore[] = [];
beforeAll(() => cryptoReady());
afterEach(async () => {
  await Promise.all(stores.splice(0).map((store) => store.close()));
});

/** A receiving node's inbound half on a fresh embedded store; `originKey` says which origins it knows (all, by default). */
async function receiver(
  originKey = async (origin: string) => identities.get(origin)?.publicKey,
  fenceOf: (peerId: string) => LinkFence | undefined = () => undefined,
): Promise<{ store: EventStore; inbound: Inbound }> {
  const store = await openEmbeddedStore();
  stores.push(store);
  const inbound = new Inbound({
    store,
    heads: new ChainHeads(store),
    serial: new SerialQueue(),
    clock: new HybridClock(Date.now, 300_000),
    held: new HeldEvents({ eventsPerChain: 64, bytesPerChain: 1 << 20, eventsPerPeer: 256, bytesPerPeer: 1 << 22 }),
    originKey,
    onAppended: () => undefined,
    onReforwarded: () => undefined,
    audit: async () => undefined,
    fenceOf,
    // No frame here names destinations to pass on: the receiver is no transit.
    forwardRoutes: { selfId: 'receiver', runsThrough: () => false, knows: () => false },
  });
  await inbound.load();
  return { store, inbound };
}

describe('frames stored together', () => {
  /** Everything a receiver stored that the comparison covers: each chain with which events kept a signature, the held tally, the cursor. */
  async function storedState(store: EventStore) {
    const chains: string[] = [];
    for (const chatId of ['chat-1', 'chat-2']) {
      for (const origin of ORIGINS) {
        const events = await store.originEvents(chatId, origin, 1, 100);
        chains.push(`${chatId}/${origin}: ${events.map((event) => `${event.seq}${event.signature.length > 0 ? 's' : ''}`).join(' ')}`);
      }
    }
    return { chains, held: await store.heldSummary(), cursor: await store.linkCursor(PEER) };
  }

  /** Frames as a sender would cut them: runs of two chats and two origins, each ending at a signature. */
  function frames(): Event[][] {
    const a1 = chain('origin-a', 'chat-1', 12);
    const b1 = chain('origin-b', 'chat-1', 4);
    const a2 = chain('origin-a', 'chat-2', 5);
    const sign = (origin: string, events: Event[]) => signedRun(identities.get(origin)!, events);
    return [
      [...sign('origin-a', a1.slice(0, 3)), ...sign('origin-a', a2.slice(0, 2))],
      // Follows the frame before: one run with it, its signature kept at seq 3 and 5.
      sign('origin-a', a1.slice(3, 5)),
      // A membership change mid-run, then a resend of what the frames before brought.
      [...sign('origin-a', a1.slice(5, 8)), ...sign('origin-b', b1.slice(1, 3))],
      sign('origin-a', a1.slice(4, 9)),
      // Past a gap (held), then the gap itself; origin-b's creation after its later events.
      sign('origin-a', a1.slice(10, 12)),
      [...sign('origin-a', a1.slice(9, 10)), ...sign('origin-b', b1.slice(0, 1)), ...sign('origin-a', a2.slice(2, 5))],
    ];
  }

  it('ends as accepting each frame alone, in order, does', async () => {
    const sent = frames();
    const alone = await receiver();
    for (const [index, frame] of sent.entries()) await alone.inbound.accept(PEER, frame, { peerId: PEER, linkSeq: index + 1 });
    const together = await receiver();
    const outcome = await together.inbound.acceptFrames(PEER, sent, { peerId: PEER, linkSeq: sent.length });
    expect(outcome.refused).toEqual([]);
    const expected = await storedState(alone.store);
    expect(await storedState(together.store)).toEqual(expected);
    // The case is not trivial: every chain arrived whole and some signatures were dropped inside runs.
    expect(expected.chains).toContain('chat-1/origin-a: 1 2 3s 4 5s 6 7 8s 9s 10s 11 12s');
    expect(expected.cursor).toBe(sent.length);
  });

  it('ends as accepting each frame alone does when a frame resends part of the one before', async () => {
    const events = chain('origin-a', 'chat-2', 8);
    const identity = identities.get('origin-a')!;
    const sent = [events.slice(1, 4), events.slice(2, 6), events.slice(6, 8)].map((frame) => signedRun(identity, frame));
    const [alone, together] = [await receiver(), await receiver()];
    for (const { inbound } of [alone, together]) await inbound.accept(PEER, signedRun(identity, events.slice(0, 1)), { peerId: PEER, linkSeq: 1 });
    for (const [index, frame] of sent.entries()) await alone.inbound.accept(PEER, frame, { peerId: PEER, linkSeq: index + 2 });
    const holds = vi.spyOn(together.store, 'hold');
    const outcome = await together.inbound.acceptFrames(PEER, sent, { peerId: PEER, linkSeq: sent.length + 1 });
    expect(outcome.appended.map((event) => event.seq)).toEqual([2, 3, 4, 5, 6, 7, 8]);
    expect(await storedState(together.store)).toEqual(await storedState(alone.store));
    // The resent run waited for the head the first one moved: nothing was held on the way.
    expect(holds.mock.calls.every(([held]) => held.length === 0)).toBe(true);
  });

  it('moves the cursor only with the round that stores the last of the frames\' events', async () => {
    const events = chain('origin-a', 'chat-1', 4);
    const identity = identities.get('origin-a')!;
    const { store, inbound } = await receiver();
    // The creation ends the first round; the messages after it go in a second, which fails here.
    const append = store.append.bind(store);
    vi.spyOn(store, 'append').mockImplementationOnce(append).mockRejectedValueOnce(new Error('the store went away'));
    await expect(inbound.acceptFrames(PEER, [signedRun(identity, events.slice(0, 2)), signedRun(identity, events.slice(2, 4))], { peerId: PEER, linkSeq: 7 })).rejects.toThrow('went away');
    expect((await store.head('chat-1', 'origin-a'))?.seq).toBe(1);
    // Not 7: the link would not resend seqs 2 to 4, and nothing would ask for them.
    expect(await store.linkCursor(PEER)).toBe(0);
  });

  it('stores frames that follow each other in one transaction, with the last frame\'s cursor', async () => {
    const events = chain('origin-a', 'chat-1', 5);
    const identity = identities.get('origin-a')!;
    const { store, inbound } = await receiver();
    // The creation alone first: a membership change ends its round, whatever follows it.
    await inbound.accept(PEER, signedRun(identity, events.slice(0, 1)), { peerId: PEER, linkSeq: 1 });
    const sent = [signedRun(identity, events.slice(1, 2)), signedRun(identity, events.slice(2, 4)), signedRun(identity, events.slice(4, 5))];
    const appends = vi.spyOn(store, 'append');
    const outcome = await inbound.acceptFrames(PEER, sent, { peerId: PEER, linkSeq: 42 });
    expect(outcome.appended.map((event) => event.seq)).toEqual([2, 3, 4, 5]);
    expect(appends).toHaveBeenCalledTimes(1);
    expect(await store.linkCursor(PEER)).toBe(42);
  });
});

describe('events held for an origin not known yet', () => {
  it('stay counted against the peer that brought them once the origin is known, and that peer is asked for the gap', async () => {
    const known = new Set(['origin-a']);
    const { store, inbound } = await receiver(async (origin) => (known.has(origin) ? identities.get(origin)?.publicKey : undefined));
    const [a, b] = [identities.get('origin-a')!, identities.get('origin-b')!];
    // origin-b's seqs 2 and 3, past a gap, before its record: held unchecked, against PEER.
    const fromB = chain('origin-b', 'chat-1', 3);
    await inbound.accept(PEER, [...signedRun(a, chain('origin-a', 'chat-1', 1)), ...signedRun(b, fromB.slice(1, 3))], { peerId: PEER, linkSeq: 1 });
    const heldFrom = async () => (await store.heldSummary()).map(({ origin, peer, events }) => `${origin}: ${events} from ${peer}`);
    expect(await heldFrom()).toEqual([`origin-b: 2 from ${PEER}`]);
    // Its record arrives: the events check out, and are held again (seq 1 is still missing), still PEER's.
    known.add('origin-b');
    const outcomes = await inbound.originKnown('origin-b');
    expect(outcomes.flatMap((outcome) => outcome.refused)).toEqual([]);
    expect(await heldFrom()).toEqual([`origin-b: 2 from ${PEER}`]);
    // PEER brought them and is no server of the chat: only as their holder is it asked for the gap on its next link.
    expect((await inbound.openRequests(PEER)).gaps).toEqual([{ chatId: 'chat-1', origin: 'origin-b', fromSeq: 1 }]);
  });

  it('are left untouched, for the replica that holds the link now, when the lease on the peer that brought them was taken over', async () => {
    const known = new Set(['origin-a']);
    const stale = { peerId: PEER, token: 1 };
    const { store, inbound } = await receiver(async (origin) => (known.has(origin) ? identities.get(origin)?.publicKey : undefined), () => stale);
    expect(await store.raiseFence(stale)).toBe(true);
    const [a, b] = [identities.get('origin-a')!, identities.get('origin-b')!];
    await inbound.accept(PEER, [...signedRun(a, chain('origin-a', 'chat-1', 1)), ...signedRun(b, chain('origin-b', 'chat-1', 3).slice(1, 3))], { peerId: PEER, linkSeq: 1 });
    const before = await store.heldSummary();
    expect(before.map(({ peer, events }) => `${events} from ${peer}`)).toEqual([`2 from ${PEER}`]);
    // Another replica takes the link to PEER; then origin-b's record arrives here.
    expect(await store.raiseFence({ peerId: PEER, token: 2 })).toBe(true);
    known.add('origin-b');
    expect(await inbound.originKnown('origin-b')).toEqual([]);
    expect(await store.heldSummary()).toEqual(before);
  });
});
