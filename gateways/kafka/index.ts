/**
 * Kafka for a node's projections (gateways/projections): the publisher's producer and
 * topics, and the subscriber side (KafkaFeed) behind the same ProjectionFeed interface as
 * the in-process feed.
 */
export { kafkaSettings, type KafkaSettings } from './settings.js';
export { KafkaError, type KafkaErrorCode, checkBrokers, kafkaClient, pinoLogCreator } from './client.js';
export { KafkaSink } from './sink.js';
export { startKafkaPublisher, ensureTopics, type KafkaPublisher, CHAT_EVENTS_PARTITIONS } from './publisher.js';
export { KafkaFeed, type KafkaSubscribeOptions } from './kafka-feed.js';
