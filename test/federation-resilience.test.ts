import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { messageDraft, readMessage } from './support/devices.js';
import { postMessages, waitFor } from './support/federation.js';
import { filesContaining } from './support/files.js';
import { ReferenceFederation, referenceChat, type FederationChat as Chat } from './support/reference-federation.js';


describe('the reference federation through a transit restart and a partition', () => {
  let federation: ReferenceFederation;
  const secret = `board minutes ${randomBytes(8).toString('hex')}`;
  const chats: Chat[] = [];
  let expected = new Map<string, number>();

  beforeAll(async () => {
    federation = await ReferenceFederation.start({ persistent: true });
    await federation.waitUntilRouted();
  }, 180_000); // six nodes starting on a loaded 2-core machine
  afterAll(() => federation?.stop());

  /** Every member server of every chat holds its expected count, with equal digests. */
  async function waitForConvergence(timeoutMs: number): Promise<void> {
    const state = async () => {
      const lines: string[] = [];
      for (const chat of chats) {
        for (const server of ReferenceFederation.serversOf(referenceChat(chat.name))) {
          const node = federation.nodes.get(server);
          const summary = node ? await node.store.chatSummary(chat.id) : undefined;
          lines.push(`${chat.name}@${server} ${summary?.events ?? 'down'}/${expected.get(chat.id)} ${summary?.digest.toString('hex').slice(0, 8) ?? ''}`);
        }
      }
      return lines;
    };
    await waitFor('every chat complete and equal on every member server', async () => {
      for (const chat of chats) {
        const digests = new Set<string>();
        for (const server of ReferenceFederation.serversOf(referenceChat(chat.name))) {
          const summary = await federation.node(server).store.chatSummary(chat.id);
          if (summary.events !== expected.get(chat.id)) return false;
          digests.add(summary.digest.toString('hex'));
        }
        if (digests.size !== 1) return false;
      }
      return true;
    }, timeoutMs, async () => (await state()).join(', '));
  }

  it('ets-acme stopped while 10,000 events flow in the enterprise and mixed chats and restarted from its data: exactly once, equal digests', async () => {
    for (const name of ['enterprise', 'mixed']) chats.push(await federation.createChat(referenceChat(name)));
    expected = new Map(chats.map((chat) => [chat.id, 1]));
    await waitForConvergence(30_000);
    const [enterprise, mixed] = chats as [Chat, Chat];
    const post = (chat: Chat, server: string, count: number) => {
      expected.set(chat.id, expected.get(chat.id)! + count);
      return postMessages(federation.node(server), chat, chat.sender.get(server)!, count, 50);
    };
    // 10,000 events in two halves from four servers; ets-acme stops after the first, while its links still carry it,
    // stays down through the second, and comes back from its data directory.
    const half = () => Promise.all([post(enterprise, 'cts-acme-msk', 1_250), post(enterprise, 'cts-acme-spb', 1_250), post(mixed, 'cts-acme-msk', 1_250), post(mixed, 'cts-solo', 1_250)]);
    await half();
    const inFlight = (await federation.node('cts-acme-spb').store.chatSummary(enterprise.id)).events < expected.get(enterprise.id)!;
    await federation.stopNode('ets-acme');
    const second = half();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await federation.startNode('ets-acme');
    await second;
    // The first half had not all reached cts-acme-spb (through ets-acme) when ets-acme stopped.
    expect(inFlight).toBe(true);
    await waitForConvergence(180_000);
    // What ets-acme held for its next hops when it stopped was sent and acknowledged after its restart.
    await federation.waitUntilDrained();
  }, 300_000);

  it('a partition between ets-acme and rts-ru during traffic heals, and every log converges', async () => {
    const mixed = chats[1]!;
    const ets = federation.node('ets-acme');
    const rtsId = federation.id('rts-ru');
    await ets.setTrustStatus(rtsId, 'disabled');
    await waitFor('the partition', () => federation.node('rts-ru').link(ets.id) === undefined);
    const posting = Promise.all(
      ['cts-globex', 'cts-acme-msk'].map((server) => {
        expected.set(mixed.id, expected.get(mixed.id)! + 500);
        return postMessages(federation.node(server), mixed, mixed.sender.get(server)!, 500, 50);
      }),
    );
    await posting;
    // The secret the transits must never hold in clear.
    expected.set(mixed.id, expected.get(mixed.id)! + 1);
    await federation.node('cts-acme-msk').post(messageDraft(mixed, mixed.sender.get('cts-acme-msk')!, secret));
    // Across the partition nothing reaches cts-solo from msk, nor cts-acme-spb from globex.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect((await federation.node('cts-solo').store.chatSummary(mixed.id)).events).toBeLessThan(expected.get(mixed.id)!);
    await ets.setTrustStatus(rtsId, 'enabled');
    await waitForConvergence(120_000);
    const last = (await federation.node('cts-solo').store.chatLog(mixed.id)).findLast((event) => event.origin === federation.id('cts-acme-msk'))!;
    expect(readMessage(mixed, last.body)).toBe(secret);
  }, 240_000);

  it('rts-ru and ets-acme hold no plaintext of what they relayed and no chat key, in their stores or their logs', async () => {
    const transits = ['rts-ru', 'ets-acme'];
    for (const name of transits) expect((await federation.node(name).store.countEvents())).toBeGreaterThan(0);
    const dataDirs = transits.map((name) => federation.configs.get(name)!.store.data_dir!);
    for (const name of transits) await federation.stopNode(name);
    // The search finds what transits do hold in clear (a chat id is routing metadata)...
    for (const dir of dataDirs) expect(filesContaining(dir, chats[1]!.id).length).toBeGreaterThan(0);
    // ...and no message text, no chat key (raw or base64), and no plaintext in any node's log.
    for (const dir of dataDirs) {
      expect(filesContaining(dir, secret)).toEqual([]);
      for (const chat of chats) {
        expect(filesContaining(dir, chat.key)).toEqual([]);
        expect(filesContaining(dir, Buffer.from(chat.key).toString('base64'))).toEqual([]);
      }
    }
    expect(federation.logs.text).not.toContain(secret);
  }, 120_000);
});
