import { createPublicKey, verify as opensslVerify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import sodium from 'libsodium-wrappers';
import nacl from 'tweetnacl';
import { beforeAll, describe, expect, it } from 'vitest';
import { EventBody } from '../proto/gen/trellis/v1/event.js';
import { openBody, sealBody, cryptoReady, BODY_NONCE_BYTES } from './body.js';
import { canonicalEncoding, chainEvent, eventId, signEventId, verifyEventSignature, type ChainPosition } from './event.js';
import { checkTokenProof, proveToken, transcript } from './handshake.js';
import { identityFromSeed, verifySignature } from './identity.js';

/** Shared vectors: node:crypto on servers, libsodium-wrappers, tweetnacl in the browser must agree byte for byte. */
interface Ed25519Vectors {
  keys: { source: string; seed: string; publicKey: string }[];
  signatures: { about: string; seed: string; message: string; signature: string }[];
  smallOrderForgeries: { point: string; publicKey: string; message: string; signature: string }[];
}
interface EventVectors {
  origin: { id: string; seed: string; publicKey: string };
  signaturePrefix: string;
  chain: {
    chatId: string;
    senderUser: string;
    senderDevice: string;
    kind: number;
    members: string[];
    body: string;
    hlcMs: number;
    hlcCounter: number;
    seq: number;
    prev: string;
    canonical: string;
    id: string;
    signature: string;
  }[];
  sealedBodies: { key: string; nonce: string; body: EventBody; plaintext: string; sealed: string }[];
  tokenProofs: {
    token: string;
    proverId: string;
    verifierId: string;
    proverNonce: string;
    verifierNonce: string;
    proverSeed: string;
    identityKey: string;
    transcript: string;
    mac: string;
    identitySignature: string;
  }[];
}

const load = <T>(name: string): T => JSON.parse(readFileSync(new URL(`../fixtures/vectors/${name}`, import.meta.url), 'utf8')) as T;
const ed25519 = load<Ed25519Vectors>('ed25519.json');
const events = load<EventVectors>('events.json');
const bytes = (hex: string) => Buffer.from(hex, 'hex');
const hex = (value: Uint8Array) => Buffer.from(value).toString('hex');

beforeAll(async () => {
  await cryptoReady();
});

describe('Ed25519 vectors', () => {
  it('has vectors to check (a truncated file would pass everything below)', () => {
    expect(ed25519.keys.length).toBeGreaterThanOrEqual(5);
    expect(ed25519.signatures.length).toBeGreaterThanOrEqual(6);
    expect(ed25519.smallOrderForgeries.length).toBe(9);
  });

  it.each(ed25519.keys)('derives the same public key from the seed in all three libraries ($source)', ({ seed, publicKey }) => {
    expect(hex(identityFromSeed(bytes(seed)).publicKey)).toBe(publicKey);
    expect(hex(sodium.crypto_sign_seed_keypair(bytes(seed)).publicKey)).toBe(publicKey);
    expect(hex(nacl.sign.keyPair.fromSeed(bytes(seed)).publicKey)).toBe(publicKey);
  });

  it.each(ed25519.signatures)('signs to the same bytes in all three libraries ($about)', ({ seed, message, signature }) => {
    expect(hex(identityFromSeed(bytes(seed)).sign(bytes(message)))).toBe(signature);
    expect(hex(sodium.crypto_sign_detached(bytes(message), sodium.crypto_sign_seed_keypair(bytes(seed)).privateKey))).toBe(signature);
    expect(hex(nacl.sign.detached(bytes(message), nacl.sign.keyPair.fromSeed(bytes(seed)).secretKey))).toBe(signature);
  });

  it.each(ed25519.signatures)('verifies the vector signature in all three libraries, and refuses it with one bit flipped ($about)', ({ seed, message, signature }) => {
    const publicKey = nacl.sign.keyPair.fromSeed(bytes(seed)).publicKey;
    const flipped = bytes(signature);
    flipped[10]! ^= 0x01;
    for (const sig of [bytes(signature), flipped]) {
      const good = sig.equals(bytes(signature));
      expect(verifySignature(publicKey, bytes(message), sig)).toBe(good);
      expect(sodium.crypto_sign_verify_detached(sig, bytes(message), publicKey)).toBe(good);
      expect(nacl.sign.detached.verify(bytes(message), sig, publicKey)).toBe(good);
    }
  });

  it('verifies in each library what the other two signed over a fresh message', () => {
    const seed = bytes(ed25519.keys[3]!.seed);
    const message = Buffer.from('fresh message, not in the vectors');
    const node = identityFromSeed(seed);
    const libsodiumPair = sodium.crypto_sign_seed_keypair(seed);
    const naclPair = nacl.sign.keyPair.fromSeed(seed);
    const fromNode = node.sign(message);
    const fromSodium = sodium.crypto_sign_detached(message, libsodiumPair.privateKey);
    const fromNacl = nacl.sign.detached(message, naclPair.secretKey);
    expect(sodium.crypto_sign_verify_detached(fromNode, message, libsodiumPair.publicKey)).toBe(true);
    expect(nacl.sign.detached.verify(message, fromNode, naclPair.publicKey)).toBe(true);
    expect(verifySignature(node.publicKey, message, fromSodium)).toBe(true);
    expect(nacl.sign.detached.verify(message, fromSodium, naclPair.publicKey)).toBe(true);
    expect(verifySignature(node.publicKey, message, fromNacl)).toBe(true);
    expect(sodium.crypto_sign_verify_detached(fromNacl, message, libsodiumPair.publicKey)).toBe(true);
  });

  it.each(ed25519.smallOrderForgeries)('refuses, as libsodium does, a forgery that OpenSSL alone accepts under a small-order key ($point)', (forgery) => {
    const [publicKey, message, signature] = [bytes(forgery.publicKey), bytes(forgery.message), bytes(forgery.signature)];
    const spki = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), publicKey]);
    // The vector is a real forgery: bare OpenSSL verification accepts it.
    expect(opensslVerify(null, message, createPublicKey({ key: spki, format: 'der', type: 'spki' }), signature)).toBe(true);
    expect(sodium.crypto_sign_verify_detached(signature, message, publicKey)).toBe(false);
    expect(verifySignature(publicKey, message, signature)).toBe(false);
  });
});

