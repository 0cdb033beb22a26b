import { afterEach, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { createdDraft, messageDraft, newChat, readMessage } from './support/devices.js';
import { TestPair, waitForConvergence } from './support/federation.js';
import { filesContaining } from './support/files.js';

let pair: TestPair | undefined;
afterEach(async () => {
  await pair?.stop();
  pair = undefined;
});

it('stores and logs no plaintext body on either server, while member devices can read it', async () => {
  pair = await TestPair.start({ persistent: true });
  const secret = `quarterly numbers ${randomBytes(12).toString('hex')}`;
  const chat = newChat([`alice@${pair.a.id}`, `bob@${pair.b.id}`]);
  await pair.a.post(createdDraft(chat, `alice@${pair.a.id}`, `title ${secret}`));
  for (let i = 0; i < 50; i++) await pair.a.post(messageDraft(chat, `alice@${pair.a.id}`, `${secret} #${i}`));
  await waitForConvergence(pair, chat.id, 51);
  const atB = await pair.b.store.chatLog(chat.id);
  expect(readMessage(chat, atB.at(-1)!.body)).toBe(`${secret} #49`);

  const dataDirs = [pair.aConfig.store.data_dir!, pair.bConfig.store.data_dir!];
  await pair.stopNodes();
  // The search can find what is stored in clear (the chat id is routing metadata)...
  for (const dir of dataDirs) expect(filesContaining(dir, chat.id).length).toBeGreaterThan(0);
  // ...and finds no body text, on the origin or on the receiver, nor in any log line.
  for (const dir of dataDirs) expect(filesContaining(dir, secret)).toEqual([]);
  expect(pair.logs.text).not.toContain(secret);
  expect(pair.logs.lines.length).toBeGreaterThan(0);
});
