import { afterEach, expect, it } from 'vitest';
import { createdDraft, messageDraft, newChat } from './support/devices.js';
import { TestPair, waitFor } from './support/federation.js';

let pair: TestPair;
afterEach(() => pair?.stop());

it('smoke: two nodes link and exchange a few events', async () => {
  pair = await TestPair.start();
  const { a, b } = pair;
  const chat = newChat([`alice@${a.id}`, `bob@${b.id}`]);
  await a.post(createdDraft(chat, `alice@${a.id}`));
  for (let i = 0; i < 20; i++) await a.post(messageDraft(chat, `alice@${a.id}`, `hi ${i}`));
  for (let i = 0; i < 20; i++) await b.post(messageDraft(chat, `bob@${b.id}`, `yo ${i}`));
  try { await waitFor('41 events on both', async () => (await a.store.countEvents()) === 41 && (await b.store.countEvents()) === 41); } finally { console.log(pair.logs.text.slice(-4000)); }
  expect((await a.store.chatDigest(chat.id)).equals(await b.store.chatDigest(chat.id))).toBe(true);
});
