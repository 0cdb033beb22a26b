import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chainEvent, eventId, signEventId } from '../crypto/index.js';
import type { Event } from '../proto/gen/trellis/v1/event.js';
import { messageDraft } from './support/devices.js';
import { TestPair, waitFor } from './support/federation.js';
import { RoguePeer, type RogueLink } from './support/rogue-peer.js';

const flipBit = (bytes: Uint8Array, index = 0): Buffer => {
  const copy = Buffer.from(bytes);
  copy[index]! ^= 0x01;
  return copy;
};

describe('authenticity: tampered events are refused and the link survives', () => {
  let pair: TestPair;
  let rogue: RoguePeer;
  let link: RogueLink;
  beforeEach(async () => {
    pair = await TestPair.start({ aOnlyAccepts: true, bOnlyAccepts: true });
    rogue = await RoguePeer.attach(pair.a);
    link = await rogue.connect();
  });
  afterEach(async () => {
    link?.close();
    await pair?.stop();
  });

  /** Sends one batch and returns the refusal code the node answers with, after its ack. */
  async function refusalOf(events: Event[]): Promise<string> {
    const sent = await link.sendBatch(events);
    const error = await link.until('error');
    expect(error.fatal).toBe(false);
    expect((await link.until('ack')).linkSeq).toBe(sent);
    return error.code;
  }

  const tamperings: Array<[string, (events: Event[]) => Event[], string]> = [
    ['a flipped bit in a body', (e) => [e[0]!, { ...e[1]!, body: flipBit(e[1]!.body, 30) }, e[2]!], 'bad-id'],
    ['a flipped bit in the signature', (e) => [...e.slice(0, 2), { ...e[2]!, signature: flipBit(e[2]!.signature, 5) }], 'bad-signature'],
    ['a flipped bit in the chain link', (e) => [e[0]!, { ...e[1]!, prev: flipBit(e[1]!.prev) }, e[2]!], 'bad-id'],
  ];

  for (const [what, tamper, code] of tamperings) {
    it(`refuses ${what}, journals it, and still takes good events after`, async () => {
      const chat = rogue.newChat();
      const good = rogue.events(chat, 3);
      expect(await refusalOf(tamper(good))).toBe(code);
      expect(await pair.a.store.chatLog(chat.id)).toHaveLength(0);
      await waitFor('refusal journalled', async () => (await pair.a.store.auditLog()).some((e) => e.kind === 'event-refused' && e.code === code && e.peer === rogue.id));

      await link.sendBatch(good);
      await link.until('ack');
      expect((await pair.a.store.chatLog(chat.id)).map((e) => e.seq)).toEqual([1, 2, 3]);
      expect(pair.a.link(rogue.id)).toBeDefined();
    });
  }

  it('refuses a correctly signed event that forks the stored chain', async () => {
    const chat = rogue.newChat();
    const [first, second] = rogue.events(chat, 2);
    await link.sendBatch([first!, second!]);
    await link.until('ack');
    // A second event at seq 2 of the same chain, signed by the origin: a fork, not an extension.
    const fork = chainEvent(rogue.id, { seq: 1, id: first!.id }, messageDraft(chat, `mallory@${rogue.id}`, 'rewritten'), { ms: Date.now(), counter: 0 });
    fork.signature = signEventId(rogue.identity, fork.id);
    expect(await refusalOf([fork])).toBe('bad-chain');
    expect((await pair.a.store.chatLog(chat.id)).map((e) => e.id.toString('hex'))).toEqual([first!.id.toString('hex'), second!.id.toString('hex')]);
  });

  it('refuses events of an origin it holds no trust with, even relayed by a paired peer', async () => {
    const chat = rogue.newChat();
    const stranger = randomUUID();
    const events = rogue.events(chat, 2, stranger);
    expect(eventId(events[0]!).equals(events[0]!.id)).toBe(true);
    expect(await refusalOf(events)).toBe('unknown-origin');
    expect(await pair.a.store.chatLog(chat.id)).toHaveLength(0);
    // The refusal names the chat, never the body.
    const journal = (await pair.a.store.auditLog()).filter((e) => e.kind === 'event-refused');
    expect(journal.at(-1)?.code).toBe('unknown-origin');
  });
});
