import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REFERENCE_CHATS } from '../gateways/demo/index.js';
import { messageDraft } from './support/devices.js';
import { waitFor } from './support/federation.js';
import { ReferenceFederation } from './support/reference-federation.js';

/** The most trusted path between every two corporate servers of the reference federation (issue 8, domain.md). */
const EXPECTED_PATHS: Record<string, string[]> = {
  'cts-acme-msk>cts-globex': ['cts-acme-msk', 'cts-globex'],
  'cts-acme-msk>cts-acme-spb': ['cts-acme-msk', 'ets-acme', 'cts-acme-spb'],
  'cts-acme-msk>cts-solo': ['cts-acme-msk', 'ets-acme', 'rts-ru', 'cts-solo'],
  'cts-acme-spb>cts-solo': ['cts-acme-spb', 'ets-acme', 'rts-ru', 'cts-solo'],
  'cts-acme-spb>cts-globex': ['cts-acme-spb', 'ets-acme', 'rts-ru', 'cts-globex'],
  'cts-globex>cts-solo': ['cts-globex', 'rts-ru', 'cts-solo'],
};

function expectedPath(from: string, to: string): string[] {
  return EXPECTED_PATHS[`${from}>${to}`] ?? [...EXPECTED_PATHS[`${to}>${from}`]!].reverse();
}

const MESSAGES = 20;

describe('the reference federation routes every chat by its most trusted path', () => {
  let federation: ReferenceFederation;
  beforeAll(async () => {
    federation = await ReferenceFederation.start();
    await federation.waitUntilRouted();
  }, 180_000); // six nodes starting on a loaded 2-core machine
  afterAll(() => federation?.stop());

  /** Events sent on every directed link (node>peer), by server names. */
  function eventsSentPerLink(): Map<string, number> {
    const sent = new Map<string, number>();
    for (const [name, node] of federation.nodes) {
      for (const config of node.config.trusts) sent.set(`${name}>${federation.nameOf(config.server_id)}`, node.link(config.server_id)?.stats.eventsSent ?? 0);
    }
    return sent;
  }

  for (const chat of REFERENCE_CHATS) {
    it(`${chat.name}: ${chat.shows}`, async () => {
      const servers = ReferenceFederation.serversOf(chat);
      const device = await federation.createChat(chat);
      let expected = 1;
      await waitFor(`every server of ${chat.name} to hold its creation`, async () => {
        for (const server of servers) if ((await federation.node(server).store.chatSummary(device.id)).events < 1) return false;
        return true;
      });

      for (const origin of servers) {
        // The route explanation at the origin names the expected path to every other server of the chat.
        const route = await federation.node(origin).inspect.chatRoute(device.id);
        expect(route.policy).toBe(chat.policy ? 'corporate' : 'default');
        for (const destination of servers.filter((server) => server !== origin)) {
          const explained = route.destinations.find((d) => d.serverId === federation.id(destination))!;
          expect(explained.path.map((id) => federation.nameOf(id)), `${origin} to ${destination}`).toEqual(expectedPath(origin, destination));
        }

        // The links that carry the origin's messages are exactly the links of those paths, each crossed once per event.
        const before = eventsSentPerLink();
        for (let i = 0; i < MESSAGES; i++) await federation.node(origin).post(messageDraft(device, device.sender.get(origin)!, `${chat.name} ${i} from ${origin}`));
        expected += MESSAGES;
        await waitFor(`${chat.name}: ${origin}'s messages everywhere`, async () => {
          for (const server of servers) if ((await federation.node(server).store.chatSummary(device.id)).events !== expected) return false;
          return true;
        });
        const crossed = new Set<string>();
        for (const destination of servers.filter((server) => server !== origin)) {
          const path = expectedPath(origin, destination);
          for (let hop = 1; hop < path.length; hop++) crossed.add(`${path[hop - 1]}>${path[hop]}`);
        }
        await waitFor('the sends counted', () => [...crossed].every((link) => eventsSentPerLink().get(link)! - before.get(link)! >= MESSAGES));
        const after = eventsSentPerLink();
        for (const [link, count] of after) expect(count - before.get(link)!, `events sent on ${link}`).toBe(crossed.has(link) ? MESSAGES : 0);
      }

      const digests = await Promise.all(servers.map(async (server) => (await federation.node(server).store.chatSummary(device.id)).digest.toString('hex')));
      expect(new Set(digests).size).toBe(1);
    }, 60_000);
  }
});
