import { Kafka, logLevel, type LogEntry, type logCreator } from 'kafkajs';
import type { Logger } from '../../router/index.js';
import type { KafkaSettings } from './settings.js';

/** unreachable: no broker answered at start; topics: the topics could not be made or checked. */
export type KafkaErrorCode = 'unreachable' | 'topics-failed';

export class KafkaError extends Error {
  constructor(
    readonly code: KafkaErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'KafkaError';
  }
}

/** One connection attempt's bound, and how long a request may take. */
export const CONNECT_TIMEOUT_MS = 3_000;
export const REQUEST_TIMEOUT_MS = 30_000;
/** kafkajs's own retries of one operation, before the caller (a relay, the consumer's restart) takes over. */
const CLIENT_RETRY = { retries: 5, initialRetryTime: 300, maxRetryTime: 5_000 };
/** At start: a missing broker is reported within a few seconds, not after a minute of retries. */
const START_RETRY = { retries: 2, initialRetryTime: 300, maxRetryTime: 1_000 };
/** The same kafkajs message is logged at most once in this window; the rest are counted. */
const LOG_REPEAT_WINDOW_MS = 10_000;
const LOG_KEYS_MAX = 1_000;

/**
 * kafkajs's log through the node's pino logger, at warn and above. Only the message and
 * a few fields are kept (never a record), and a message repeated within
 * LOG_REPEAT_WINDOW_MS (kafkajs logs every retry of every request) is counted, not repeated.
 */
export function pinoLogCreator(log: Logger): logCreator {
  const seen = new Map<string, { atMs: number; repeats: number }>();
  return () =>
    ({ namespace, level, log: entry }: LogEntry) => {
      if (level > logLevel.WARN) return;
      const key = `${namespace}\u0000${entry.message}`;
      const now = Date.now();
      const last = seen.get(key);
      if (last && now - last.atMs < LOG_REPEAT_WINDOW_MS) return void (last.repeats += 1);
      if (seen.size >= LOG_KEYS_MAX) seen.clear();
      seen.set(key, { atMs: now, repeats: 0 });
      const extra = entry as unknown as Record<string, unknown>;
      const fields = {
        kafka: namespace,
        ...(typeof extra.broker === 'string' ? { broker: extra.broker } : {}),
        ...(typeof extra.error === 'string' ? { error: extra.error } : {}),
        ...(typeof extra.retryCount === 'number' ? { retryCount: extra.retryCount } : {}),
        ...(last?.repeats ? { repeatedBefore: last.repeats } : {}),
      };
      if (level === logLevel.ERROR) log.error(fields, entry.message);
      else log.warn(fields, entry.message);
    };
}

export function kafkaClient(settings: Pick<KafkaSettings, 'brokers' | 'clientId'>, log: Logger, retry = CLIENT_RETRY): Kafka {
  return new Kafka({
    clientId: settings.clientId,
    brokers: settings.brokers,
    connectionTimeout: CONNECT_TIMEOUT_MS,
    requestTimeout: REQUEST_TIMEOUT_MS,
    retry,
    logLevel: logLevel.WARN,
    logCreator: pinoLogCreator(log),
  });
}

/** The innermost message of a kafkajs error (its causes wrap the socket's). */
export function rootMessage(error: unknown): string {
  let current = error;
  for (let depth = 0; depth < 5 && current instanceof Error && current.cause instanceof Error; depth++) current = current.cause;
  return current instanceof Error ? current.message : String(current);
}

/**
 * Checks that a broker answers (cluster metadata), within seconds; a KafkaError that names
 * the brokers otherwise. The client used is quiet: the error says it all.
 */
export async function checkBrokers(settings: Pick<KafkaSettings, 'brokers' | 'clientId'>): Promise<void> {
  const kafka = new Kafka({ clientId: settings.clientId, brokers: settings.brokers, connectionTimeout: CONNECT_TIMEOUT_MS, requestTimeout: 10_000, retry: START_RETRY, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  try {
    await admin.connect();
    await admin.describeCluster();
  } catch (error) {
    throw new KafkaError('unreachable', `Kafka at ${settings.brokers.join(', ')}: no broker answered (${rootMessage(error)}); check kafka.brokers or KAFKA_BROKERS, and that the broker runs`, { cause: error });
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}
