import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrellisNode } from '../router/index.js';
import { messageDraft } from './support/devices.js';
import { postMessages, waitFor } from './support/federation.js';
import { ReferenceFederation, referenceChat, type FederationChat as Chat } from './support/reference-federation.js';


describe('the partner trust goes down and comes back', () => {
  let federation: ReferenceFederation;
  let msk: TrellisNode;
  let globex: TrellisNode;
  beforeAll(async () => {
    federation = await ReferenceFederation.start();
    await federation.waitUntilRouted();
    [msk, globex] = [federation.node('cts-acme-msk'), federation.node('cts-globex')];
  }, 180_000); // six nodes starting on a loaded 2-core machine
  afterAll(() => federation?.stop());

  const count = async (node: TrellisNode, chat: Chat) => (await node.store.chatSummary(chat.id)).events;

  async function waitForBoth(chat: Chat, expected: number, timeoutMs = 60_000): Promise<void> {
    await waitFor(`${expected} events of the ${chat.name} on both`, async () => (await count(msk, chat)) === expected && (await count(globex, chat)) === expected, timeoutMs, async () => {
      const transits = await Promise.all(['ets-acme', 'rts-ru'].map(async (name) => {
        const node = federation.node(name);
        const log = await node.store.chatLog(chat.id);
        const held = (await node.store.heldSummary()).filter((h) => h.chatId === chat.id);
        return `${name} holds ${log.length} (forwarding ${log.filter((e) => e.forwardTo.length > 0).length}), held ${JSON.stringify(held.map((h) => [h.origin.slice(0, 4), h.events, h.minSeq]))}`;
      }));
      return `msk ${await count(msk, chat)}, globex ${await count(globex, chat)}; ${transits.join('; ')}; msk links ${JSON.stringify(msk.linkStatus().map((l) => l.status))}`;
    });
  }

  async function setPartnerTrust(status: 'enabled' | 'disabled'): Promise<void> {
    await msk.setTrustStatus(globex.id, status);
    await waitFor(`the partner link ${status === 'enabled' ? 'up' : 'down'}`, () => (status === 'enabled') === (msk.link(globex.id) !== undefined && globex.link(msk.id) !== undefined));
  }

  it('fails the partner chat over through the RTS, holds the corporate chat back, explains both, and delivers all once it is back', async () => {
    const partner = await federation.createChat(referenceChat('partner'));
    const corporate = await federation.createChat(referenceChat('corporate'));
    await waitForBoth(partner, 1);
    await waitForBoth(corporate, 1);

    await setPartnerTrust('disabled');
    await waitFor('msk routes globex through its ETS', () => msk.routing.nextHop(globex.id, 0) === federation.id('ets-acme'));
    const partnerRoute = (await msk.inspect.chatRoute(partner.id)).destinations[0]!;
    expect(partnerRoute.path.map((id) => federation.nameOf(id))).toEqual(['cts-acme-msk', 'ets-acme', 'rts-ru', 'cts-globex']);
    expect(partnerRoute.candidates.find((c) => c.via === globex.id)!.why).toBe('the trust is blocked');
    const corporateRoute = await msk.inspect.chatRoute(corporate.id);
    expect(corporateRoute.policy).toBe('corporate');
    expect(corporateRoute.destinations[0]!.via).toBeUndefined();
    expect(corporateRoute.destinations[0]!.candidates.find((c) => c.via === federation.id('ets-acme'))!.why).toContain('corporate');

    for (let i = 0; i < 10; i++) {
      await msk.post(messageDraft(partner, partner.sender.get('cts-acme-msk')!, `partner ${i}`));
      await globex.post(messageDraft(partner, partner.sender.get('cts-globex')!, `partner back ${i}`));
      await msk.post(messageDraft(corporate, corporate.sender.get('cts-acme-msk')!, `corporate ${i}`));
    }
    await waitForBoth(partner, 21);
    // The corporate chat's messages wait on msk: none has left the contour.
    expect(await count(globex, corporate)).toBe(1);
    for (const transit of ['ets-acme', 'rts-ru']) expect(await count(federation.node(transit), corporate)).toBe(0);

    await setPartnerTrust('enabled');
    await waitForBoth(corporate, 11);
    expect((await msk.inspect.chatRoute(corporate.id)).destinations[0]!.path.map((id) => federation.nameOf(id))).toEqual(['cts-acme-msk', 'cts-globex']);
    expect((await msk.inspect.chatRoute(partner.id)).destinations[0]!.path.map((id) => federation.nameOf(id))).toEqual(['cts-acme-msk', 'cts-globex']);
    const digests = await Promise.all([msk, globex].map(async (node) => (await node.store.chatSummary(partner.id)).digest.toString('hex')));
    expect(digests[0]).toBe(digests[1]);
  }, 120_000);

  it('delivers 10,000 events exactly once while the trust is cut and restored five times, and every queue drains', async () => {
    const partner = await federation.createChat(referenceChat('partner'));
    await waitForBoth(partner, 1);
    const PER_SIDE = 5_000;
    const posting = Promise.all([
      postMessages(msk, partner, partner.sender.get('cts-acme-msk')!, PER_SIDE, 100),
      postMessages(globex, partner, partner.sender.get('cts-globex')!, PER_SIDE, 100),
    ]);
    for (let cut = 0; cut < 5; cut++) {
      await new Promise((resolve) => setTimeout(resolve, 300));
      await setPartnerTrust('disabled');
      await new Promise((resolve) => setTimeout(resolve, 300));
      await setPartnerTrust('enabled');
    }
    await posting;
    await waitForBoth(partner, 1 + 2 * PER_SIDE, 120_000);
    const [inMsk, inGlobex] = await Promise.all([msk.store.chatSummary(partner.id), globex.store.chatSummary(partner.id)]);
    expect(inMsk.digest.equals(inGlobex.digest)).toBe(true);
    // Every destination queue on every node drains to zero (the cursors follow the last acknowledgements).
    await federation.waitUntilDrained();
  }, 240_000);
});
