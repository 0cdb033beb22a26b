/**
 * Kafka publish throughput through the outbox: N stored events (256 B bodies by default)
 * published by the chat-events relay (read from the store after its cursor, encoded as
 * ChatEventRecord, sent 1,000 a request by the idempotent producer with acks=all, cursor
 * moved after each acknowledgement) to a real broker; and, as the bound, kafkajs alone on
 * the same broker in the same run, sending the same record bytes with the same producer
 * settings and batch size. Topics are made per run and deleted after.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { Partitioners, type Message } from 'kafkajs';
import { createLogger } from '../router/index.js';
import { openEmbeddedStore, type EventStore } from '../store/index.js';
import { ChatEventSource, Relay, RELAY_BATCH_RECORDS_MAX } from '../gateways/projections/index.js';
import { appendAll, syntheticLog } from '../gateways/projections/testing.js';
import { ensureTopics, kafkaClient, KafkaSink } from '../gateways/kafka/index.js';
import { deleteTestTopics, kafkaUnavailable, quietKafka, testKafkaSettings, TEST_KAFKA_BROKERS } from '../gateways/kafka/testing.js';

export interface PublishBenchOptions {
  /** Default: TEST_KAFKA_BROKERS, KAFKA_BROKERS, else 127.0.0.1:9092. */
  brokers?: string[];
  /** Events published (default 50,000), over `chats` chats (default 10). */
  events?: number;
  chats?: number;
  /** Body bytes per event (default 256). */
  bodyBytes?: number;
  /** Bound on the whole measurement (default 180 s): past it, it fails rather than hangs. */
  timeLimitMs?: number;
}

export interface PublishBenchResult {
  brokers: string[];
  events: number;
  bodyBytes: number;
  /** Bytes of one encoded record (ChatEventRecord), the same in both runs. */
  recordBytes: number;
  /** Stored events → relay → Kafka acknowledged, cursor moved: events/s. */
  outboxEventsPerS: number;
  outboxSeconds: number;
  /** The other bound: reading the same events from the store and encoding them, with no Kafka: events/s. */
  readEncodeEventsPerS: number;
  /** kafkajs alone, same records, same batch size and producer settings: events/s. */
  kafkajsEventsPerS: number;
  kafkajsSeconds: number;
  batchRecords: number;
}

const WARMUP_EVENTS = 2_000;

/** Measures; throws (with the broker's answer) when no broker is reachable. */
export async function measurePublish(options: PublishBenchOptions = {}): Promise<PublishBenchResult> {
  const brokers = options.brokers ?? TEST_KAFKA_BROKERS;
  const events = options.events ?? 50_000;
  const bodyBytes = options.bodyBytes ?? 256;
  const unavailable = await kafkaUnavailable(brokers);
  if (unavailable) throw new Error(unavailable);
  const deadline = Date.now() + (options.timeLimitMs ?? 180_000);
  const dir = mkdtempSync(join(tmpdir(), 'trellis-publish-bench-'));
  const settings = testKafkaSettings('bench-outbox', brokers);
  const alone = testKafkaSettings('bench-kafkajs', brokers);
  const log = createLogger('warn');
  let store: EventStore | undefined;
  try {
    store = await openEmbeddedStore({ dataDir: join(dir, 'store'), durability: 'os' });
    const serverId = randomUUID();
    const { events: stored } = syntheticLog({ origin: serverId, chats: options.chats ?? 10, events: WARMUP_EVENTS + events, bodyBytes, members: [`alice@${serverId}`] });
    await appendAll(store, stored);
    const kafka = kafkaClient(settings, log);
    await ensureTopics(kafka, settings.topics);
    await ensureTopics(kafka, alone.topics);

    // The records kafkajs alone sends: the relay's own bytes, read once beforehand (timed: the store's side of the bound).
    const source = new ChatEventSource(store, serverId);
    const messages: Message[] = [];
    let readStartedAt = 0;
    for (let after = 0; messages.length < stored.length; ) {
      if (messages.length >= WARMUP_EVENTS && readStartedAt === 0) readStartedAt = performance.now();
      const batch = await source.read(after, RELAY_BATCH_RECORDS_MAX);
      messages.push(...batch.records.map((record) => ({ key: record.key, value: record.value })));
      after = batch.position;
    }
    const readSeconds = (performance.now() - readStartedAt) / 1000;
    const kafkajs = await timeKafkajsAlone(brokers, alone.topics['chat-events'], messages, deadline);

    const sink = new KafkaSink(kafka, settings.topics, log);
    await sink.connect();
    const relay = new Relay({ cursorName: 'bench:chat-events', source: new ChatEventSource(store, serverId), sink, store, log });
    // The first WARMUP_EVENTS are published unreported (local seqs run 1, 2, ... in this fresh store).
    await relay.start();
    await until(() => relay.publishedPosition >= WARMUP_EVENTS, deadline);
    const startedAt = performance.now();
    const startedFrom = relay.publishedPosition;
    const last = await store.lastLocalSeq();
    await until(() => relay.publishedPosition >= last, deadline);
    const outboxSeconds = (performance.now() - startedAt) / 1000;
    const outboxEvents = last - startedFrom;
    await relay.stop(2_000);
    await sink.close();
    return {
      brokers,
      events,
      bodyBytes,
      recordBytes: messages[messages.length - 1]?.value?.length ?? 0,
      outboxEventsPerS: Math.round(outboxEvents / outboxSeconds),
      outboxSeconds,
      readEncodeEventsPerS: Math.round((messages.length - WARMUP_EVENTS) / readSeconds),
      kafkajsEventsPerS: Math.round((messages.length - WARMUP_EVENTS) / kafkajs),
      kafkajsSeconds: kafkajs,
      batchRecords: RELAY_BATCH_RECORDS_MAX,
    };
  } finally {
    await store?.close().catch(() => undefined);
    await deleteTestTopics(settings);
    await deleteTestTopics(alone);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** kafkajs alone: the first WARMUP_EVENTS messages unreported, then the rest timed; seconds. */
async function timeKafkajsAlone(brokers: string[], topic: string, messages: readonly Message[], deadline: number): Promise<number> {
  const producer = quietKafka(brokers, 'trellis-bench-kafkajs').producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  try {
    const send = async (from: number, to: number) => {
      for (let first = from; first < to; first += RELAY_BATCH_RECORDS_MAX) {
        if (Date.now() > deadline) throw new Error('the publish bench ran out of time (kafkajs alone)');
        await producer.sendBatch({ acks: -1, topicMessages: [{ topic, messages: messages.slice(first, Math.min(to, first + RELAY_BATCH_RECORDS_MAX)) }] });
      }
    };
    await send(0, WARMUP_EVENTS);
    const startedAt = performance.now();
    await send(WARMUP_EVENTS, messages.length);
    return (performance.now() - startedAt) / 1000;
  } finally {
    await producer.disconnect();
  }
}

async function until(check: () => boolean, deadline: number): Promise<void> {
  while (!check()) {
    if (Date.now() > deadline) throw new Error('the publish bench ran out of time (outbox relay)');
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}
