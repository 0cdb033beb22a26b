import type { RecordOf } from './records.js';
import type { ProjectionName } from './topics.js';

/**
 * Where a subscriber starts. `earliest` and `latest` apply to a group that has not
 * acknowledged anything yet (else it resumes after what it acknowledged); `offsets` starts
 * each partition named at its offset (the next to read), whatever was acknowledged, and
 * any other partition as `earliest` would.
 */
export type StartAt = 'earliest' | 'latest' | { offsets: Readonly<Record<number, number>> };

/** One record as a subscriber receives it. */
export interface Delivered<P extends ProjectionName = ProjectionName> {
  projection: P;
  /** Kafka's partition, or 0 on the in-process feed. */
  partition: number;
  /** Kafka's offset, or the record's position in the node's store on the in-process feed. */
  offset: number;
  /** The chat id of a chat event; the publishing server's id of any other record. */
  key: string;
  record: RecordOf[P];
}

export interface SubscribeOptions<P extends ProjectionName> {
  projection: P;
  /** The subscriber's name: its Kafka consumer group, or what the in-process feed keeps its position under. */
  group: string;
  /** Default: earliest. */
  from?: StartAt;
  /**
   * A batch of records of one partition, in order, never seen before by this subscription
   * (copies are dropped: see Deduplicator). Resolving acknowledges the batch; throwing
   * hands it over again, whole, after a pause: at least once.
   */
  onRecords(records: Array<Delivered<P>>): Promise<void>;
}

export interface Subscription {
  /** Stops reading; what was acknowledged stays acknowledged. */
  close(): Promise<void>;
}

/**
 * What messaging and media nodes read projections through: Kafka when the server has
 * one (gateways/kafka, KafkaFeed), else the node's own store (InProcessFeed). Both
 * deliver the same records (proto/trellis/v1/projection.proto) with the same guarantees:
 * in order per key, at least once, copies dropped by chain.
 */
export interface ProjectionFeed {
  subscribe<P extends ProjectionName>(options: SubscribeOptions<P>): Promise<Subscription>;
}
