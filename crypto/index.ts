export { TrustError, EventError, type TrustErrorCode, type EventErrorCode, TRUST_ERROR_CODES, EVENT_ERROR_CODES } from './errors.js';
export {
  type Identity,
  generateIdentityPem,
  identityFromPem,
  identityFromSeed,
  verifySignature,
  PUBLIC_KEY_BYTES,
  SIGNATURE_BYTES,
} from './identity.js';
export { NONCE_BYTES, proveToken, checkTokenProof, type TokenProof } from './handshake.js';
export {
  type UnsignedEvent,
  canonicalEncoding,
  eventId,
  signEventId,
  verifyEventSignature,
  checkEventShape,
  checkRun,
  logDigest,
  chainEvent,
  checkDraftShape,
  MEMBERSHIP_KINDS,
  type EventDraft,
  type ChainPosition,
  type HybridTime,
  EVENT_BODY_BYTES_MAX,
  EVENT_ID_BYTES,
  EVENT_KIND_MAX,
  EVENT_TEXT_FIELD_CHARS_MAX,
} from './event.js';
export { cryptoReady, newChatKey, sealBody, openBody, CHAT_KEY_BYTES } from './body.js';
export { signServerRecord, verifyServerRecord, signAttestation, verifyAttestation } from './server-record.js';
