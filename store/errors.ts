/** open-failed: bad options or files; unreachable: the engine did not answer or refused us; read-failed: a value we cannot represent. */
export type StoreErrorCode = 'open-failed' | 'unreachable' | 'migration-failed' | 'read-failed' | 'closed';

export class StoreError extends Error {
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StoreError';
  }
}
