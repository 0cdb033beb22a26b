import { afterEach, describe, expect, it } from 'vitest';
import type { LinkSession } from '../router/index.js';
import { createdDraft, newChat, type TestChat } from './support/devices.js';
import { postMessages, TestPair, waitFor, waitForConvergence } from './support/federation.js';
import { testEngines } from './support/engines.js';
import { TcpProxy } from './support/tcp-proxy.js';

const EVENTS_PER_SIDE = 10_000;

/** Every link session a node opens, to read their stats afterwards. */
function recordLinks(pair: TestPair): LinkSession[] {
  const sessions: LinkSession[] = [];
  pair.a.on('link-up', (session: LinkSession) => sessions.push(session));
  pair.b.on('link-up', (session: LinkSession) => sessions.push(session));
  return sessions;
}

async function startChat(pair: TestPair): Promise<TestChat> {
  const chat = newChat([`alice@${pair.a.id}`, `bob@${pair.b.id}`]);
  await pair.a.post(createdDraft(chat, `alice@${pair.a.id}`));
  return chat;
}

// On each store engine: the link's exactly-once rests on the store's one-statement append with its cursor.
describe.each(await testEngines())('trust link between two servers, stores on $name', (engine) => {
  let pair: TestPair | undefined;
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    await pair?.stop();
    await proxy?.stop();
    pair = proxy = undefined;
  });

  it('carries 10,000 events each way exactly once, to equal logs', async () => {
    pair = await TestPair.start({ engine });
    const sessions = recordLinks(pair);
    const chat = await startChat(pair);
    await Promise.all([
      postMessages(pair.a, chat, `alice@${pair.a.id}`, EVENTS_PER_SIDE),
      postMessages(pair.b, chat, `bob@${pair.b.id}`, EVENTS_PER_SIDE),
    ]);
    const total = 2 * EVENTS_PER_SIDE + 1;
    await waitForConvergence(pair, chat.id, total);
    expect(await pair.a.store.countEvents()).toBe(total);
    expect(await pair.b.store.countEvents()).toBe(total);
    expect(sessions.reduce((sum, s) => sum + s.stats.eventsDuplicate, 0)).toBe(0);
    expect(pair.a.link(pair.b.id)?.diallerId).toBe(pair.b.link(pair.a.id)?.diallerId);
  });

  it('survives its socket being cut mid-stream and resumes from the stored cursor', async () => {
    pair = await TestPair.start({ engine, bOnlyAccepts: true, aDialsB: async (port) => `127.0.0.1:${(proxy = await TcpProxy.start(port)).port}` });
    const sessions = recordLinks(pair);
    const chat = await startChat(pair);
    const posting = Promise.all([
      postMessages(pair.a, chat, `alice@${pair.a.id}`, EVENTS_PER_SIDE, 64),
      postMessages(pair.b, chat, `bob@${pair.b.id}`, EVENTS_PER_SIDE, 64),
    ]);
    for (let cut = 0; cut < 3; cut++) {
      const linksBefore = sessions.length;
      await waitFor('events flowing on the link', async () => (await pair!.b.store.linkCursor(pair!.a.id)) > 0 && sessions.length > linksBefore);
      await new Promise((resolve) => setTimeout(resolve, 150));
      proxy!.cutAll();
    }
    await posting;
    const total = 2 * EVENTS_PER_SIDE + 1;
    await waitForConvergence(pair, chat.id, total);

    // Every link after a cut resends from where B's stored cursor stood: past zero, never backwards.
    const resumedFrom = sessions.filter((s) => s.peerId === pair!.b.id).map((s) => s.opening.peerStoredLinkSeq);
    expect(proxy!.cuts).toBe(3);
    expect(resumedFrom.length).toBeGreaterThanOrEqual(4);
    expect(resumedFrom.slice(1).every((seq, i) => seq > 0 && seq >= resumedFrom[i]!)).toBe(true);
    // The cursor is stored with the events it covers, so a resumed link resends nothing twice.
    expect(sessions.reduce((sum, s) => sum + s.stats.eventsDuplicate, 0)).toBe(0);
  });

  it('resumes after the peer is stopped and restarted from its data directory', async () => {
    pair = await TestPair.start({ engine });
    const sessions = recordLinks(pair);
    const chat = await startChat(pair);
    const posting = postMessages(pair.a, chat, `alice@${pair.a.id}`, EVENTS_PER_SIDE, 64);
    await postMessages(pair.b, chat, `bob@${pair.b.id}`, EVENTS_PER_SIDE / 2, 64);
    await waitFor('events flowing to B', async () => (await pair!.b.store.linkCursor(pair!.a.id)) > 500);
    const cursorSeenAtB = await pair.b.store.linkCursor(pair.a.id);
    await pair.b.stop();
    const sessionsBeforeRestart = sessions.length;
    pair.b = await pair.startB();
    pair.b.on('link-up', (session: LinkSession) => sessions.push(session));
    await postMessages(pair.b, chat, `bob@${pair.b.id}`, EVENTS_PER_SIDE / 2, 64);
    await posting;
    await waitForConvergence(pair, chat.id, 2 * EVENTS_PER_SIDE + 1);

    // A's links to the restarted B: the first resends from the cursor B kept on disk, not from zero.
    const aToB = sessions.slice(sessionsBeforeRestart).filter((s) => s.peerId === pair!.b.id);
    expect(aToB.length).toBeGreaterThan(0);
    expect(aToB[0]!.opening.peerStoredLinkSeq).toBeGreaterThanOrEqual(cursorSeenAtB);
    expect(sessions.reduce((sum, s) => sum + s.stats.eventsDuplicate, 0)).toBe(0);
  });

});
