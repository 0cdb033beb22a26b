/**
 * What the Kafka tests and the publish bench share: the broker they use (TEST_KAFKA_BROKERS,
 * else KAFKA_BROKERS, else scripts/kafka.sh's 127.0.0.1:9092), topic names of their own per
 * run, and a reader of a whole topic. Not part of the public surface.
 */
import { randomBytes } from 'node:crypto';
import { logLevel, Kafka } from 'kafkajs';
import { topicsFor } from '../projections/index.js';
import { checkBrokers } from './client.js';
import type { KafkaSettings } from './settings.js';

export const TEST_KAFKA_BROKERS = (process.env.TEST_KAFKA_BROKERS || process.env.KAFKA_BROKERS || '127.0.0.1:9092').split(',').map((broker) => broker.trim());

/** Why no broker can be used, or undefined when one answers. */
export async function kafkaUnavailable(brokers = TEST_KAFKA_BROKERS): Promise<string | undefined> {
  try {
    await checkBrokers({ brokers, clientId: 'trellis-test-probe' });
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

/** Settings whose prefixed topics no other run uses. */
export function testKafkaSettings(label: string, brokers = TEST_KAFKA_BROKERS): KafkaSettings {
  const topicPrefix = `test.${label}.${Date.now().toString(36)}.${randomBytes(3).toString('hex')}`;
  return { brokers, topicPrefix, clientId: `trellis-test-${label}`, topics: topicsFor(topicPrefix) };
}

export const quietKafka = (brokers = TEST_KAFKA_BROKERS, clientId = 'trellis-test') => new Kafka({ clientId, brokers, logLevel: logLevel.NOTHING });

/** Deletes a run's prefixed topics (admin-events and system-events are shared, and stay). */
export async function deleteTestTopics(settings: KafkaSettings): Promise<void> {
  const admin = quietKafka(settings.brokers).admin();
  try {
    await admin.connect();
    const mine = new Set([settings.topics['chat-events'], settings.topics.routing]);
    const existing = (await admin.listTopics()).filter((topic) => mine.has(topic));
    if (existing.length > 0) await admin.deleteTopics({ topics: existing });
  } catch {
    // Left for the broker's own cleanup (scripts/kafka.sh stop wipes its data).
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/** Waits (bounded) until a publisher has made `topic`. */
export async function waitForTopic(brokers: string[], topic: string, timeoutMs = 60_000): Promise<void> {
  const admin = quietKafka(brokers).admin();
  await admin.connect();
  try {
    // Listed is not enough: its partitions answer offsets only once they have leaders.
    const ready = async () => (await admin.listTopics()).includes(topic) && (await offsetsOrRetriable(admin, topic)) !== undefined;
    for (const deadline = Date.now() + timeoutMs; !(await ready()); ) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for the topic ${topic}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    await admin.disconnect();
  }
}

type Admin = ReturnType<ReturnType<typeof quietKafka>['admin']>;

/** A topic's partition offsets, or undefined while Kafka answers with a retriable error (a leader not elected yet). */
async function offsetsOrRetriable(admin: Admin, topic: string): Promise<Awaited<ReturnType<Admin['fetchTopicOffsets']>> | undefined> {
  try {
    return await admin.fetchTopicOffsets(topic);
  } catch (error) {
    if ((error as { retriable?: boolean }).retriable) return undefined;
    throw error;
  }
}

/** A topic's partition offsets, asked again (bounded) while Kafka's answer is retriable. */
export async function topicOffsets(admin: Admin, topic: string, timeoutMs = 30_000): Promise<Awaited<ReturnType<Admin['fetchTopicOffsets']>>> {
  for (const deadline = Date.now() + timeoutMs; ; ) {
    const offsets = await offsetsOrRetriable(admin, topic);
    if (offsets) return offsets;
    if (Date.now() > deadline) throw new Error(`timed out asking the offsets of ${topic}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The end offsets of a topic's partitions now: how many records it holds in all. */
export async function topicRecords(brokers: string[], topic: string): Promise<number> {
  const admin = quietKafka(brokers).admin();
  await admin.connect();
  try {
    const offsets = await topicOffsets(admin, topic);
    return offsets.reduce((sum, partition) => sum + Number(partition.high) - Number(partition.low), 0);
  } finally {
    await admin.disconnect();
  }
}
