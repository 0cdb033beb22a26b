import { verifySignature, type Identity } from './identity.js';

/**
 * A server's record of itself (router/routing/directory.ts) is signed over its encoded
 * bytes as they travel, under a tag of its own so a record signature can never pass for
 * an event or handshake signature.
 */
const RECORD_TAG = Buffer.from('trellis-server-record-v1\0');

const message = (record: Uint8Array) => Buffer.concat([RECORD_TAG, record]);

export function signServerRecord(identity: Identity, record: Uint8Array): Buffer {
  return Buffer.from(identity.sign(message(record)));
}

export function verifyServerRecord(identityKey: Uint8Array, record: Uint8Array, signature: Uint8Array): boolean {
  return verifySignature(identityKey, message(record), signature);
}
