import { beforeAll, describe, expect, it } from 'vitest';
import type { EventBody } from '../proto/gen/trellis/v1/event.js';
import { cryptoReady, newChatKey, openBody, sealBody, BODY_NONCE_BYTES, CHAT_KEY_BYTES } from './body.js';

const body: EventBody = { content: { $case: 'messagePosted', value: { text: 'the quarterly numbers are in' } } };

beforeAll(async () => {
  await cryptoReady();
});

describe('sealed bodies', () => {
  it('opens what it sealed under the same chat key', () => {
    const key = newChatKey();
    expect(key).toHaveLength(CHAT_KEY_BYTES);
    expect(openBody(key, sealBody(key, body))).toEqual(body);
  });

  it('does not carry the plaintext in clear', () => {
    const sealed = sealBody(newChatKey(), body);
    expect(sealed.includes(Buffer.from('quarterly'))).toBe(false);
  });

  it('uses a fresh nonce each time, so the same body seals to different bytes', () => {
    const key = newChatKey();
    const [first, second] = [sealBody(key, body), sealBody(key, body)];
    expect(first.subarray(0, BODY_NONCE_BYTES)).not.toEqual(second.subarray(0, BODY_NONCE_BYTES));
    expect(first).not.toEqual(second);
  });

  it('refuses to open under another chat key', () => {
    const sealed = sealBody(newChatKey(), body);
    expect(() => openBody(newChatKey(), sealed)).toThrow();
  });

  it.each([
    ['the nonce', 0],
    ['the MAC', BODY_NONCE_BYTES],
    ['the ciphertext', -1],
  ])('refuses to open a body with one bit flipped in %s', (_, index) => {
    const key = newChatKey();
    const sealed = sealBody(key, body);
    const at = index < 0 ? sealed.length + index : index;
    sealed[at]! ^= 0x01;
    expect(() => openBody(key, sealed)).toThrow();
  });

  it.each([0, BODY_NONCE_BYTES, BODY_NONCE_BYTES + 15])('refuses input of %i bytes as too short, saying so', (length) => {
    expect(() => openBody(newChatKey(), new Uint8Array(length))).toThrow('sealed body is too short');
  });

  it('opens an empty body: the shortest valid input is nonce plus MAC', () => {
    const key = newChatKey();
    const sealed = sealBody(key, { content: undefined });
    expect(sealed).toHaveLength(BODY_NONCE_BYTES + 16);
    expect(openBody(key, sealed)).toEqual({ content: undefined });
  });
});
