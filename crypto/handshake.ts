import { createHmac, timingSafeEqual } from 'node:crypto';
import { verifySignature, type Identity } from './identity.js';

/**
 * The token-pair proof of the trust link. Each side proves it knows the token the
 * other side accepts, by a MAC over a transcript that binds both server ids, both
 * nonces and the prover's identity key. The token itself never crosses the wire;
 * the prover id comes first so a proof cannot be reflected back as the other side's.
 */
export const NONCE_BYTES = 32;
const TRANSCRIPT_TAG = Buffer.from('trellis-link-v1\0');

export interface TranscriptParts {
  proverId: string;
  verifierId: string;
  proverNonce: Uint8Array;
  verifierNonce: Uint8Array;
  proverIdentityKey: Uint8Array;
}

function lengthPrefixed(bytes: Uint8Array): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

export function transcript(parts: TranscriptParts): Buffer {
  return Buffer.concat([
    TRANSCRIPT_TAG,
    lengthPrefixed(Buffer.from(parts.proverId, 'utf8')),
    lengthPrefixed(Buffer.from(parts.verifierId, 'utf8')),
    lengthPrefixed(parts.proverNonce),
    lengthPrefixed(parts.verifierNonce),
    lengthPrefixed(parts.proverIdentityKey),
  ]);
}

export interface TokenProof {
  mac: Uint8Array;
  identityKey: Uint8Array;
  identitySignature: Uint8Array;
}

function tokenMac(token: string, message: Uint8Array): Buffer {
  return createHmac('sha256', Buffer.from(token, 'utf8')).update(message).digest();
}

export function proveToken(token: string, identity: Identity, parts: Omit<TranscriptParts, 'proverIdentityKey'>): TokenProof {
  const message = transcript({ ...parts, proverIdentityKey: identity.publicKey });
  return { mac: tokenMac(token, message), identityKey: identity.publicKey, identitySignature: identity.sign(message) };
}

/** Checks a proof in constant time over the MAC; false on any mismatch. */
export function checkTokenProof(
  acceptedToken: string,
  proof: TokenProof,
  parts: Omit<TranscriptParts, 'proverIdentityKey'>,
): boolean {
  const message = transcript({ ...parts, proverIdentityKey: proof.identityKey });
  const expected = tokenMac(acceptedToken, message);
  const macOk = proof.mac.length === expected.length && timingSafeEqual(proof.mac, expected);
  return macOk && verifySignature(proof.identityKey, message, proof.identitySignature);
}
