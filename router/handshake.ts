import { randomBytes } from 'node:crypto';
import { checkTokenProof, NONCE_BYTES, proveToken, TRUST_ERROR_CODES, TrustError, type Identity, type TrustErrorCode } from '../crypto/index.js';
import type { Frame, Hello, Proof } from '../proto/gen/trellis/v1/link.js';
import type { AuditEntry } from '../store/index.js';
import type { TrustConfig } from './config.js';
import { knownPeerCode, LinkFailure, peerMessage, type LinkErrorCode } from './errors.js';
import { errorFrame, type FrameChannel } from './frame-channel.js';
import { FailureRateLimiter } from './rate-limit.js';

/**
 * The opening of a trust link (architecture.md, "The trust link"):
 *
 *   dialler  → Hello(id, nonce)            acceptor checks the trust exists and is enabled
 *   acceptor → Hello(id, nonce)
 *   dialler  → Proof                       MAC with its token for connecting
 *   acceptor → Proof, Welcome(cursor)      only after the dialler's proof checked out
 *   dialler  → Welcome(cursor)             only after the acceptor's proof checked out
 *
 * A side that cannot prove the pair learns only the other's server id. Each side
 * claims the link slot (ending a link this one replaces) before it reads the cursor
 * it sends in Welcome, so the peer resends exactly what is not stored here.
 */
export const PROTOCOL_VERSION = 1;
/**
 * How long an accepted stream may stay silent before its Hello (handshake_timeout_ms if
 * that is shorter): a dialler sends its Hello as its first frame, at once, so a stream
 * that says nothing is dropped soon instead of holding a slot for a whole handshake step.
 */
export const FIRST_FRAME_TIMEOUT_MS = 2_000;

export interface HandshakeContext {
  selfId: string;
  identity: Identity;
  timeoutMs: number;
  limiter: FailureRateLimiter;
  trustOf(serverId: string): TrustConfig | undefined;
  pinnedKey(serverId: string): Promise<Uint8Array | undefined>;
  pinKey(serverId: string, identityKey: Uint8Array): Promise<void>;
  /**
   * Makes room for a link to `peerId` dialled by `diallerId`: throws LinkFailure
   * ('duplicate-link') when a live link wins over it, else ends the link it replaces and
   * waits until that one has stored its last frame, so the cursor read next is exact.
   */
  claimLink(peerId: string, diallerId: string): Promise<LinkClaim>;
  /** The last link sequence of the peer's stream durably stored here. */
  storedLinkSeq(peerId: string): Promise<number>;
  /** Journals an entry; entries sharing a coalescing key are summarised under a flood. */
  audit(entry: AuditEntry, coalesceKey?: string): Promise<void>;
  /** Accepting side: the stream's handshake slot (router/handshake-slots.ts); absent, no bound. */
  inbound?: InboundSlot;
}

/** An accepted stream's place among the node's handshakes: silent until its Hello, then held for the claimed id. */
export interface InboundSlot {
  /** Counts the stream as silent; never resolves, and rejects with LinkFailure('handshake-busy') if a newer stream takes its place. */
  silent(): Promise<never>;
  /** The Hello came: holds a slot for the claimed id until the handshake ends, or throws LinkFailure('handshake-busy'). */
  spoke(claimedId: string): void;
}

/** A reservation of the one link slot of a peer, held from the handshake until the link ends. */
export interface LinkClaim {
  readonly diallerId: string;
  /** Gives the slot back if this handshake fails before its link is adopted. */
  release(): void;
}

export interface LinkOpening {
  peerId: string;
  claim: LinkClaim;
  trust: TrustConfig;
  /** Where to resend from: the last link sequence of our stream the peer has stored. */
  peerStoredLinkSeq: number;
  /** Where the peer resends from: the last link sequence of its stream we had stored. */
  ourStoredLinkSeq: number;
}

