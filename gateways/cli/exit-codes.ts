import { StoreError } from '../../store/index.js';
import { ConfigError } from '../../router/index.js';

/** sysexits(3) codes, so scripts and service managers can tell a typo from an outage. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 64;
export const EXIT_UNAVAILABLE = 69;
export const EXIT_CANT_CREATE = 73;
export const EXIT_CONFIG = 78;

/** A failure the CLI reports as one line (no stack) with the exit code that fits it. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export function exitCodeOf(error: unknown): number {
  if (error instanceof CliError) return error.exitCode;
  if (error instanceof ConfigError) return EXIT_CONFIG;
  if (error instanceof StoreError) return EXIT_UNAVAILABLE;
  return EXIT_FAILURE;
}
