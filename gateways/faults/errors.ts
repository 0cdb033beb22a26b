export type FaultErrorCode = 'not-converged' | 'node-crashed' | 'start-failed';

/** Why a seed failed; the message names what was lost, doubled or left waiting, and where. */
export class FaultError extends Error {
  constructor(
    readonly code: FaultErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'FaultError';
  }
}

