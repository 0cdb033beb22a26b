import { randomBytes } from 'node:crypto';
import sodium from 'libsodium-wrappers';
import { EventBody } from '../proto/gen/trellis/v1/event.js';

/**
 * End-to-end body encryption by the sending device: XSalsa20-Poly1305 secretbox under
 * the chat key, the primitive libsodium and tweetnacl share (nacl.secretbox), so a
 * browser client opens what a server-side device sealed. Servers only carry the result.
 * Chat keys are handed to member devices out of band until key epochs arrive.
 */
export const CHAT_KEY_BYTES = 32;
export const BODY_NONCE_BYTES = 24;

let ready: Promise<void> | undefined;

/** libsodium loads its WebAssembly asynchronously; await this once before sealing. */
export function cryptoReady(): Promise<void> {
  ready ??= sodium.ready;
  return ready;
}

export function newChatKey(): Uint8Array {
  return sodium.crypto_secretbox_keygen();
}

// The nonce comes from node:crypto: libsodium's randombytes_buf goes through emscripten's
// random device and cost more than the sealing itself (seen in a CPU profile of the bench).
export function sealBody(chatKey: Uint8Array, body: EventBody, nonce: Uint8Array = randomBytes(BODY_NONCE_BYTES)): Buffer {
  const plaintext = EventBody.encode(body).finish();
  return Buffer.concat([nonce, sodium.crypto_secretbox_easy(plaintext, nonce, chatKey)]);
}

/** Opens a sealed body; throws if the key is wrong or a byte was changed. */
export function openBody(chatKey: Uint8Array, sealed: Uint8Array): EventBody {
  if (sealed.length < BODY_NONCE_BYTES + sodium.crypto_secretbox_MACBYTES) throw new Error('sealed body is too short');
  const nonce = sealed.subarray(0, BODY_NONCE_BYTES);
  const plaintext = sodium.crypto_secretbox_open_easy(sealed.subarray(BODY_NONCE_BYTES), nonce, chatKey);
  return EventBody.decode(plaintext);
}
