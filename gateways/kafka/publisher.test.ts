import { connect, type Socket } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel, type ISocketFactory } from 'kafkajs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { cryptoReady, generateIdentityPem } from '../../crypto/index.js';
import { createLogger } from '../../router/index.js';
import { skipWithout } from '../../test/support/engines.js';
import { freePort, LogCapture, postMessages, waitFor } from '../../test/support/federation.js';
import { runCli } from '../cli/index.js';
import { EXIT_CONFIG, EXIT_UNAVAILABLE } from '../cli/exit-codes.js';
import { createdDraft, newChat } from '../devices/index.js';
import type { Delivered } from '../projections/index.js';
import { soloNode, type SoloNode } from '../projections/testing.js';
import { pinoLogCreator } from './client.js';
import { KafkaFeed } from './kafka-feed.js';
import { startKafkaPublisher, type KafkaPublisher } from './publisher.js';
import { deleteTestTopics, kafkaUnavailable, testKafkaSettings } from './testing.js';

/** Runs `trellis start` in this process with KAFKA_BROKERS set, and what it printed. */
async function startWithBrokers(configFile: string, brokers: string): Promise<{ code: number; err: string[] }> {
  const before = process.env.KAFKA_BROKERS;
  process.env.KAFKA_BROKERS = brokers;
  const err: string[] = [];
  try {
    const code = await runCli(['start', '--config', configFile], { out: () => undefined, err: (line) => err.push(line) });
    return { code, err };
  } finally {
    if (before === undefined) delete process.env.KAFKA_BROKERS;
    else process.env.KAFKA_BROKERS = before;
  }
}

describe('trellis start with Kafka configured', () => {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-kafka-start-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function writeConfig(): Promise<string> {
    await cryptoReady();
    writeFileSync(join(dir, 'node.key'), generateIdentityPem(), { mode: 0o600 });
    const file = join(dir, 'node.yaml');
    writeFileSync(file, `server: { id: ${randomUUID()}, name: cts-k, kind: CTS }\nlisten: 127.0.0.1:${await freePort()}\nidentity_key_file: node.key\nstore: { memory: true }\nlog_level: silent\n`);
    return file;
  }

  it('names a broker that does not answer in one line and exits 69, without a stack', async () => {
    const port = await freePort();
    const { code, err } = await startWithBrokers(await writeConfig(), `127.0.0.1:${port}`);
    expect(code).toBe(EXIT_UNAVAILABLE);
    expect(err).toHaveLength(1);
    expect(err[0]).toMatch(new RegExp(`^trellis: Kafka at 127\\.0\\.0\\.1:${port}: no broker answered \\(.*ECONNREFUSED.*\\); check kafka\\.brokers or KAFKA_BROKERS`));
    expect(err[0]).not.toMatch(/\n\s+at /);
  });

  it('refuses a KAFKA_BROKERS that is not host:port as a configuration error naming it', async () => {
    const { code, err } = await startWithBrokers(await writeConfig(), '127.0.0.1:9092,kafka-without-port');
    expect(code).toBe(EXIT_CONFIG);
    expect(err.join('\n')).toContain('KAFKA_BROKERS: "kafka-without-port" must be host:port');
  });
});

/** kafkajs's sockets, which the test can cut (as if the broker went away) and let through again. */
class Cuttable {
  private readonly sockets = new Set<Socket>();
  private down = false;
  constructor(private readonly closedPort: number) {}

  readonly factory: ISocketFactory = ({ host, port, onConnect }) => {
    const socket = this.down ? connect({ host: '127.0.0.1', port: this.closedPort }) : connect({ host, port }, onConnect);
    socket.setKeepAlive(true, 60_000);
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    return socket;
  };

  /** As a broker that dies: every connection reset, new ones refused. */
  cut(): void {
    this.down = true;
    for (const socket of this.sockets) socket.destroy(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }));
  }

  restore(): void {
    this.down = false;
  }
}

const skip = await skipWithout('Kafka', await kafkaUnavailable());

describe.skipIf(skip)('the Kafka publisher', () => {
  let solo: SoloNode | undefined;
  let publisher: KafkaPublisher | undefined;
  let settings = testKafkaSettings('outage');
  afterEach(async () => {
    await publisher?.stop();
    await solo?.cleanUp();
    await deleteTestTopics(settings);
    solo = publisher = undefined;
  });

  it('keeps the node serving through a broker outage, says so once, and then publishes everything once, in order', async () => {
    settings = testKafkaSettings('outage');
    const logs = new LogCapture();
    const log = createLogger('info', logs);
    solo = await soloNode({ logger: createLogger('silent') });
    const { node } = solo;
    const sockets = new Cuttable(await freePort());
    const client = new Kafka({ clientId: 'outage', brokers: settings.brokers, socketFactory: sockets.factory, requestTimeout: 5_000, logLevel: logLevel.WARN, logCreator: pinoLogCreator(log) });
    publisher = await startKafkaPublisher(node, settings, log, { client });
    const delivered: Array<Delivered<'chat-events'>> = [];
    const subscription = await new KafkaFeed(settings, createLogger('silent')).subscribe({ projection: 'chat-events', group: `outage-${randomUUID()}`, onRecords: async (records) => void delivered.push(...records) });
    try {
      const chat = newChat([`alice@${node.id}`]);
      await node.post(createdDraft(chat, `alice@${node.id}`));
      await postMessages(node, chat, `alice@${node.id}`, 199);
      await waitFor('200 published', () => delivered.length >= 200, 60_000);

      sockets.cut();
      // The node goes on storing what its devices post while nothing reaches Kafka.
      await postMessages(node, chat, `alice@${node.id}`, 300);
      expect(await node.store.countEvents()).toBe(500);
      const warned = () => logs.lines.filter((line) => /publishing to the bus (failed|is waiting for its broker); retrying/.test(line));
      await waitFor('a warning that publishing fails', () => warned().length > 0, 60_000, async () => logs.lines.slice(-20).join('\n'));
      expect(delivered.length).toBeLessThan(500);
      sockets.restore();
      await waitFor('all 500 published', () => delivered.length >= 500, 90_000);
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(delivered.map(({ record }) => record.event!.seq)).toEqual(Array.from({ length: 500 }, (_, i) => i + 1));
      expect(warned().length).toBeLessThanOrEqual(2);
      expect(logs.lines.some((line) => line.includes('publishing again'))).toBe(true);
      // No record's bytes reach a log line.
      const body = (await node.store.eventsAfter(0, 1))[0]!.body;
      for (const encoded of [body.toString('base64'), body.toString('hex')]) expect(logs.text).not.toContain(encoded.slice(0, 24));
    } finally {
      await subscription.close();
    }
  });
});
