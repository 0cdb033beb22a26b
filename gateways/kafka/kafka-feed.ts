import type { Consumer, Kafka } from 'kafkajs';
import type { Logger } from '../../router/index.js';
import { chainOf, decodeRecord, Deduplicator, type Delivered, type ProjectionFeed, type ProjectionName, type SubscribeOptions, type Subscription } from '../projections/index.js';
import { kafkaClient } from './client.js';
import type { KafkaSettings } from './settings.js';

/** How long a fetch waits for records to arrive before answering with what it has. */
const FETCH_WAIT_MS = 100;
/** A consumer whose handler keeps failing is restarted by kafkajs after its retries, from the last acknowledged offset. */
const CONSUMER_RETRY = { retries: 5, initialRetryTime: 300, maxRetryTime: 5_000, restartOnFailure: async () => true };

export interface KafkaSubscribeOptions<P extends ProjectionName> extends SubscribeOptions<P> {
  /**
   * Remembers what was delivered, to drop copies (default: a new one per subscription). A
   * subscriber that restarts, or shares a group with others (a partition may move to it),
   * drops the copies of what it applied before only if it passes one seeded with that.
   */
  dedup?: Deduplicator;
}

/**
 * Projections read from Kafka by a consumer group: each partition's records in order,
 * acknowledged (offsets committed) only after the handler resolved, copies dropped by
 * chain. A record that does not decode is skipped with a warning (it was not ours).
 */
export class KafkaFeed implements ProjectionFeed {
  private readonly kafka: Kafka;

  constructor(
    private readonly settings: Pick<KafkaSettings, 'brokers' | 'clientId' | 'topics'>,
    private readonly log: Logger,
  ) {
    this.kafka = kafkaClient(settings, log.child({ component: 'kafka-feed' }));
  }

  async subscribe<P extends ProjectionName>(options: KafkaSubscribeOptions<P>): Promise<Subscription> {
    if (!options.group) throw new Error('a subscription needs a group name');
    const topic = this.settings.topics[options.projection];
    const from = options.from ?? 'earliest';
    // A topic is made by its publisher (with its partitions), never by a subscriber's metadata request.
    const consumer = this.kafka.consumer({ groupId: options.group, maxWaitTimeInMs: FETCH_WAIT_MS, retry: CONSUMER_RETRY, allowAutoTopicCreation: false });
    try {
      await consumer.connect();
      await consumer.subscribe({ topics: [topic], fromBeginning: from !== 'latest' });
      await consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: this.batchHandler(consumer, options, options.dedup ?? new Deduplicator()) });
    } catch (error) {
      await consumer.disconnect().catch(() => undefined);
      throw error;
    }
    if (typeof from === 'object') for (const [partition, offset] of Object.entries(from.offsets)) consumer.seek({ topic, partition: Number(partition), offset: String(offset) });
    return { close: () => consumer.disconnect() };
  }

  private batchHandler<P extends ProjectionName>(consumer: Consumer, options: SubscribeOptions<P>, dedup: Deduplicator): NonNullable<Parameters<Consumer['run']>[0]>['eachBatch'] {
    const projection = options.projection;
    return async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
      const last = batch.messages[batch.messages.length - 1];
      if (!last || !isRunning() || isStale()) return;
      const delivered: Array<Delivered<P>> = [];
      let malformed = 0;
      for (const message of batch.messages) {
        try {
          if (!message.value) throw new Error('no value');
          delivered.push({ projection, partition: batch.partition, offset: Number(message.offset), key: message.key?.toString('utf8') ?? '', record: decodeRecord(projection, message.value) });
        } catch {
          malformed += 1;
        }
      }
      if (malformed > 0) this.log.warn({ topic: batch.topic, partition: batch.partition, malformed }, 'records that are not projection records skipped');
      const { fresh, commit } = dedup.select(delivered, (d) => chainOf(projection, d.record));
      if (fresh.length > 0) await options.onRecords(fresh);
      commit();
      resolveOffset(last.offset);
      await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: String(Number(last.offset) + 1) }]);
      await heartbeat();
    };
  }
}
