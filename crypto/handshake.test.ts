import { describe, expect, it } from 'vitest';
import { checkTokenProof, proveToken, transcript, NONCE_BYTES, type TokenProof } from './handshake.js';
import { identityFromSeed } from './identity.js';

const seed = (byte: number) => Buffer.alloc(32, byte);
const alice = identityFromSeed(seed(1));
const mallory = identityFromSeed(seed(2));
const aliceNonce = Buffer.alloc(NONCE_BYTES, 0xa1);
const bobNonce = Buffer.alloc(NONCE_BYTES, 0xb0);
const token = 'token-bob-accepts';

/** Alice proves to Bob that she knows the token Bob accepts. */
const aliceToBob = { proverId: 'alice.example', verifierId: 'bob.example', proverNonce: aliceNonce, verifierNonce: bobNonce };
const proof = proveToken(token, alice, aliceToBob);

const flipBit = (bytes: Uint8Array, index = 0): Buffer => {
  const copy = Buffer.from(bytes);
  copy[index]! ^= 0x01;
  return copy;
};

describe('token proof', () => {
  it('checks a proof made with the token the verifier accepts', () => {
    expect(checkTokenProof(token, proof, aliceToBob)).toBe(true);
  });

  it('refuses a proof made with another token', () => {
    const wrong = proveToken('token-bob-does-not-accept', alice, aliceToBob);
    expect(checkTokenProof(token, wrong, aliceToBob)).toBe(false);
  });

  it('refuses a proof reflected back to its prover as if the other side made it, even when both sides use one token', () => {
    const reflectedParts = { proverId: 'bob.example', verifierId: 'alice.example', proverNonce: bobNonce, verifierNonce: aliceNonce };
    expect(checkTokenProof(token, proof, reflectedParts)).toBe(false);
  });

  it('refuses a proof replayed against a fresh verifier nonce', () => {
    expect(checkTokenProof(token, proof, { ...aliceToBob, verifierNonce: flipBit(bobNonce) })).toBe(false);
  });

  it('refuses a proof whose prover nonce was changed', () => {
    expect(checkTokenProof(token, proof, { ...aliceToBob, proverNonce: flipBit(aliceNonce) })).toBe(false);
  });

  it('refuses a proof presented for another prover id', () => {
    expect(checkTokenProof(token, proof, { ...aliceToBob, proverId: 'mallory.example' })).toBe(false);
  });

  it('refuses a proof whose identity key was swapped for another, even with a valid signature by that key', () => {
    const message = transcript({ ...aliceToBob, proverIdentityKey: mallory.publicKey });
    const swapped: TokenProof = { mac: proof.mac, identityKey: mallory.publicKey, identitySignature: mallory.sign(message) };
    expect(checkTokenProof(token, swapped, aliceToBob)).toBe(false);
  });

  it('refuses a proof whose identity signature had one bit flipped', () => {
    expect(checkTokenProof(token, { ...proof, identitySignature: flipBit(proof.identitySignature, 5) }, aliceToBob)).toBe(false);
  });

  it('refuses a proof with the right MAC but an identity signature by another key', () => {
    const message = transcript({ ...aliceToBob, proverIdentityKey: alice.publicKey });
    expect(checkTokenProof(token, { ...proof, identitySignature: mallory.sign(message) }, aliceToBob)).toBe(false);
  });

  it('refuses, with the right token, an identity key of small order under which any signature can be forged', () => {
    // The identity point (y = 1): R = identity, S = 0 verifies for every message under bare OpenSSL.
    const weakKey = Buffer.concat([Buffer.from([1]), Buffer.alloc(31)]);
    const forged: TokenProof = {
      mac: proveToken(token, { publicKey: weakKey, sign: () => new Uint8Array(64) }, aliceToBob).mac,
      identityKey: weakKey,
      identitySignature: Buffer.concat([weakKey, Buffer.alloc(32)]),
    };
    expect(checkTokenProof(token, forged, aliceToBob)).toBe(false);
  });

  it('refuses a MAC with one bit flipped', () => {
    expect(checkTokenProof(token, { ...proof, mac: flipBit(proof.mac, 31) }, aliceToBob)).toBe(false);
  });

  it.each([0, 1, 31, 33, 64])('answers false, without throwing, for a MAC of %i bytes', (length) => {
    const mac = Buffer.concat([proof.mac, Buffer.alloc(32)]).subarray(0, length);
    expect(() => checkTokenProof(token, { ...proof, mac }, aliceToBob)).not.toThrow();
    expect(checkTokenProof(token, { ...proof, mac }, aliceToBob)).toBe(false);
  });

  it('answers false, without throwing, for an identity key or signature of the wrong length', () => {
    expect(checkTokenProof(token, { ...proof, identityKey: alice.publicKey.subarray(0, 31) }, aliceToBob)).toBe(false);
    expect(checkTokenProof(token, { ...proof, identitySignature: proof.identitySignature.subarray(0, 63) }, aliceToBob)).toBe(false);
  });

  it('never puts the token itself in the proof', () => {
    const tokenBytes = Buffer.from(token, 'utf8');
    for (const field of [proof.mac, proof.identityKey, proof.identitySignature]) {
      expect(Buffer.from(field).includes(tokenBytes)).toBe(false);
    }
  });
});