const LINK_CODES: ReadonlySet<string> = new Set<LinkErrorCode>(['duplicate-link', 'trust-changed', 'shutting-down', 'handshake-timeout', 'handshake-busy', 'unexpected-frame']);
/** Outcomes of a healthy federation (a lost dial race, a peer not up yet): logged, not journalled. */
const UNAUDITED_CODES: ReadonlySet<string> = new Set(['unreachable', 'duplicate-link', 'shutting-down']);
/**
 * Refusals that are no sign of an attack, so they do not count towards a source's rate limit.
 * `handshake-busy` is our load, not the source's doing; a silent stream that stays silent
 * still counts, as a handshake-timeout.
 */
const BENIGN_CODES: ReadonlySet<string> = new Set(['duplicate-link', 'shutting-down', 'trust-changed', 'unreachable', 'handshake-busy']);

/** Reads the next frame and insists on its kind; a peer's error frame becomes a typed error. */
async function expectFrame<K extends 'hello' | 'proof' | 'welcome'>(channel: FrameChannel, kind: K, timeoutMs: number) {
  let frame: Frame | undefined;
  try {
    frame = await channel.next(timeoutMs);
  } catch (error) {
    // A gRPC status on the stream means the connection itself failed, not the peer's answer.
    if (typeof (error as { code?: unknown }).code === 'number') throw new LinkFailure('unreachable', `handshake: ${(error as Error).message.split('.')[0]}`);
    throw new LinkFailure('handshake-timeout', `handshake: waiting for ${kind}: ${(error as Error).message}`);
  }
  if (!frame?.kind) throw new LinkFailure('unexpected-frame', `handshake: stream ended while waiting for ${kind}`);
  if (frame.kind.$case === 'error') {
    const code = knownPeerCode(frame.kind.value.code);
    const said = `refused by peer: ${code}: ${peerMessage(frame.kind.value.message)}`;
    if (LINK_CODES.has(code)) throw new LinkFailure(code as LinkErrorCode, said);
    throw new TrustError(TRUST_ERROR_CODES.has(code) ? (code as TrustErrorCode) : 'protocol', said);
  }
  if (frame.kind.$case !== kind) throw new LinkFailure('unexpected-frame', `handshake: expected ${kind}, got ${frame.kind.$case}`);
  return frame.kind.value as Extract<NonNullable<Frame['kind']>, { $case: K }>['value'];
}

/** The dialler's first frame, due at once; while it is awaited the stream holds a silent slot that a newer one may take. */
function firstHello(ctx: HandshakeContext, channel: FrameChannel): Promise<Hello> {
  const hello = expectFrame(channel, 'hello', Math.min(ctx.timeoutMs, FIRST_FRAME_TIMEOUT_MS));
  return ctx.inbound ? Promise.race([hello, ctx.inbound.silent()]) : hello;
}

function checkHello(hello: Hello): void {
  if (hello.nonce.length !== NONCE_BYTES) throw new TrustError('protocol', `hello nonce must be ${NONCE_BYTES} bytes`);
  if (hello.protocolVersion !== PROTOCOL_VERSION) throw new TrustError('protocol', `protocol version ${hello.protocolVersion} is not ${PROTOCOL_VERSION}`);
}

/** The peer's identity key must match the configured one, else the one pinned at first contact. */
async function checkIdentity(ctx: HandshakeContext, trust: TrustConfig, proof: Proof): Promise<void> {
  const expected = trust.identity_key ? Buffer.from(trust.identity_key, 'base64') : await ctx.pinnedKey(trust.server_id);
  if (expected && !Buffer.from(expected).equals(proof.identityKey)) {
    throw new TrustError('identity-changed', 'peer presented another identity key than the one pinned for it');
  }
}

function usableTrust(ctx: HandshakeContext, serverId: string): TrustConfig {
  const trust = ctx.trustOf(serverId);
  if (!trust) throw new TrustError('unknown-peer', 'no trust is configured for this server id');
  if (trust.status !== 'enabled') throw new TrustError('trust-blocked', 'the trust with this server is disabled');
  return trust;
}

