/**
 * The projections a node publishes and the topics that carry them (domain.md names
 * admin-events and system-events; the others are prefixed per server, `trellis.<name>`
 * by default, so several servers can share one cluster).
 */
export const PROJECTIONS = ['chat-events', 'routing', 'admin-events', 'system-events'] as const;
export type ProjectionName = (typeof PROJECTIONS)[number];

export const ADMIN_EVENTS_TOPIC = 'admin-events';
export const SYSTEM_EVENTS_TOPIC = 'system-events';
/** The unprefixed name routing records are kept under in the outbox (store/schema.ts). */
export const ROUTING_OUTBOX_TOPIC = 'routing';

export type Topics = Readonly<Record<ProjectionName, string>>;

/** Kafka's topic name alphabet and length. */
const TOPIC_NAME = /^[A-Za-z0-9._-]{1,249}$/;

export function topicsFor(prefix: string): Topics {
  const topics = { 'chat-events': `${prefix}.chat-events`, routing: `${prefix}.routing`, 'admin-events': ADMIN_EVENTS_TOPIC, 'system-events': SYSTEM_EVENTS_TOPIC };
  for (const topic of Object.values(topics)) if (!TOPIC_NAME.test(topic)) throw new Error(`${topic} is not a Kafka topic name`);
  return topics;
}

/** A server name as a topic or client id may hold it: Kafka's alphabet, anything else becomes `_`. */
export function topicSafe(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 200) || '_';
}

export const defaultTopicPrefix = (serverName: string) => `trellis.${topicSafe(serverName)}`;

/**
 * Administrative actions (the admin service's trust changes, journalled by the node) go to
 * admin-events; every other journal entry (connections, refusals, node start and stop) to
 * system-events.
 */
export const ADMIN_JOURNAL_KINDS: ReadonlySet<string> = new Set(['trust-added', 'trust-changed', 'trust-removed']);

export function journalProjection(kind: string): 'admin-events' | 'system-events' {
  return ADMIN_JOURNAL_KINDS.has(kind) ? 'admin-events' : 'system-events';
}
