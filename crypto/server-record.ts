import { verifySignature, type Identity } from './identity.js';

/**
 * A server's record of itself (router/routing/directory.ts) is signed over its encoded
 * bytes as they travel, under a tag of its own so a record signature can never pass for
 * an event or handshake signature. An attestation (a server vouching for another's
 * record) has a tag of its own too: a record signature can never pass for one.
 */
const RECORD_TAG = Buffer.from('trellis-server-record-v1\0');
const ATTESTATION_TAG = Buffer.from('trellis-attestation-v1\0');

const tagged = (tag: Buffer, bytes: Uint8Array) => Buffer.concat([tag, bytes]);

export function signServerRecord(identity: Identity, record: Uint8Array): Buffer {
  return Buffer.from(identity.sign(tagged(RECORD_TAG, record)));
}

export function verifyServerRecord(identityKey: Uint8Array, record: Uint8Array, signature: Uint8Array): boolean {
  return verifySignature(identityKey, tagged(RECORD_TAG, record), signature);
}

export function signAttestation(identity: Identity, statement: Uint8Array): Buffer {
  return Buffer.from(identity.sign(tagged(ATTESTATION_TAG, statement)));
}

export function verifyAttestation(attesterKey: Uint8Array, statement: Uint8Array, signature: Uint8Array): boolean {
  return verifySignature(attesterKey, tagged(ATTESTATION_TAG, statement), signature);
}
