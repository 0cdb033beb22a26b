/** Why a peer or a link was refused. The code travels on the wire in a LinkError frame. */
const TRUST_ERROR_CODE_LIST = ['bad-proof', 'unknown-peer', 'trust-blocked', 'rate-limited', 'identity-changed', 'protocol'] as const;
export type TrustErrorCode = (typeof TRUST_ERROR_CODE_LIST)[number];
export const TRUST_ERROR_CODES: ReadonlySet<string> = new Set(TRUST_ERROR_CODE_LIST);

export class TrustError extends Error {
  constructor(
    readonly code: TrustErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'TrustError';
  }
}

/**
 * Why an event was refused. Messages name fields, never body bytes. The first five are
 * the event's own fault (crypto); the rest are a receiver's policy (router/inbound.ts):
 * a clock too far ahead, a chain too far past its gap, a second chat-created, a
 * membership change by a server outside the chat, a value the store could not hold.
 */
const EVENT_ERROR_CODE_LIST = [
  'bad-id', 'bad-chain', 'bad-signature', 'unknown-origin', 'malformed', 'clock-skew', 'too-far-ahead', 'chat-exists', 'not-a-member', 'store-refused',
] as const;
export type EventErrorCode = (typeof EVENT_ERROR_CODE_LIST)[number];
export const EVENT_ERROR_CODES: ReadonlySet<string> = new Set(EVENT_ERROR_CODE_LIST);

export class EventError extends Error {
  constructor(
    readonly code: EventErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'EventError';
  }
}
