import { Partitioners, type Kafka, type Message, type Producer } from 'kafkajs';
import type { Logger } from '../../router/index.js';
import type { OutgoingRecord, RecordSink, Topics } from '../projections/index.js';

/** How long the broker may take to have a batch written to all in-sync replicas (acks=all). */
export const SEND_ACK_TIMEOUT_MS = 30_000;
/** How long close waits for a producer still connecting (a broker that went away) before leaving it. */
const CLOSE_WAIT_MS = 2_000;
/**
 * An idempotent producer retries a send until it succeeds, with the same sequence numbers,
 * so the broker drops a batch it already wrote (kafkajs's default for idempotence; fewer
 * retries would void it). A broker that is away therefore holds a send until it is back:
 * the relay says so in its log meanwhile. An error that is not retriable ends the send.
 */
const PRODUCER_RETRY = { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 300, maxRetryTime: 10_000 };

/**
 * The relays' way into Kafka: one idempotent producer, one request in flight, acks from
 * all in-sync replicas, keys partitioned as the Java client does (murmur2), so another
 * language's producer and consumer agree on where a chat lives. A send that fails (an
 * error kafkajs does not retry, e.g. out-of-order sequence after the broker lost state)
 * drops the producer: the next publish starts a new one (new producer id), since the
 * failed one's sequence numbers may be out of step with the broker's. Resending what may
 * have been written makes copies, which subscribers drop.
 */
export class KafkaSink implements RecordSink {
  private producer: Producer | undefined;
  private connecting: Promise<Producer> | undefined;
  private closed = false;

  constructor(
    private readonly kafka: Kafka,
    private readonly topics: Topics,
    private readonly log: Logger,
  ) {}

  /** Connects now (at start, so an unreachable broker shows before the node serves). */
  async connect(): Promise<void> {
    await this.ready();
  }

  async publish(records: readonly OutgoingRecord[]): Promise<void> {
    if (records.length === 0) return;
    const producer = await this.ready();
    const byTopic = new Map<string, Message[]>();
    for (const record of records) {
      const topic = this.topics[record.projection];
      let messages = byTopic.get(topic);
      if (!messages) byTopic.set(topic, (messages = []));
      messages.push({ key: record.key, value: record.value });
    }
    try {
      await producer.sendBatch({ acks: -1, timeout: SEND_ACK_TIMEOUT_MS, topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })) });
    } catch (error) {
      await this.discard(producer);
      throw error;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const bounded = <T>(work: Promise<T>): Promise<T | undefined> =>
      Promise.race([work.catch(() => undefined), new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), CLOSE_WAIT_MS).unref())]);
    const producer = this.producer ?? (this.connecting && (await bounded(this.connecting)));
    this.producer = undefined;
    if (producer) await bounded(producer.disconnect());
  }

  private ready(): Promise<Producer> {
    if (this.closed) return Promise.reject(new Error('the Kafka producer is closed'));
    if (this.producer) return Promise.resolve(this.producer);
    this.connecting ??= this.open().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private async open(): Promise<Producer> {
    const producer = this.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
      retry: PRODUCER_RETRY,
    });
    try {
      await producer.connect();
    } catch (error) {
      await producer.disconnect().catch(() => undefined);
      throw error;
    }
    this.producer = producer;
    return producer;
  }

  private async discard(producer: Producer): Promise<void> {
    if (this.producer !== producer) return;
    this.producer = undefined;
    this.log.debug('Kafka producer dropped after a failed send; the next send opens a new one');
    await producer.disconnect().catch(() => undefined);
  }
}
