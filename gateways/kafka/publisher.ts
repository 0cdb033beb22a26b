import type { Kafka } from 'kafkajs';
import type { LinkLeases, Logger } from '../../router/index.js';
import { ProjectionPublisher, type PublishedNode, type Topics } from '../projections/index.js';
import { checkBrokers, kafkaClient, KafkaError, rootMessage } from './client.js';
import type { KafkaSettings } from './settings.js';
import { KafkaSink } from './sink.js';

/**
 * Partitions of the topics this node creates when they are missing (an operator may make
 * them beforehand with others). chat-events is keyed by chat, so chats spread over its
 * partitions; the other topics are keyed by server and read in one order.
 */
export const CHAT_EVENTS_PARTITIONS = 6;
export const OTHER_TOPIC_PARTITIONS = 1;

export interface KafkaPublisher {
  readonly publisher: ProjectionPublisher;
  readonly settings: KafkaSettings;
  /** Publishes what is stored (bounded), then closes the producer. Call before the node stops. */
  stop(): Promise<void>;
}

/** Makes the topics that do not exist yet; a KafkaError names what failed. */
export async function ensureTopics(kafka: Kafka, topics: Topics): Promise<void> {
  const admin = kafka.admin();
  try {
    await admin.connect();
    const existing = new Set(await admin.listTopics());
    const missing = Object.entries(topics).filter(([, topic]) => !existing.has(topic));
    if (missing.length === 0) return;
    await admin.createTopics({
      waitForLeaders: true,
      topics: missing.map(([projection, topic]) => ({ topic, numPartitions: projection === 'chat-events' ? CHAT_EVENTS_PARTITIONS : OTHER_TOPIC_PARTITIONS })),
    });
  } catch (error) {
    throw new KafkaError('topics-failed', `Kafka: the topics ${Object.values(topics).join(', ')} could not be made or checked (${rootMessage(error)})`, { cause: error });
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/**
 * Starts publishing a node's projections to Kafka: checks that a broker answers (a
 * KafkaError naming the brokers if not, within seconds), makes missing topics, opens the
 * producer and starts the relays (replicas of one server: in the one holding the publisher
 * lease). Later outages are retried while the node runs.
 */
export async function startKafkaPublisher(node: PublishedNode, settings: KafkaSettings, log: Logger, options: { client?: Kafka; leases?: LinkLeases } = {}): Promise<KafkaPublisher> {
  const kafkaLog = log.child({ component: 'kafka' });
  await checkBrokers(settings);
  // A test may pass a client of its own (one whose sockets it can cut).
  const kafka = options.client ?? kafkaClient(settings, kafkaLog);
  await ensureTopics(kafka, settings.topics);
  const sink = new KafkaSink(kafka, settings.topics, kafkaLog);
  try {
    await sink.connect();
  } catch (error) {
    await sink.close();
    throw new KafkaError('unreachable', `Kafka at ${settings.brokers.join(', ')}: the producer could not connect (${rootMessage(error)})`, { cause: error });
  }
  const publisher = await ProjectionPublisher.start(node, {
    sink,
    cursorPrefix: `kafka:${settings.topicPrefix}`,
    describe: `Kafka at ${settings.brokers.join(', ')} (${settings.topics['chat-events']}, ${settings.topics.routing}, ${settings.topics['admin-events']}, ${settings.topics['system-events']})`,
    log: kafkaLog,
    ...(options.leases ? { leases: options.leases } : {}),
  }).catch(async (error: unknown) => {
    await sink.close();
    throw error;
  });
  return {
    publisher,
    settings,
    stop: async () => {
      await publisher.stop();
      await sink.close();
    },
  };
}