describe('event vectors', () => {
  const origin = identityFromSeed(bytes(events.origin.seed));

  it('has a chain of three events to check', () => {
    expect(events.chain).toHaveLength(3);
    expect(hex(origin.publicKey)).toBe(events.origin.publicKey);
  });

  it('rebuilds every event of the chain with chainEvent: same seq, prev, canonical encoding, id and signature', () => {
    let head: ChainPosition | undefined;
    for (const vector of events.chain) {
      const draft = { chatId: vector.chatId, senderUser: vector.senderUser, senderDevice: vector.senderDevice, kind: vector.kind, members: vector.members, body: bytes(vector.body) };
      const event = chainEvent(events.origin.id, head, draft, { ms: vector.hlcMs, counter: vector.hlcCounter });
      expect(event.seq).toBe(vector.seq);
      expect(hex(event.prev)).toBe(vector.prev);
      expect(hex(canonicalEncoding(event))).toBe(vector.canonical);
      expect(hex(eventId(event))).toBe(vector.id);
      expect(hex(event.id)).toBe(vector.id);
      expect(hex(signEventId(origin, event.id))).toBe(vector.signature);
      head = { seq: event.seq, id: event.id };
    }
  });

  it.each(events.chain)('verifies the signature of event seq $seq with node:crypto, libsodium and tweetnacl', ({ id, signature }) => {
    const signed = Buffer.concat([bytes(events.signaturePrefix), bytes(id)]);
    expect(verifyEventSignature(origin.publicKey, bytes(id), bytes(signature))).toBe(true);
    expect(sodium.crypto_sign_verify_detached(bytes(signature), signed, origin.publicKey)).toBe(true);
    expect(nacl.sign.detached.verify(signed, bytes(signature), origin.publicKey)).toBe(true);
  });
});

describe('sealed body vectors', () => {
  it.each(events.sealedBodies)('seals $body.content.$case to the vector bytes with libsodium and with tweetnacl', ({ key, nonce, body, plaintext, sealed }) => {
    expect(hex(EventBody.encode(body).finish())).toBe(plaintext);
    expect(hex(sealBody(bytes(key), body, bytes(nonce)))).toBe(sealed);
    const naclSealed = Buffer.concat([bytes(nonce), nacl.secretbox(bytes(plaintext), bytes(nonce), bytes(key))]);
    expect(hex(naclSealed)).toBe(sealed);
  });

  it.each(events.sealedBodies)('opens the vector bytes of $body.content.$case with libsodium and with tweetnacl', ({ key, body, plaintext, sealed }) => {
    expect(openBody(bytes(key), bytes(sealed))).toEqual(body);
    const box = bytes(sealed);
    const opened = nacl.secretbox.open(box.subarray(BODY_NONCE_BYTES), box.subarray(0, BODY_NONCE_BYTES), bytes(key));
    expect(opened && hex(opened)).toBe(plaintext);
  });

  it('opens with tweetnacl what sealBody sealed under a random nonce, and the other way round', () => {
    const key = nacl.randomBytes(32);
    const body: EventBody = { content: { $case: 'messagePosted', value: { text: 'round trip' } } };
    const fromSodium = sealBody(key, body);
    const opened = nacl.secretbox.open(fromSodium.subarray(BODY_NONCE_BYTES), fromSodium.subarray(0, BODY_NONCE_BYTES), key);
    expect(opened && EventBody.decode(opened)).toEqual(body);

    const nonce = nacl.randomBytes(BODY_NONCE_BYTES);
    const fromNacl = Buffer.concat([nonce, nacl.secretbox(EventBody.encode(body).finish(), nonce, key)]);
    expect(openBody(key, fromNacl)).toEqual(body);
  });
});

describe('token proof vectors', () => {
  it.each(events.tokenProofs)('reproduces transcript, MAC and identity signature of $proverId -> $verifierId, and the proof checks', (vector) => {
    const prover = identityFromSeed(bytes(vector.proverSeed));
    const parts = { proverId: vector.proverId, verifierId: vector.verifierId, proverNonce: bytes(vector.proverNonce), verifierNonce: bytes(vector.verifierNonce) };
    const proof = proveToken(vector.token, prover, parts);
    expect(hex(transcript({ ...parts, proverIdentityKey: prover.publicKey }))).toBe(vector.transcript);
    expect(hex(proof.identityKey)).toBe(vector.identityKey);
    expect(hex(proof.mac)).toBe(vector.mac);
    expect(hex(proof.identitySignature)).toBe(vector.identitySignature);
    const fromVector = { mac: bytes(vector.mac), identityKey: bytes(vector.identityKey), identitySignature: bytes(vector.identitySignature) };
    expect(checkTokenProof(vector.token, fromVector, parts)).toBe(true);
    expect(nacl.sign.detached.verify(bytes(vector.transcript), bytes(vector.identitySignature), bytes(vector.identityKey))).toBe(true);
  });
});
