import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { cryptoReady, generateIdentityPem } from '../../crypto/index.js';
import { createLogger, parseConfig, TrellisNode } from '../../router/index.js';
import { openStore } from '../../store/index.js';
import { skipWithout } from '../../test/support/engines.js';
import { FAST_LINK, freePort, postMessages, waitFor } from '../../test/support/federation.js';
import { createdDraft, newChat } from '../devices/index.js';
import type { Delivered } from '../projections/index.js';
import { KafkaFeed } from './kafka-feed.js';
import { deleteTestTopics, kafkaUnavailable, quietKafka, testKafkaSettings, TEST_KAFKA_BROKERS, topicOffsets, topicRecords, waitForTopic } from './testing.js';

const CHATS = 10;
const EVENTS_PER_CHAT = 5_000;
const TOTAL = CHATS * (EVENTS_PER_CHAT + 1);
/** Posted (per chat) while A runs without Kafka: at its Kafka start they wait in its log, published flat out; the rest after the kill. */
const BACKLOG_PER_CHAT = 4_000;
/** A is killed once its topic holds this many records: in the middle of publishing the backlog. */
const KILL_AFTER_RECORDS = 4_000;
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const log = createLogger('silent');

/** `trellis start --config FILE` in a process of its own, as an operator runs it (sources through tsx). */
function startCli(configFile: string, output: string[], kafkaBrokers: string): ChildProcess {
  const cli = JSON.stringify(join(ROOT, 'gateways/cli/index.ts'));
  const script = `import(${cli}).then((cli) => cli.runCli(['start', '--config', ${JSON.stringify(configFile)}])).then((code) => process.exit(code), (error) => { console.error(error); process.exit(1); })`;
  const child = spawn(process.execPath, ['--import', 'tsx', '-e', script], { cwd: ROOT, env: { ...process.env, KAFKA_BROKERS: kafkaBrokers }, stdio: ['ignore', 'pipe', 'pipe'] });
  const keep = (chunk: Buffer) => {
    output.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    output.splice(0, Math.max(0, output.length - 200));
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return child;
}

const exited = (child: ChildProcess) => new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));

const skip = await skipWithout('Kafka', await kafkaUnavailable());

