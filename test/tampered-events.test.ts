import { randomBytes, randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chainEvent, identityFromSeed, signEventId, signServerRecord, type Identity } from '../crypto/index.js';
import { ServerRecordBody } from '../proto/gen/trellis/v1/link.js';
import type { Event } from '../proto/gen/trellis/v1/event.js';
import { createdDraft, messageDraft, newChat, type TestChat } from './support/devices.js';
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

  it('holds events of an origin it has no record of, checks them when its key comes from an authority, and stores only the genuine ones', async () => {
    const stranger = { id: randomUUID(), identity: identityFromSeed(randomBytes(32)) };
    const genuineChat = newChat([`victor@${pair.a.id}`, `sam@${stranger.id}`]);
    const forgedChat = newChat([`victor@${pair.a.id}`, `sam@${stranger.id}`]);
    const run = (chat: TestChat, signer: Identity): Event[] => {
      const created = chainEvent(stranger.id, undefined, createdDraft(chat, `sam@${stranger.id}`), { ms: Date.now(), counter: 0 });
      const message = chainEvent(stranger.id, created, messageDraft(chat, `sam@${stranger.id}`, 'hello'), { ms: Date.now(), counter: 1 });
      return [created, { ...message, signature: signEventId(signer, message.id) }];
    };
    // Relayed by a paired peer before the stranger's record: held, not refused, not stored.
    expect(await link.exchange(run(genuineChat, stranger.identity))).toEqual([]);
    expect(await link.exchange(run(forgedChat, rogue.identity))).toEqual([]);
    expect(await pair.a.store.chatLog(genuineChat.id)).toHaveLength(0);
    expect((await pair.a.store.heldSummary()).filter((held) => held.origin === stranger.id)).toHaveLength(2);

    // The stranger's own record, passed on by the partner: a CTS vouches for itself only, so the events stay held.
    const record = ServerRecordBody.encode({ serverId: stranger.id, kind: 'CTS', name: 'cts-stranger', identityKey: Buffer.from(stranger.identity.publicKey), upstream: '', issuedAtMs: Date.now() }).finish();
    await link.send({ kind: { $case: 'directory', value: { records: [{ record: Buffer.from(record), signature: signServerRecord(stranger.identity, record), attestations: [] }] } } });
    await waitFor('the record refused', async () => (await pair.a.store.auditLog()).some((e) => e.kind === 'record-refused' && e.code === 'no-authority' && e.peer === rogue.id));
    expect(pair.a.directory.get(stranger.id)).toBeUndefined();
    expect((await pair.a.store.heldSummary()).filter((held) => held.origin === stranger.id)).toHaveLength(2);

    // An administrator pins the stranger's key (a trust): the genuine run is stored, the forged one refused.
    await pair.a.setTrust({ ...rogue.trustFor(pair.a), server_id: stranger.id, name: 'cts-stranger', identity_key: Buffer.from(stranger.identity.publicKey).toString('base64') });
    await waitFor('the genuine run stored', async () => (await pair.a.store.chatLog(genuineChat.id)).length === 2);
    await waitFor('the forged run refused', async () => (await pair.a.store.auditLog()).some((e) => e.kind === 'event-refused' && e.code === 'bad-signature'));
    expect(await pair.a.store.chatLog(forgedChat.id)).toHaveLength(0);
    expect((await pair.a.store.heldSummary()).filter((held) => held.origin === stranger.id)).toHaveLength(0);
  });
  it('refuses and journals a record that carries another key for a known server, and keeps the first', async () => {
    const impostor = identityFromSeed(randomBytes(32));
    // The rogue peer's own key was pinned at its handshake: a record naming it with another key is an impostor's.
    const record = ServerRecordBody.encode({ serverId: rogue.id, kind: 'CTS', name: 'impostor', identityKey: Buffer.from(impostor.publicKey), upstream: '', issuedAtMs: Date.now() }).finish();
    await link.send({ kind: { $case: 'directory', value: { records: [{ record: Buffer.from(record), signature: signServerRecord(impostor, record), attestations: [] }] } } });
    await waitFor('the record refused', async () => (await pair.a.store.auditLog()).some((e) => e.kind === 'record-refused' && e.code === 'key-mismatch' && e.peer === rogue.id));
    expect(pair.a.directory.get(rogue.id)).toBeUndefined();
    // The link carries on.
    const chat = rogue.newChat();
    expect(await link.exchange(rogue.events(chat, 2))).toEqual([]);
    expect(await pair.a.store.chatLog(chat.id)).toHaveLength(2);
  });

  it('refuses a path that loops through it and a partner posing as a transit, journals both, and traffic flows', async () => {
    const beyond = randomUUID();
    await link.send({ kind: { $case: 'reachability', value: { paths: [{ servers: [rogue.id] }, { servers: [rogue.id, pair.a.id, pair.b.id] }, { servers: [rogue.id, beyond] }], withdrawn: [], update: false } } });
    await waitFor('the loop refused', async () => (await pair.a.store.auditLog()).some((e) => e.kind === 'reachability-refused' && e.code === 'loop' && e.peer === rogue.id));
    await waitFor('the transit path refused', async () => (await pair.a.store.auditLog()).some((e) => e.kind === 'reachability-refused' && e.code === 'not-transit' && e.peer === rogue.id));
    // Neither is followed: B (unlinked here) and the server beyond get no route through the partner.
    expect(pair.a.routing.nextHop(beyond, 0)).toBeUndefined();
    expect(pair.a.routing.nextHop(pair.b.id, 0)).toBeUndefined();
    const chat = rogue.newChat();
    expect(await link.exchange(rogue.events(chat, 3))).toEqual([]);
    expect(await pair.a.store.chatLog(chat.id)).toHaveLength(3);
  });
});
