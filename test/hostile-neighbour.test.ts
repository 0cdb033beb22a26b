import { randomBytes, randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { identityFromSeed, type Identity } from '../crypto/index.js';
import { EventKind } from '../proto/gen/trellis/v1/event.js';
import { VOUCHED_BY_TRUST } from '../router/routing/directory.js';
import type { TrellisNode } from '../router/index.js';
import { createdDraft, membersRemovedDraft, messageDraft, newChat } from './support/devices.js';
import { LoneNode, TestPair, waitFor } from './support/federation.js';
import { RoguePeer, type RogueLink } from './support/rogue-peer.js';

/**
 * A neighbour with a valid trust (token pair, identity key) that lies about others, spoken
 * to over the wire contract directly (test/support/rogue-peer.ts): a trust says who may
 * talk, not what they may claim about third servers (router/routing/authority.ts).
 */
const stranger = (): { id: string; identity: Identity } => ({ id: randomUUID(), identity: identityFromSeed(randomBytes(32)) });

async function journalled(node: TrellisNode, kind: string, code: string, peer: string): Promise<void> {
  await waitFor(`${kind} ${code} journalled`, async () => (await node.store.auditLog()).some((e) => e.kind === kind && e.code === code && e.peer === peer));
}

describe('server records: only someone with the authority vouches for a server', () => {
  let pair: TestPair;
  let rogue: RoguePeer;
  let link: RogueLink;
  const links: RogueLink[] = [];

  beforeEach(async () => {
    pair = await TestPair.start();
    await waitFor('A and B linked', () => pair.a.link(pair.b.id) !== undefined);
    rogue = await RoguePeer.attach(pair.a);
    link = await rogue.connect();
  });
  afterEach(async () => {
    for (const open of [link, ...links.splice(0)]) open?.close();
    await pair?.stop();
  });

  it('refuses a server a partner CTS invents, even with its own word for it, and never stores its events as authentic', async () => {
    const invented = stranger();
    const fields = { serverId: invented.id, kind: 'CTS', name: 'invented', upstream: rogue.id };
    const record = rogue.record(fields, invented.identity);
    await link.sendRecords([record, rogue.record(fields, invented.identity, [rogue.attest(record)])]);
    await journalled(pair.a, 'record-refused', 'no-authority', rogue.id);
    expect(pair.a.directory.get(invented.id)).toBeUndefined();

    // Events "from" the invented server, passed on by the partner: held unchecked, never stored.
    const chat = newChat([`victor@${pair.a.id}`, `mallory@${invented.id}`]);
    expect(await link.exchange(rogue.events(chat, 2, invented.id, invented.identity))).toEqual([]);
    expect(await pair.a.store.chatLog(chat.id)).toHaveLength(0);
    expect(pair.a.link(rogue.id)).toBeDefined();
  });

  it('lets no record learnt from a neighbour block a trust an administrator adds later', async () => {
    const real = RoguePeer.unpaired(pair.a);
    // The partner passes on a record of a real server (no trust with A yet) under a key of its own.
    await link.sendRecords([real.record({}, identityFromSeed(randomBytes(32)))]);
    await journalled(pair.a, 'record-refused', 'no-authority', rogue.id);

    await pair.a.setTrust(real.trustFor(pair.a));
    const realLink = await real.connect();
    links.push(realLink);
    await waitFor('the real server linked', () => pair.a.link(real.id) !== undefined);
    await realLink.sendRecords([real.record()]);
    await waitFor('the real record believed through the trust', () => pair.a.directory.get(real.id)?.vouchedBy === VOUCHED_BY_TRUST);
    expect(pair.a.directory.get(real.id)?.identityKey.equals(real.identity.publicKey)).toBe(true);
  });

  it('believes what an upstream registered, along a chain that ends at our trust, and nothing past its authority', async () => {
    const ets = await RoguePeer.attach(pair.a, { kind: 'ETS', role: 'upstream' });
    const etsLink = await ets.connect();
    links.push(etsLink);
    const [rts, below, far, elsewhere] = [stranger(), stranger(), stranger(), stranger()];
    const attested = (fields: { serverId: string; kind: string; upstream: string }, identity: Identity, attester: { id: string; identity: Identity } = ets) => {
      const record = ets.record({ ...fields, name: 'made-up' }, identity);
      return { ...record, attestations: [ets.attest(record, attester)] };
    };
    await etsLink.sendRecords([
      // Out of order: the far CTS's attester (the RTS) is believed only after the ETS vouches for it.
      attested({ serverId: far.id, kind: 'CTS', upstream: rts.id }, far.identity, rts),
      ets.record({ upstream: rts.id }),
      attested({ serverId: rts.id, kind: 'RTS', upstream: '' }, rts.identity),
      attested({ serverId: below.id, kind: 'CTS', upstream: ets.id }, below.identity),
      // A CTS the ETS did not register: its word for it carries nothing.
      attested({ serverId: elsewhere.id, kind: 'CTS', upstream: randomUUID() }, elsewhere.identity),
      // A record of A's partner under another key: our own trust's key wins.
      attested({ serverId: pair.b.id, kind: 'CTS', upstream: ets.id }, identityFromSeed(randomBytes(32))),
    ]);
    await waitFor('the far CTS believed', () => pair.a.directory.get(far.id) !== undefined);
    expect(pair.a.directory.get(below.id)).toMatchObject({ vouchedBy: ets.id, depth: 1 });
    expect(pair.a.directory.get(rts.id)).toMatchObject({ vouchedBy: ets.id, depth: 1 });
    expect(pair.a.directory.get(far.id)).toMatchObject({ vouchedBy: rts.id, depth: 2 });
    await journalled(pair.a, 'record-refused', 'no-authority', ets.id);
    await journalled(pair.a, 'record-refused', 'key-mismatch', ets.id);
    expect(pair.a.directory.get(elsewhere.id)).toBeUndefined();
    expect(pair.a.directory.get(pair.b.id)?.vouchedBy).toBe(VOUCHED_BY_TRUST);

    // Events of a server believed through the chain check against its attested key, and are stored.
    const chat = newChat([`victor@${pair.a.id}`, `mallory@${far.id}`]);
    expect(await etsLink.exchange(ets.events(chat, 2, far.id, far.identity))).toEqual([]);
    expect(await pair.a.store.chatLog(chat.id)).toHaveLength(2);
  });
});

describe('reachability: a neighbour announces only what its attested position allows', () => {
  it('refuses a partner CTS that announces a path to another server, and routes nothing for it through the partner', async () => {
    const pair = await TestPair.start();
    const rogue = await RoguePeer.attach(pair.a);
    const link = await rogue.connect();
    try {
      // B is down: a path through the partner would be A's only way to it.
      await pair.b.stop();
      await waitFor('A sees B down', () => pair.a.link(pair.b.id) === undefined);
      await link.announce([[rogue.id], [rogue.id, pair.b.id]]);
      await journalled(pair.a, 'reachability-refused', 'not-transit', rogue.id);
      expect(pair.a.routing.nextHop(pair.b.id, 0)).toBeUndefined();
      expect(pair.a.routing.explain(pair.b.id, 0).candidates.map((candidate) => candidate.via)).toEqual([pair.b.id]);
      expect(pair.a.link(rogue.id)).toBeDefined();
    } finally {
      link.close();
      await pair.stop();
    }
  });

  it('refuses an ETS that announces a server it did not register, and keeps what it did register', async () => {
    const lone = await LoneNode.start('RTS');
    const rts = lone.node;
    const opened: RogueLink[] = [];
    try {
      const ets = await RoguePeer.attach(rts, { kind: 'ETS', role: 'downstream' });
      const cts = await RoguePeer.attach(rts, { kind: 'CTS', role: 'downstream' });
      // The CTS below the RTS says who it is, then goes away: its link is down.
      const ctsLink = await cts.connect();
      await ctsLink.sendRecords([cts.record()]);
      await waitFor('the CTS believed', () => rts.directory.get(cts.id) !== undefined);
      ctsLink.close();
      await waitFor('the CTS link down', () => rts.link(cts.id) === undefined);

      const etsLink = await ets.connect();
      opened.push(etsLink);
      const below = stranger();
      const belowRecord = ets.record({ serverId: below.id, kind: 'CTS', name: 'below', upstream: ets.id }, below.identity);
      await etsLink.sendRecords([ets.record(), { ...belowRecord, attestations: [ets.attest(belowRecord)] }]);
      await etsLink.announce([[ets.id], [ets.id, cts.id], [ets.id, below.id]]);
      await journalled(rts, 'reachability-refused', 'no-authority', ets.id);
      await waitFor('the registered CTS reached through the ETS', () => rts.routing.nextHop(below.id, 0) === ets.id);
      expect(rts.routing.nextHop(cts.id, 0)).toBeUndefined();
    } finally {
      for (const open of opened) open.close();
      await lone.stop();
    }
  });
});

describe('backfill: only a member server, or a transit carrying the chat to one, reads a chat', () => {
  it('refuses a partner CTS outside the chat, and answers a carrying ETS only with what it would carry', async () => {
    const pair = await TestPair.start();
    const opened: RogueLink[] = [];
    try {
      await waitFor('A and B linked', () => pair.a.link(pair.b.id) !== undefined);
      const partner = await RoguePeer.attach(pair.a);
      const ets = await RoguePeer.attach(pair.a, { kind: 'ETS', role: 'upstream' });
      const [partnerLink, etsLink] = [await partner.connect(), await ets.connect()];
      opened.push(partnerLink, etsLink);
      // The ETS registers a CTS below it and carries A's chats to it, as its position allows.
      const below = stranger();
      const belowRecord = ets.record({ serverId: below.id, kind: 'CTS', name: 'below', upstream: ets.id }, below.identity);
      await etsLink.sendRecords([ets.record(), { ...belowRecord, attestations: [ets.attest(belowRecord)] }]);
      await etsLink.announce([[ets.id], [ets.id, below.id]]);
      await waitFor('the CTS below reached through the ETS', () => pair.a.routing.nextHop(below.id, 0) === ets.id);

      // A chat of A, B and the CTS below, with events of both A and B stored at A.
      const chat = newChat([`alice@${pair.a.id}`, `bob@${pair.b.id}`, `bea@${below.id}`]);
      await pair.a.post(createdDraft(chat, `alice@${pair.a.id}`));
      await waitFor('B holds the chat', async () => (await pair.b.store.chatMembers(chat.id)) !== undefined);
      await pair.b.post(messageDraft(chat, `bob@${pair.b.id}`, 'from B'));
      await waitFor('A holds B\'s message', async () => (await pair.a.store.chatOrigins(chat.id)).includes(pair.b.id));

      // The partner, in no way part of the chat, announces a path to a member and asks: it reads nothing.
      await partnerLink.announce([[partner.id], [partner.id, pair.b.id]]);
      expect(await backfillAnswers(partnerLink, chat.id, '')).toEqual({ origins: [], refusal: 'backfill-refused' });
      // The carrying ETS gets A's own chain: a CTS sends only its own events, never another member's.
      expect(await backfillAnswers(etsLink, chat.id, '')).toEqual({ origins: [pair.a.id], refusal: undefined });
      expect(await backfillAnswers(etsLink, chat.id, pair.b.id)).toEqual({ origins: [], refusal: 'backfill-refused' });
    } finally {
      for (const open of opened) open.close();
      await pair.stop();
    }
  });
});

/**
 * Asks for a chat's backfill and reads the answers up to a second request that is always
 * refused (a chat nobody has): the origins answered, and the first request's refusal, if any.
 */
async function backfillAnswers(link: RogueLink, chatId: string, origin: string): Promise<{ origins: string[]; refusal: string | undefined }> {
  await link.send({ kind: { $case: 'backfillRequest', value: { chatId, origin, fromSeq: 1 } } });
  await link.send({ kind: { $case: 'backfillRequest', value: { chatId: randomUUID(), origin: '', fromSeq: 1 } } });
  const origins: string[] = [];
  const refusals: string[] = [];
  while (refusals.length < (origins.length > 0 ? 1 : 2)) {
    const frame = await link.channel.next(10_000);
    if (!frame) throw new Error('stream ended while waiting for backfill');
    if (frame.kind?.$case === 'backfillAnswer') origins.push(frame.kind.value.origin);
    if (frame.kind?.$case === 'error' && frame.kind.value.code === 'backfill-refused') refusals.push(frame.kind.value.code);
  }
  return { origins: [...new Set(origins)], refusal: origins.length > 0 ? undefined : refusals[0] };
}

describe('membership at its place in the log', () => {
  it('holds what a server posts before the change that adds it has arrived, and stores it once it has', async () => {
    const pair = await TestPair.start();
    const [creator, joiner] = [await RoguePeer.attach(pair.a), await RoguePeer.attach(pair.a)];
    const [creatorLink, joinerLink] = [await creator.connect(), await joiner.connect()];
    try {
      const chat = creator.newChat();
      expect(await creatorLink.exchange(creator.events(chat, 1))).toEqual([]);
      // The joiner was added by the creator (an event A has not received yet) and posts: held, not refused.
      const added = creator.forge(chat, [{ kind: EventKind.EVENT_KIND_MEMBERS_ADDED, members: [...chat.members, `mallory@${joiner.id}`] }]);
      const posted = joiner.forge(chat, [{ kind: EventKind.EVENT_KIND_MESSAGE_POSTED, hlcMs: added[0]!.hlcMs + 10 }]);
      expect(await joinerLink.exchange(posted)).toEqual([]);
      expect((await pair.a.store.chatLog(chat.id)).some((event) => event.origin === joiner.id)).toBe(false);
      expect((await pair.a.store.heldSummary()).filter((held) => held.origin === joiner.id)).toHaveLength(1);
      // The change arrives: the held message is placed, once.
      expect(await creatorLink.exchange(added)).toEqual([]);
      await waitFor('the joiner\'s message stored', async () => (await pair.a.store.chatLog(chat.id)).filter((event) => event.origin === joiner.id).length === 1);
      expect(await pair.a.store.heldSummary()).toEqual([]);
    } finally {
      creatorLink.close();
      joinerLink.close();
      await pair.stop();
    }
  });

  it('refuses what a server posts after it left, and takes what it posted before, wherever it arrives', async () => {
    const pair = await TestPair.start();
    const rogue = await RoguePeer.attach(pair.a);
    const link = await rogue.connect();
    try {
      const chat = rogue.newChat();
      expect(await link.exchange(rogue.events(chat, 2))).toEqual([]);
      const head = (await pair.a.store.head(chat.id, rogue.id))!;
      const removal = await pair.a.post(membersRemovedDraft(chat, `victor@${pair.a.id}`, [`mallory@${rogue.id}`]));

      // Posted after the removal in log order: refused, journalled, not stored.
      const after = rogue.forge(chat, [{ hlcMs: removal.hlcMs + 10 }]);
      expect(await link.exchange(after)).toEqual(['not-a-member']);
      await journalled(pair.a, 'event-refused', 'not-a-member', rogue.id);
      // Posted before it, arriving only now: the server was a member at its place, so it is stored.
      rogue.rewind(chat, head);
      const before = rogue.forge(chat, [{ hlcMs: removal.hlcMs - 1 }]);
      expect(await link.exchange(before)).toEqual([]);
      expect((await pair.a.store.chatLog(chat.id)).map((event) => event.id.toString('hex'))).toContain(before[0]!.id.toString('hex'));
      expect((await pair.a.store.chatLog(chat.id)).some((event) => event.id.equals(after[0]!.id))).toBe(false);
    } finally {
      link.close();
      await pair.stop();
    }
  });
});
