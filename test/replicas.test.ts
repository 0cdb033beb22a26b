import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cryptoReady, generateIdentityPem } from '../crypto/index.js';
import { openRedis, readReplicaState } from '../gateways/redis/index.js';
import { createLogger, parseConfig, TrellisNode, type NodeConfig } from '../router/index.js';
import { openStore, type EventStore } from '../store/index.js';
import { createdDraft, newChat, type TestChat } from './support/devices.js';
import { freshDatabase, postgresUnavailable, REDIS_TEST_URL, redisUnavailable, skipWithout, withClient } from './support/engines.js';
import { FAST_LINK, freePort, LogCapture, postMessages, waitFor } from './support/federation.js';
import { Replica } from '../bench/replica-process.js';

const skip = await skipWithout('PostgreSQL and Redis', (await postgresUnavailable()) ?? (await redisUnavailable()));
/** Short leases, so a takeover is quick; the property under test does not depend on the length. */
const LEASE_MS = 1_000;

/** Server X run as two replicas on one PostgreSQL database and one Redis, with a trust to partner P (in this process). */
class ReplicatedServer {
  readonly dir = mkdtempSync(join(tmpdir(), 'trellis-replicas-'));
  readonly xId = randomUUID();
  readonly logs = new LogCapture();
  replicas: Replica[] = [];
  partner!: TrellisNode;
  xStore!: EventStore;
  private database!: { url: string; drop(): Promise<void> };

  async start(): Promise<void> {
    await cryptoReady();
    this.database = await freshDatabase();
    const tokens = { xAccepts: randomBytes(24).toString('base64url'), pAccepts: randomBytes(24).toString('base64url') };
    const pId = randomUUID();
    const pPort = await freePort();
    const key = (name: string) => {
      const file = join(this.dir, `${name}.key`);
      writeFileSync(file, generateIdentityPem(), { mode: 0o600 });
      return file;
    };
    // P only accepts: whichever replica of X holds the lease dials it.
    this.partner = await TrellisNode.start(
      parseConfig({
        server: { id: pId, name: 'partner', kind: 'CTS' }, listen: `127.0.0.1:${pPort}`, identity_key_file: key('partner'), store: { memory: true }, link: FAST_LINK,
        trusts: [{ server_id: this.xId, name: 'x', token_for_accepting: tokens.pAccepts, token_for_connecting: tokens.xAccepts }],
      }),
      { logger: createLogger('info', this.logs) },
    );
    const xKey = key('x');
    const xConfig = (n: number) =>
      parseConfig({
        server: { id: this.xId, name: 'x', kind: 'CTS' }, listen: '127.0.0.1:0', identity_key_file: xKey, store: { url: this.database.url }, link: FAST_LINK,
        replicas: { redis_url: REDIS_TEST_URL, lease_ms: LEASE_MS, replica_id: `x-${n}` },
        trusts: [{ server_id: pId, name: 'partner', endpoint: `127.0.0.1:${pPort}`, token_for_accepting: tokens.xAccepts, token_for_connecting: tokens.pAccepts }],
      });
    // From the sources, so a test never runs a stale build.
    this.replicas = [1, 2].map((n) => Replica.start(xConfig(n), join(this.dir, `x-${n}.log`), { source: true }));
    await Promise.all(this.replicas.map((replica) => replica.ready));
    this.xStore = await openStore({ url: this.database.url });
  }

  /** X's database as SQL sees it (transaction ids, which the store's interface does not show). */
  async query<Row>(sql: string, params: unknown[]): Promise<Row[]> {
    return withClient(this.database.url, async (client) => (await client.query(sql, params)).rows as Row[]);
  }

  get pId(): string {
    return this.partner.id;
  }

  /** The replica holding the link to P, once one does. */
  async owner(except?: Replica): Promise<Replica> {
    let found: Replica | undefined;
    await waitFor('a replica holding the link', () => {
      found = this.replicas.find((replica) => replica !== except && replica.links.has(this.pId) && this.partner.link(this.xId) !== undefined);
      return found !== undefined;
    }, 30_000);
    return found!;
  }

  /** P and X hold `count` events of the chat, with equal digests. */
  async converge(chatId: string, count: number): Promise<void> {
    const state = async () => [await this.partner.store.chatSummary(chatId), await this.xStore.chatSummary(chatId)] as const;
    await waitFor(`P and X holding ${count} events of the chat with equal digests`, async () => {
      const [atP, atX] = await state();
      return atP.events === count && atX.events === count && atP.digest.equals(atX.digest);
    }, 120_000, async () => {
      const [atP, atX] = await state();
      return `P holds ${atP.events}, X ${atX.events}; links: ${this.replicas.map((r) => `${r.replicaId} ${[...r.links].length}`).join(', ')}`;
    });
  }

  async newChat(): Promise<TestChat> {
    const chat = newChat([`alice@${this.pId}`, `bob@${this.xId}`]);
    await this.partner.post(createdDraft(chat, `alice@${this.pId}`));
    return chat;
  }

