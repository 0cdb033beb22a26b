import { pino, type DestinationStream, type Logger } from 'pino';

/**
 * Structured logs. Nothing here logs a token or a body, and the redaction below is a
 * second line of defence should a config object ever reach a log call.
 */
const REDACT = ['token_for_accepting', 'token_for_connecting', '*.token_for_accepting', '*.token_for_connecting', 'trusts[*].token_for_accepting', 'trusts[*].token_for_connecting', 'body', '*.body'];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = { level, redact: { paths: REDACT, censor: '[redacted]' }, base: undefined };
  return destination ? pino(options, destination) : pino(options);
}

export type { Logger };
