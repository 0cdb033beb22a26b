import { createPrivateKey, createPublicKey, generateKeyPairSync, KeyObject, sign, verify } from 'node:crypto';

/**
 * A server's Ed25519 identity. node:crypto is the fastest Ed25519 here (see the speed
 * budget); Ed25519 is deterministic, so libsodium and tweetnacl produce the same bytes
 * (proved by fixtures/vectors and crypto/vectors.test.ts).
 */
export interface Identity {
  readonly publicKey: Uint8Array;
  sign(message: Uint8Array): Uint8Array;
}

export const PUBLIC_KEY_BYTES = 32;
export const SIGNATURE_BYTES = 64;
// DER prefixes that wrap a raw 32-byte Ed25519 key as SPKI / PKCS#8.
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const PUBLIC_KEY_CACHE_MAX = 4096;

function identityFromKeyObject(privateKey: KeyObject): Identity {
  const der = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  const publicKey = new Uint8Array(der.subarray(SPKI_PREFIX.length));
  return { publicKey, sign: (message) => new Uint8Array(sign(null, message, privateKey)) };
}

export function generateIdentityPem(): string {
  const { privateKey } = generateKeyPairSync('ed25519');
  return privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
}

/** Reads a PKCS#8 PEM private key (what `trellis keygen` writes). */
export function identityFromPem(pem: string): Identity {
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new Error(`identity key is ${key.asymmetricKeyType ?? 'not an asymmetric key'}, expected ed25519`);
  }
  return identityFromKeyObject(key);
}

/** From a 32-byte seed: for test vectors and deterministic test identities. */
export function identityFromSeed(seed: Uint8Array): Identity {
  if (seed.length !== 32) throw new Error(`seed must be 32 bytes, got ${seed.length}`);
  const der = Buffer.concat([PKCS8_PREFIX, seed]);
  return identityFromKeyObject(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }));
}

const publicKeyObjects = new Map<string, KeyObject>();

function publicKeyObject(publicKey: Uint8Array): KeyObject {
  const cacheKey = Buffer.from(publicKey).toString('base64');
  let key = publicKeyObjects.get(cacheKey);
  if (!key) {
    key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' });
    if (publicKeyObjects.size >= PUBLIC_KEY_CACHE_MAX) publicKeyObjects.clear();
    publicKeyObjects.set(cacheKey, key);
  }
  return key;
}

// Written by hand because node:crypto has no such check: OpenSSL (and tweetnacl) accept
// forged signatures under a public key of small order (under y = 1, every message
// verifies), libsodium refuses such keys and non-canonical ones. Refuse them as it does,
// so every verifier agrees (fixtures/vectors/ed25519.json, smallOrderForgeries).
const FIELD_P = (1n << 255n) - 19n;
const ORDER_8_Y = 0x05fc536d880238b13933c6d305acdfd5f098eff289f4c345b027b2c28f95e826n;
const SMALL_ORDER_Y = new Set([0n, 1n, FIELD_P - 1n, ORDER_8_Y, FIELD_P - ORDER_8_Y]);

function isWeakPublicKey(publicKey: Uint8Array): boolean {
  let y = BigInt(publicKey[31]! & 0x7f);
  for (let i = 30; i >= 0; i--) y = (y << 8n) | BigInt(publicKey[i]!);
  return y >= FIELD_P || SMALL_ORDER_Y.has(y);
}

export function verifySignature(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== PUBLIC_KEY_BYTES || signature.length !== SIGNATURE_BYTES) return false;
  if (isWeakPublicKey(publicKey)) return false;
  return verify(null, message, publicKeyObject(publicKey), signature);
}
