/**
 * open-failed: bad options or files; unreachable: the engine did not answer or refused us;
 * read-failed: a value we cannot represent; fenced: a replica's lease on a link was taken over.
 */
export type StoreErrorCode = 'open-failed' | 'unreachable' | 'migration-failed' | 'read-failed' | 'fenced' | 'closed';

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
