import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { identityFromSeed } from '../crypto/index.js';
import type { TrellisNode, TrustConfig } from '../router/index.js';
import { createdDraft, messageDraft, newChat } from './support/devices.js';
import { freePort, LoneNode, postMessages, waitFor } from './support/federation.js';
import { RoguePeer } from './support/rogue-peer.js';

/**
 * A hop's ack says it took events over, not that they arrived (router/queues/delivery-cursors.ts):
 * only the destination's own acknowledgement does. An ETS that acks and then withdraws its
 * path hands back what it took, and the next route resends it.
 */
const MESSAGES = 20;

const token = (): string => randomBytes(24).toString('base64url');

/** A partner trust between two CTS: what each side accepts, and whether this side dials. */
function partnerTrust(peer: TrellisNode, accepts: string, presents: string, endpoint?: string): TrustConfig {
  return {
    server_id: peer.id,
    name: peer.config.server.name,
    kind: 'CTS',
    ...(endpoint ? { endpoint } : {}),
    token_for_accepting: accepts,
    token_for_connecting: presents,
    status: 'enabled',
    allow_trust_search: false,
    role: 'partner',
  };
}

describe('delivery through a hop that acks and withdraws', () => {
  const stops: Array<() => unknown> = [];
  afterEach(async () => {
    for (const stop of stops.splice(0).reverse()) await stop();
  });

  /**
   * A, a CTS whose chat with X (a real CTS registered below A's hostile ETS) holds
   * MESSAGES + 1 of A's events; X routed through the ETS, with a longer path through a TTS
   * below the ETS. Both neighbours speak the wire contract under the test's control.
   */
  async function hijackedRoute() {
    const a = await LoneNode.start('CTS');
    stops.push(() => a.stop());
    const ets = await RoguePeer.attach(a.node, { kind: 'ETS', role: 'upstream' });
    const tts = await RoguePeer.attach(a.node, { kind: 'TTS', role: 'transit' });
    // X is a real CTS registered below the ETS (it dials an ETS endpoint nobody answers: its upstream link stays down).
    const x = await LoneNode.start('CTS', {}, { ets_id: ets.id, ets_name: 'ets', ets_host: `127.0.0.1:${await freePort()}`, ets_token: `${token()}:${token()}` });
    stops.push(() => x.stop());
    const xRecord = x.node.directory.self.signed;

    // The ETS vouches for X (its registration is real) and announces it; a TTS below the ETS offers a longer path.
    const etsLink = await ets.connect();
    const ttsLink = await tts.connect();
    stops.push(() => etsLink.close(), () => ttsLink.close());
    await etsLink.sendRecords([ets.record(), { ...xRecord, attestations: [ets.attest(xRecord)] }]);
    await etsLink.announce([[ets.id], [ets.id, x.node.id]]);
    await ttsLink.sendRecords([tts.record({ upstream: ets.id })]);
    await ttsLink.announce([[tts.id], [tts.id, ets.id, x.node.id]]);
    await waitFor('X routed through the ETS', () => a.node.routing.nextHop(x.node.id, 0) === ets.id);
    await waitFor('the TTS path to X usable', () => a.node.routing.reach.reachOf(tts.id).has(x.node.id));

    const chat = newChat([`alice@${a.node.id}`, `xena@${x.node.id}`]);
    await a.node.post(createdDraft(chat, `alice@${a.node.id}`));
    await postMessages(a.node, chat, `alice@${a.node.id}`, MESSAGES);
    const posted = (await a.node.store.chatLog(chat.id)).map((event) => event.id.toString('hex')).sort();
    expect(posted).toHaveLength(MESSAGES + 1);
    const queue = () => a.node.inspect.queueOf(x.node.id);

    return { a, ets, tts, x, etsLink, ttsLink, chat, posted, queue };
  }

  it('resends what a hijacking ETS acknowledged, by the next route, and counts it pending until the destination acknowledges it itself', async () => {
    const { a, ets, tts, x, etsLink, ttsLink, chat, posted, queue } = await hijackedRoute();
    // The ETS takes everything over and acks it: no hop owes X anything, but X has confirmed nothing.
    const taken = await etsLink.takeEvents(posted.length);
    await taken.ack();
    await waitFor('the ETS took X\'s queue', async () => (await queue()).depth === 0);
    expect((await queue()).unconfirmed).toBe(posted.length);

    // It withdraws X: what it acknowledged is owed again, and the TTS is resent all of it.
    await etsLink.announce([], { update: true, withdrawn: [x.node.id] });
    await waitFor('X routed through the TTS', () => a.node.routing.nextHop(x.node.id, 0) === tts.id);
    const resent = await ttsLink.takeEvents(posted.length);
    expect(resent.events.map((event) => event.id.toString('hex')).sort()).toEqual(posted);
    expect(await queue()).toMatchObject({ depth: posted.length, unconfirmed: posted.length });
    await waitFor('the hand-back journalled', async () => (await a.node.store.auditLog()).some((entry) => entry.kind === 'delivery-handed-back' && entry.peer === ets.id));

    // The TTS's ack hands them over again; they stay unconfirmed until X acknowledges them itself.
    await resent.ack();
    await waitFor('the TTS took X\'s queue', async () => (await queue()).depth === 0);
    expect((await queue()).unconfirmed).toBe(posted.length);

    // X links directly: it is its own next hop, and its acks confirm delivery end to end.
    const [aAccepts, xAccepts] = [token(), token()];
    await a.node.setTrust(partnerTrust(x.node, aAccepts, xAccepts));
    await x.node.setTrust(partnerTrust(a.node, xAccepts, aAccepts, `127.0.0.1:${a.node.port}`));
    await waitFor('X confirmed every event', async () => (await queue()).unconfirmed === 0, 30_000, async () => JSON.stringify(await queue()));
    // X acknowledges only what it committed: by now it holds each event once.
    const stored = (await x.node.store.chatLog(chat.id)).map((event) => event.id.toString('hex')).sort();
    expect(stored).toEqual(posted);
  });

  it('resends nothing when the ETS\'s link only drops: an honest transit holds what it took', async () => {
    const { a, tts, x, etsLink, ttsLink, chat, posted, queue } = await hijackedRoute();
    await (await etsLink.takeEvents(posted.length)).ack();
    await waitFor('the ETS took X\'s queue', async () => (await queue()).depth === 0);

    etsLink.close();
    await waitFor('X routed through the TTS', () => a.node.routing.nextHop(x.node.id, 0) === tts.id);
    const next = await a.node.post(messageDraft(chat, `alice@${a.node.id}`, 'after the drop'));
    // The TTS's first batch starts after what the ETS took: had it been handed back, it would come first.
    const first = await ttsLink.takeEvents(1);
    expect(first.events.map((event) => event.id.toString('hex'))).toEqual([next.id.toString('hex')]);
    expect((await queue()).unconfirmed).toBe(posted.length + 1);
  });

  it('resends nothing to an ETS that withdrew and announces again: it holds, or dropped, what it took', async () => {
    const { a, ets, tts, x, etsLink, ttsLink, chat, posted } = await hijackedRoute();
    await (await etsLink.takeEvents(posted.length)).ack();
    await etsLink.announce([], { update: true, withdrawn: [x.node.id] });
    await waitFor('X routed through the TTS', () => a.node.routing.nextHop(x.node.id, 0) === tts.id);
    expect((await ttsLink.takeEvents(posted.length)).events).toHaveLength(posted.length);

    await etsLink.announce([[ets.id, x.node.id]], { update: true });
    await waitFor('X routed through the ETS again', () => a.node.routing.nextHop(x.node.id, 0) === ets.id);
    const next = await a.node.post(messageDraft(chat, `alice@${a.node.id}`, 'after the return'));
    const first = await etsLink.takeEvents(1);
    expect(first.events.map((event) => event.id.toString('hex'))).toEqual([next.id.toString('hex')]);
  });

  it('hands back what the ETS took when its path is refused on a rejudge, not only when it is withdrawn', async () => {
    const { a, x, etsLink, posted, queue } = await hijackedRoute();
    await (await etsLink.takeEvents(posted.length)).ack();
    await waitFor('the ETS took X\'s queue', async () => (await queue()).depth === 0);

    // Our administrator pins another key for X: the record the ETS vouched for no longer stands, nor its path.
    const trust = partnerTrust(x.node, token(), token());
    await a.node.setTrust({ ...trust, identity_key: Buffer.from(identityFromSeed(randomBytes(32)).publicKey).toString('base64') });
    await waitFor('X unrouted', () => a.node.routing.nextHop(x.node.id, 0) === undefined);
    await waitFor('X\'s events owed again', async () => (await queue()).depth === posted.length, 10_000, async () => JSON.stringify(await queue()));
  });
});
