/** Why a peer or a link was refused. The code travels on the wire in a LinkError frame. */
export type TrustErrorCode =
  | 'bad-proof'
  | 'unknown-peer'
  | 'trust-blocked'
  | 'rate-limited'
  | 'identity-changed'
  | 'protocol';

export class TrustError extends Error {
  constructor(
    readonly code: TrustErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'TrustError';
  }
}

/** Why an event was refused. Messages name fields, never body bytes. */
export type EventErrorCode = 'bad-id' | 'bad-chain' | 'bad-signature' | 'unknown-origin' | 'malformed';

export class EventError extends Error {
  constructor(
    readonly code: EventErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'EventError';
  }
}
