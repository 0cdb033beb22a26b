/** Link-level refusals beyond the trust ones of crypto/errors.ts. The code travels in LinkError frames. */
export type LinkErrorCode =
  | 'unexpected-frame'
  | 'batch-too-large'
  | 'handshake-timeout'
  | 'dead-link'
  | 'duplicate-link'
  | 'trust-changed'
  | 'shutting-down'
  | 'refused-by-peer'
  | 'backfill-refused'
  | 'unreachable';

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
