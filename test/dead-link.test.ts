import { afterEach, expect, it } from 'vitest';
import type { LinkEnd, LinkSession } from '../router/index.js';
import { createdDraft, newChat } from './support/devices.js';
import { postMessages, TestPair, waitFor, waitForConvergence } from './support/federation.js';
import { TcpProxy } from './support/tcp-proxy.js';

let pair: TestPair | undefined;
let proxy: TcpProxy | undefined;
afterEach(async () => {
  await pair?.stop();
  await proxy?.stop();
  pair = proxy = undefined;
});

it('declares a silent link dead by its heartbeats, redials, and delivers what was posted meanwhile', async () => {
  pair = await TestPair.start({ bOnlyAccepts: true, aDialsB: async (port) => `127.0.0.1:${(proxy = await TcpProxy.start(port)).port}` });
  const ends: LinkEnd[] = [];
  pair.a.on('link-down', (_session: LinkSession, end: LinkEnd) => ends.push(end));
  await waitFor('linked through the proxy', () => pair!.a.link(pair!.b.id) !== undefined);
  const chat = newChat([`alice@${pair.a.id}`, `bob@${pair.b.id}`]);
  await pair.a.post(createdDraft(chat, `alice@${pair.a.id}`));

  // The connection stays open but carries nothing: only heartbeats can tell.
  proxy!.freeze();
  await postMessages(pair.a, chat, `alice@${pair.a.id}`, 200);
  await waitFor('A to give up on the silent link', () => ends.some((end) => end.code === 'dead-link'));
  await waitForConvergence(pair, chat.id, 201);
  expect(pair.a.link(pair.b.id)).toBeDefined();
});