  async stop(): Promise<void> {
    for (const replica of this.replicas) replica.stop();
    await this.partner?.stop().catch(() => undefined);
    await this.xStore?.close().catch(() => undefined);
    await this.database?.drop().catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** X's own chain in a chat: seqs 1..n, each linked to the one before. */
async function expectWholeChain(store: EventStore, chatId: string, origin: string, count: number): Promise<void> {
  const chain = await store.originEvents(chatId, origin, 1, count + 1);
  expect(chain.map((event) => event.seq)).toEqual(Array.from({ length: count }, (_, i) => i + 1));
  for (let i = 1; i < chain.length; i++) expect(chain[i]!.prev.equals(chain[i - 1]!.id)).toBe(true);
}

describe.skipIf(skip)('replicas of one server on PostgreSQL and Redis', () => {
  let server: ReplicatedServer | undefined;
  afterEach(async () => {
    await server?.stop();
    server = undefined;
  });

  it('hands the link to the other replica when its owner is killed mid-stream: nothing lost or doubled', async () => {
    server = new ReplicatedServer();
    await server.start();
    const chat = await server.newChat();
    const owner = await server.owner();
    const other = server.replicas.find((replica) => replica !== owner)!;
    const fromP = postMessages(server.partner, chat, `alice@${server.pId}`, 5_000, 64);
    const fromX = other.post(chat, `bob@${server.xId}`, 2_000);
    await waitFor('P events flowing to X', async () => (await server!.xStore.chatSummary(chat.id)).events > 1_000);
    owner.child.kill('SIGKILL');
    expect(await server.owner(owner)).toBe(other);
    // What the admin view reads: the new holder's presence lists the link, the dead one's lapses.
    const redis = await openRedis(REDIS_TEST_URL);
    try {
      await waitFor('Redis to show the link held by the other replica only', async () => {
        const { replicas, links } = await readReplicaState(redis, server!.xId);
        const holders = replicas.filter((replica) => replica.links.includes(server!.pId)).map((replica) => replica.replica);
        const status = links.find((link) => link.peer === server!.pId);
        return holders.join() === other.replicaId && status?.status === 'up' && status.replica === other.replicaId;
      });
    } finally {
      redis.disconnect();
    }
    await Promise.all([fromP, fromX]);
    await server.converge(chat.id, 1 + 5_000 + 2_000);
    await expectWholeChain(server.partner.store, chat.id, server.xId, 2_000);
  });

  it('fences a replica paused past its lease: once resumed it is refused and writes nothing', async () => {
    server = new ReplicatedServer();
    await server.start();
    const chat = await server.newChat();
    const paused = await server.owner();
    const fromP = postMessages(server.partner, chat, `alice@${server.pId}`, 6_000, 64);
    await waitFor('P events flowing to X', async () => (await server!.xStore.chatSummary(chat.id)).events > 1_000);
    paused.child.kill('SIGSTOP');
    const taker = await server.owner(paused);
    const countAtTakeover = (await server.xStore.chatSummary(chat.id)).events;
    const reportedBeforeResume = paused.appended.length;
    paused.child.kill('SIGCONT');
    await waitFor('the resumed replica to give the link up', () => paused.ends.length > 0 && !paused.links.has(server!.pId), 30_000);
    await fromP;
    await server.converge(chat.id, 1 + 6_000);
    expect(countAtTakeover).toBeLessThan(1 + 6_000);
    // Resumed, it wrote nothing: what it reports appending after the resume was committed before the
    // takeover (a statement already at PostgreSQL when it was paused), by transaction ids: every row it
    // wrote is older than the new holder's fence. Anything later was refused by the fence ('fenced'),
    // or it saw its lease gone first (store/event-store.test.ts pins the fence itself).
    const lateSeqs = paused.appended.slice(reportedBeforeResume);
    const [late] = await server.query<{ newest: string }>('select coalesce(max(xmin::text::bigint), 0)::bigint as newest from events where local_seq = any($1::bigint[])', [lateSeqs]);
    const [fence] = await server.query<{ raised: string }>('select xmin::text::bigint as raised from link_leases where peer_id = $1', [server.pId]);
    expect(Number(late!.newest)).toBeLessThan(Number(fence!.raised));
    expect(paused.log()).toMatch(/taken over: nothing written|lease on the link lapsed/);
    expect(taker.links.has(server.pId)).toBe(true);
  });

  it('sends what two replicas post at once into shared chats to the partner exactly once: 20,000 events', async () => {
    server = new ReplicatedServer();
    await server.start();
    const chats = [await server.newChat(), await server.newChat()];
    await server.owner();
    const sender = `bob@${server.xId}`;
    await Promise.all(server.replicas.flatMap((replica) => chats.map((chat) => replica.post(chat, sender, 5_000))));
    for (const chat of chats) {
      await server.converge(chat.id, 1 + 10_000);
      await expectWholeChain(server.partner.store, chat.id, server.xId, 10_000);
    }
  }, 300_000); // past the test's own waits, so a stall fails on their counts, not on vitest's bare timeout
});
