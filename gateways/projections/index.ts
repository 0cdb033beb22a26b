/**
 * Projections of a node's log for the other services of its server: the publisher
 * (relays from the log, the journal and the outbox to a bus, each with its own cursor)
 * and the subscriber side (one interface, ProjectionFeed, on the in-process feed here
 * and on Kafka in gateways/kafka). Records: proto/trellis/v1/projection.proto.
 */
export { PROJECTIONS, type ProjectionName, type Topics, topicsFor, defaultTopicPrefix, topicSafe, journalProjection, ADMIN_JOURNAL_KINDS, ADMIN_EVENTS_TOPIC, SYSTEM_EVENTS_TOPIC } from './topics.js';
export { type RecordOf, decodeRecord, chainOf } from './records.js';
export { Deduplicator, DEDUP_CHAINS_MAX } from './dedup.js';
export { type ProjectionFeed, type Subscription, type SubscribeOptions, type Delivered, type StartAt } from './feed.js';
export { InProcessFeed, type FeedNode, FEED_BATCH_RECORDS_MAX } from './in-process-feed.js';
export { Relay, type RecordSink, RELAY_BATCH_RECORDS_MAX, retryDelayMs } from './relay.js';
export { type OutgoingRecord, type ProjectionSource, ChatEventSource, JournalSource, RoutingSource, SOURCE_BATCH_BYTES_MAX } from './sources.js';
export { ProjectionPublisher, type PublisherOptions, type PublishedNode } from './publisher.js';
export { RoutingRecorder, routingRecorder, OUTBOX_ROWS_KEPT } from './routing-recorder.js';