describe.skipIf(skip)('Kafka: a node killed in the middle of publishing', () => {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-kafka-crash-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('publishes 50,000 events exactly once after de-duplication, in order per chat, across a SIGKILL and a restart', async () => {
    await cryptoReady();
    const settings = testKafkaSettings('crash');
    const [aPort, bPort] = [await freePort(), await freePort()];
    const [aId, bId] = [randomUUID(), randomUUID()];
    const tokens = { aAccepts: randomBytes(24).toString('base64url'), bAccepts: randomBytes(24).toString('base64url') };
    for (const name of ['a', 'b']) writeFileSync(join(dir, `${name}.key`), generateIdentityPem(), { mode: 0o600 });
    mkdirSync(join(dir, 'a-data'));
    const aConfig = join(dir, 'a.yaml');
    const aWithoutKafka = join(dir, 'a-without-kafka.yaml');
    // JSON is YAML. A only accepts: every link is B's dial, so B redials A's new process by itself.
    const aDocument = {
      server: { id: aId, name: 'cts-a', kind: 'CTS' },
      listen: `127.0.0.1:${aPort}`,
      identity_key_file: 'a.key',
      store: { data_dir: 'a-data', durability: 'os' },
      log_level: 'warn',
      link: FAST_LINK,
      trusts: [{ server_id: bId, name: 'cts-b', token_for_accepting: tokens.aAccepts, token_for_connecting: tokens.bAccepts }],
    };
    writeFileSync(aWithoutKafka, JSON.stringify(aDocument));
    writeFileSync(aConfig, JSON.stringify({ ...aDocument, kafka: { brokers: TEST_KAFKA_BROKERS, topic_prefix: settings.topicPrefix } }));
    const b = await TrellisNode.start(
      parseConfig({
        server: { id: bId, name: 'cts-b', kind: 'CTS' },
        listen: `127.0.0.1:${bPort}`,
        identity_key_file: join(dir, 'b.key'),
        store: { memory: true },
        link: FAST_LINK,
        trusts: [{ server_id: aId, name: 'cts-a', endpoint: `127.0.0.1:${aPort}`, token_for_accepting: tokens.bAccepts, token_for_connecting: tokens.aAccepts }],
      }),
      { logger: log },
    );
    const output: string[] = [];
    const brokers = TEST_KAFKA_BROKERS.join(',');
    // First without Kafka (an empty KAFKA_BROKERS does not take the config's place): a backlog builds in A's log.
    let a = startCli(aWithoutKafka, output, '');
    const feed = new KafkaFeed(settings, log);
    const delivered: Array<Delivered<'chat-events'>> = [];
    let subscription: Awaited<ReturnType<KafkaFeed['subscribe']>> | undefined;
    const explain = async () => `consumer holds ${delivered.length}/${TOTAL}; A's process ${a.exitCode ?? a.signalCode ?? 'running'}; last output:\n${output.slice(-15).join('\n')}`;
    try {
      await waitFor('A up and linked', () => b.link(aId) !== undefined, 60_000, explain);
      const chats = Array.from({ length: CHATS }, () => newChat([`alice@${aId}`, `bob@${bId}`]));
      for (const chat of chats) await b.post(createdDraft(chat, `bob@${bId}`));
      await Promise.all(chats.map((chat) => postMessages(b, chat, `bob@${bId}`, BACKLOG_PER_CHAT, 128)));
      const backlog = CHATS * (BACKLOG_PER_CHAT + 1);
      // Acknowledged by A: committed to its log.
      await waitFor(`the backlog of ${backlog} stored by A`, async () => (await b.inspect.queueOf(aId)).depth === 0, 120_000, async () => `${JSON.stringify(await b.inspect.queueOf(aId))}; ${await explain()}`);
      a.kill('SIGTERM');
      await exited(a);

      // Watched at the broker, so the kill lands while A publishes its backlog, not after.
      const admin = quietKafka(settings.brokers).admin();
      await admin.connect();
      const published = async () => (await topicOffsets(admin, settings.topics['chat-events'])).reduce((sum, p) => sum + Number(p.high), 0);
      a = startCli(aConfig, output, brokers);
      await waitForTopic(settings.brokers, settings.topics['chat-events']);
      const firstSeen = await published();
      await waitFor(`${KILL_AFTER_RECORDS} records published`, async () => (await published()) >= KILL_AFTER_RECORDS, 120_000, explain);
      a.kill('SIGKILL');
      const publishedAtKill = await published();
      await admin.disconnect();
      await exited(a);
      expect(a.signalCode).toBe('SIGKILL');
      // The rest goes through the restarted A (B holds it while A is down): posting here, in this
      // process, earlier would have kept the watcher above from seeing the backlog's progress in time.
      const posting = Promise.all(chats.map((chat) => postMessages(b, chat, `bob@${bId}`, EVENTS_PER_CHAT - BACKLOG_PER_CHAT, 128)));
      subscription = await feed.subscribe({ projection: 'chat-events', group: `crash-${randomUUID()}`, onRecords: async (records) => void delivered.push(...records) });
      a = startCli(aConfig, output, brokers);

      await posting;
      await waitFor(`all ${TOTAL} events delivered`, () => delivered.length >= TOTAL, 180_000, explain);
      // Anything still coming would be a copy the consumer failed to drop: give it a moment to show.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(delivered).toHaveLength(TOTAL);

      // In order per chat, none missing, none twice: chain seqs 1..n as B made them.
      const perChat = new Map<string, number[]>();
      for (const { key, record } of delivered) {
        expect(key).toBe(record.event!.chatId);
        expect(record.event!.origin).toBe(bId);
        perChat.set(key, [...(perChat.get(key) ?? []), record.event!.seq]);
      }
      const oneToN = Array.from({ length: EVENTS_PER_CHAT + 1 }, (_, i) => i + 1);
      for (const chat of chats) expect(perChat.get(chat.id)).toEqual(oneToN);
      for (const chat of chats) {
        const made = (await b.store.chatLog(chat.id)).map((event) => event.id.toString('hex'));
        const got = delivered.filter(({ key }) => key === chat.id).map(({ record }) => Buffer.from(record.event!.id).toString('hex'));
        expect(got).toEqual(made);
      }

      a.kill('SIGTERM');
      await exited(a);
      expect(a.exitCode, output.slice(-10).join('\n')).toBe(0);
      // What A's log holds is what was published: the same events.
      const aStore = await openStore({ dataDir: join(dir, 'a-data') });
      try {
        expect(await aStore.countEvents()).toBe(TOTAL);
        expect(await aStore.projectionCursor(`kafka:${settings.topicPrefix}:chat-events`)).toBe(await aStore.lastLocalSeq());
      } finally {
        await aStore.close();
      }
      const raw = await topicRecords(settings.brokers, settings.topics['chat-events']);
      console.info(`crash test: ${firstSeen} records published when the topic was first seen, ${publishedAtKill} at the SIGKILL; the topic holds ${raw} records for ${TOTAL} events (${raw - TOTAL} copies republished after the restart)`);
      expect(raw).toBeGreaterThanOrEqual(TOTAL);
    } finally {
      if (a.exitCode === null && a.signalCode === null) a.kill('SIGKILL');
      await subscription?.close().catch(() => undefined);
      await b.stop();
      await deleteTestTopics(settings);
    }
  }, 420_000);
});
