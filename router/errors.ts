import { EVENT_ERROR_CODES, TRUST_ERROR_CODES } from '../crypto/index.js';
import { printable } from './audit.js';

/** Link-level refusals beyond the trust ones of crypto/errors.ts. The code travels in LinkError frames. */
const LINK_ERROR_CODE_LIST = [
  'unexpected-frame', 'batch-too-large', 'handshake-timeout', 'handshake-busy', 'dead-link', 'duplicate-link', 'trust-changed', 'shutting-down', 'refused-by-peer', 'backfill-refused', 'unreachable',
  // Replicas of one server: the link belongs to another replica, or our lease on it lapsed.
  'not-owner', 'lease-lost',
  // A transit does not pass an event on to a destination the peer may not hand over to it (journalled; the event is kept).
  'forward-refused',
] as const;
export type LinkErrorCode = (typeof LINK_ERROR_CODE_LIST)[number];
export const LINK_ERROR_CODES: ReadonlySet<string> = new Set(LINK_ERROR_CODE_LIST);

/** A code a peer sent, as we record it: one of the known codes, else `unknown` (a peer picks no journal text). */
export function knownPeerCode(code: string): string {
  return LINK_ERROR_CODES.has(code) || TRUST_ERROR_CODES.has(code) || EVENT_ERROR_CODES.has(code) ? code : 'unknown';
}

/** What a peer's error message may add to a log line or journal entry: printable and short. */
export const PEER_MESSAGE_CHARS_MAX = 200;
export const peerMessage = (message: string) => printable(message, PEER_MESSAGE_CHARS_MAX);

export class LinkFailure extends Error {
  constructor(
    readonly code: LinkErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'LinkFailure';
  }
}

export class ConfigError extends Error {
  readonly code = 'config-invalid';
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`${source}: invalid configuration\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}
