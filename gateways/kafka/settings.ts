import { ConfigError, type NodeConfig } from '../../router/index.js';
import { defaultTopicPrefix, topicSafe, topicsFor, type Topics } from '../projections/index.js';

/** Where and under which names a node publishes its projections. */
export interface KafkaSettings {
  brokers: string[];
  topicPrefix: string;
  clientId: string;
  topics: Topics;
}

const HOST_PORT = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

/**
 * Kafka as this node is to use it: KAFKA_BROKERS in the environment (comma-separated
 * host:port) takes the place of the config's kafka.brokers, as DATABASE_URL does for the
 * store; without either there is no Kafka (undefined), and the in-process feed serves.
 */
export function kafkaSettings(config: Pick<NodeConfig, 'server' | 'kafka'>, env: NodeJS.ProcessEnv): KafkaSettings | undefined {
  const fromEnv = env.KAFKA_BROKERS?.split(',').map((broker) => broker.trim()).filter(Boolean);
  const brokers = fromEnv?.length ? fromEnv : config.kafka?.brokers;
  if (!brokers?.length) return undefined;
  if (fromEnv?.length) {
    const bad = fromEnv.filter((broker) => !HOST_PORT.test(broker) || Number(broker.slice(broker.lastIndexOf(':') + 1)) > 65535);
    if (bad.length > 0) throw new ConfigError('KAFKA_BROKERS', bad.map((broker) => `KAFKA_BROKERS: ${JSON.stringify(broker)} must be host:port, e.g. 127.0.0.1:9092`));
  }
  const topicPrefix = config.kafka?.topic_prefix ?? defaultTopicPrefix(config.server.name);
  return { brokers, topicPrefix, clientId: config.kafka?.client_id ?? `trellis-${topicSafe(config.server.name)}`, topics: topicsFor(topicPrefix) };
}