function codeOf(error: unknown): string {
  return error instanceof TrustError || error instanceof LinkFailure ? error.code : 'protocol';
}

/**
 * Ends a failed handshake: tells the peer why (unless it told us), and journals it,
 * coalesced per source address so a flood of refusals costs a few rows a minute.
 */
async function refuse(ctx: HandshakeContext, channel: FrameChannel, peer: string | undefined, error: unknown, side: string): Promise<never> {
  const code = codeOf(error);
  const message = error instanceof Error ? error.message : String(error);
  const refusedByPeer = message.startsWith('refused by peer');
  if (!refusedByPeer) channel.close(errorFrame(code, message));
  else channel.close();
  if (UNAUDITED_CODES.has(code)) throw error;
  const entry = { kind: refusedByPeer ? 'link-refused-by-peer' : 'link-refused', code, detail: `${side}: ${message}`, ...(peer ? { peer } : {}) };
  await ctx.audit(entry, side === 'accepting' ? channel.remoteAddress : peer);
  throw error;
}

/**
 * The context of a dialler that is not a node: it keeps no store, pins nothing, journals
 * nothing and claims no slot (a test's rogue peer, the bench's idle links).
 */
export function storelessDialContext(selfId: string, identity: Identity, trust: TrustConfig, timeoutMs: number): HandshakeContext {
  return {
    selfId,
    identity,
    timeoutMs,
    limiter: new FailureRateLimiter(Date.now),
    trustOf: () => trust,
    pinnedKey: async () => undefined,
    pinKey: async () => undefined,
    claimLink: async (_peer, diallerId) => ({ diallerId, release: () => undefined }),
    storedLinkSeq: async () => 0,
    audit: async () => undefined,
  };
}

export async function dialHandshake(ctx: HandshakeContext, channel: FrameChannel, trust: TrustConfig): Promise<LinkOpening> {
  const ourNonce = randomBytes(NONCE_BYTES);
  let claim: LinkClaim | undefined;
  try {
    await channel.send({ kind: { $case: 'hello', value: { serverId: ctx.selfId, nonce: ourNonce, protocolVersion: PROTOCOL_VERSION } } });
    const hello = await expectFrame(channel, 'hello', ctx.timeoutMs);
    checkHello(hello);
    if (hello.serverId !== trust.server_id) throw new TrustError('unknown-peer', 'the server at this endpoint is not the one the trust names');
    const ourParts = { proverId: ctx.selfId, verifierId: trust.server_id, proverNonce: ourNonce, verifierNonce: hello.nonce };
    await channel.send({ kind: { $case: 'proof', value: proof(proveToken(trust.token_for_connecting, ctx.identity, ourParts)) } });
    const theirProof = await expectFrame(channel, 'proof', ctx.timeoutMs);
    const theirParts = { proverId: trust.server_id, verifierId: ctx.selfId, proverNonce: hello.nonce, verifierNonce: ourNonce };
    if (!checkTokenProof(trust.token_for_accepting, theirProof, theirParts)) throw new TrustError('bad-proof', 'the peer could not prove our token for accepting');
    await checkIdentity(ctx, trust, theirProof);
    const welcome = await expectFrame(channel, 'welcome', ctx.timeoutMs);
    claim = await ctx.claimLink(trust.server_id, ctx.selfId);
    const ourStoredLinkSeq = await ctx.storedLinkSeq(trust.server_id);
    await channel.send({ kind: { $case: 'welcome', value: { storedLinkSeq: ourStoredLinkSeq } } });
    await ctx.pinKey(trust.server_id, theirProof.identityKey);
    return { peerId: trust.server_id, claim, trust, peerStoredLinkSeq: welcome.storedLinkSeq, ourStoredLinkSeq };
  } catch (error) {
    claim?.release();
    return refuse(ctx, channel, trust.server_id, error, 'dialling');
  }
}

/**
 * The accepting side. Every refused handshake, whatever its reason, counts against the
 * source address and against the (address, claimed id) pair; a limited source is turned
 * away before any proof is checked, so it gets no answer it could learn from. The pair
 * limit is the tighter one; the address limit stops a source cycling through ids.
 */
export async function acceptHandshake(ctx: HandshakeContext, channel: FrameChannel): Promise<LinkOpening> {
  let claimedId: string | undefined;
  const address = channel.remoteAddress;
  let claim: LinkClaim | undefined;
  try {
    if (ctx.limiter.isLimited(address, 'address')) throw new TrustError('rate-limited', 'too many failed handshakes from this address; try again later');
    const hello = await firstHello(ctx, channel);
    claimedId = peerMessage(hello.serverId.slice(0, 64));
    if (ctx.limiter.isLimited(`${address}|${claimedId}`, 'claim')) throw new TrustError('rate-limited', 'too many failed handshakes; try again later');
    checkHello(hello);
    const trust = usableTrust(ctx, hello.serverId);
    ctx.inbound?.spoke(trust.server_id);
    const ourNonce = randomBytes(NONCE_BYTES);
    await channel.send({ kind: { $case: 'hello', value: { serverId: ctx.selfId, nonce: ourNonce, protocolVersion: PROTOCOL_VERSION } } });
    const theirProof = await expectFrame(channel, 'proof', ctx.timeoutMs);
    const theirParts = { proverId: trust.server_id, verifierId: ctx.selfId, proverNonce: hello.nonce, verifierNonce: ourNonce };
    if (!checkTokenProof(trust.token_for_accepting, theirProof, theirParts)) throw new TrustError('bad-proof', 'the peer could not prove our token for accepting');
    await checkIdentity(ctx, trust, theirProof);
    const ourParts = { proverId: ctx.selfId, verifierId: trust.server_id, proverNonce: ourNonce, verifierNonce: hello.nonce };
    claim = await ctx.claimLink(trust.server_id, trust.server_id);
    const ourStoredLinkSeq = await ctx.storedLinkSeq(trust.server_id);
    await channel.send({ kind: { $case: 'proof', value: proof(proveToken(trust.token_for_connecting, ctx.identity, ourParts)) } });
    await channel.send({ kind: { $case: 'welcome', value: { storedLinkSeq: ourStoredLinkSeq } } });
    const welcome = await expectFrame(channel, 'welcome', ctx.timeoutMs);
    await ctx.pinKey(trust.server_id, theirProof.identityKey);
    return { peerId: trust.server_id, claim, trust, peerStoredLinkSeq: welcome.storedLinkSeq, ourStoredLinkSeq };
  } catch (error) {
    claim?.release();
    const code = codeOf(error);
    if (code === 'rate-limited') {
      // Journalled when the source crossed the limit; each further refusal is only counted.
      channel.close(errorFrame(code, (error as Error).message));
      await ctx.audit({ kind: 'link-refused', code, detail: 'accepting: refused while rate-limited', ...(claimedId ? { peer: claimedId } : {}) }, address);
      throw error;
    }
    if (!BENIGN_CODES.has(code)) {
      const crossed = [ctx.limiter.recordFailure(address, 'address'), claimedId !== undefined && ctx.limiter.recordFailure(`${address}|${claimedId}`, 'claim')];
      if (crossed.some(Boolean)) {
        await ctx.audit({ kind: 'link-rate-limited', code: 'rate-limited', detail: `accepting: ${address} reached the failure limit`, ...(claimedId ? { peer: claimedId } : {}) }, address);
      }
    }
    return refuse(ctx, channel, claimedId, error, 'accepting');
  }
}

function proof(tokenProof: { mac: Uint8Array; identityKey: Uint8Array; identitySignature: Uint8Array }): Proof {
  return { mac: Buffer.from(tokenProof.mac), identityKey: Buffer.from(tokenProof.identityKey), identitySignature: Buffer.from(tokenProof.identitySignature) };
}
