import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { chainEvent, type ChainPosition } from '../crypto/index.js';
import { EventKind, type Event } from '../proto/gen/trellis/v1/event.js';
import { skipWithout } from '../test/support/engines.js';
import { openPglite, SqlEventStore, type PgliteOptions, type SqlDriver } from './index.js';

const REPO = dirname(dirname(fileURLToPath(import.meta.url)));
const DURABILITIES = ['fsync', 'os'] as const;

/** A chat of `count` events from one origin: chat-created (a transaction in the store), then messages (one statement each). */
function chain(count: number, head?: ChainPosition): Event[] {
  const events: Event[] = [];
  for (let i = 0; i < count; i++) {
    const created = i === 0 && !head;
    events.push(chainEvent('server-a', events.at(-1) ?? head, {
      chatId: 'chat-durable',
      senderUser: 'alice@server-a',
      senderDevice: 'd1',
      kind: created ? EventKind.EVENT_KIND_CHAT_CREATED : EventKind.EVENT_KIND_MESSAGE_POSTED,
      members: created ? ['alice@server-a', 'bob@server-b'] : [],
      body: Buffer.from(`sealed-${i}`),
    }, { ms: 1000 + i, counter: 0 }));
  }
  return events;
}

const dirs: string[] = [];
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all(closers.splice(0).map((close) => close().catch(() => undefined)));
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function freshDir(): string {
  const dir = fs.mkdtempSync(join(tmpdir(), 'trellis-durability-'));
  dirs.push(dir);
  return dir;
}

async function open(options: PgliteOptions) {
  const driver = await openPglite(options);
  closers.push(() => driver.close());
  return { driver, store: new SqlEventStore(driver) };
}

/** Every fs.fsyncSync from now on (PGlite's and ours), by the path of its descriptor (Linux /proc). */
function watchFsyncs(): string[] {
  const paths: string[] = [];
  const fsync = fs.fsyncSync;
  vi.spyOn(fs, 'fsyncSync').mockImplementation((fd) => {
    paths.push(fs.readlinkSync(`/proc/self/fd/${fd}`));
    fsync(fd);
  });
  return paths;
}

const inWal = (paths: string[]) => paths.filter((path) => path.includes('/pg_wal/'));

/** The driver's two ways to commit, as the event store uses them: one statement, or a transaction. */
async function commitBothWays(driver: SqlDriver, n: number): Promise<void> {
  if (n % 2 === 0) await driver.query('insert into probe values ($1)', [n]);
  else await driver.transaction(async (tx) => void (await tx.query('insert into probe values ($1)', [n])));
}

describe('embedded durability', () => {
  it('fsyncs at open what PGlite unpacked, the WAL before each commit returns, the data files at a checkpoint (fsync)', async () => {
    const dir = freshDir();
    const fsyncs = watchFsyncs();
    const { driver } = await open({ dataDir: dir, durability: 'fsync' });
    expect(fsyncs).toContain(join(dir, 'PG_VERSION'));
    expect(fsyncs).toContain(dir);
    await driver.query('create table probe (n int)');
    for (let n = 0; n < 6; n++) {
      const before = inWal(fsyncs).length;
      await commitBothWays(driver, n);
      expect(inWal(fsyncs).length - before, `WAL fsyncs of commit ${n}`).toBeGreaterThanOrEqual(1);
    }
    // The WAL alone is not enough: a checkpoint lets PostgreSQL recycle the WAL, so the data files it covers must be on disk first.
    fsyncs.length = 0;
    await driver.query('checkpoint');
    expect(fsyncs.filter((path) => path.startsWith(join(dir, 'base', ''))).length).toBeGreaterThan(0);
    expect(fsyncs).toContain(join(dir, 'global', 'pg_control'));
  });

  it.each([
    ['a data directory with durability os', { durability: 'os' }],
    ['memory', {}],
  ] as const)('never fsyncs for %s', async (_, options: PgliteOptions) => {
    const fsyncs = watchFsyncs();
    const { driver } = await open(options.durability ? { ...options, dataDir: freshDir() } : options);
    await driver.query('create table probe (n int)');
    for (let n = 0; n < 4; n++) await commitBothWays(driver, n);
    await driver.query('checkpoint');
    await driver.close();
    expect(fsyncs).toEqual([]);
  });

  it.each(DURABILITIES)('does not write a new WAL segment full of zeros before using it (durability %s)', async (durability) => {
    const dataDir = freshDir();
    const { driver } = await open({ dataDir, durability });
    await driver.query('create table probe (n int)');
    // Past the first 16 MiB segment in one statement: the engine moves into new ones.
    await driver.query('insert into probe select generate_series(1, 400000)');
    const segments = fs.readdirSync(join(dataDir, 'pg_wal')).filter((name) => /^[0-9A-F]{24}$/.test(name)).sort();
    expect(segments.length).toBeGreaterThan(1);
    const newest = fs.statSync(join(dataDir, 'pg_wal', segments.at(-1)!));
    expect(newest.size).toBe(16 * 1024 ** 2);
    // Zero-filled, every block of it would be allocated; only what the WAL reached is.
    expect(newest.blocks * 512).toBeLessThan(newest.size / 2);
  });

  it.each(DURABILITIES)('keeps a commit across a reopen with durability %s', async (durability) => {
    const dataDir = freshDir();
    const events = chain(3);
    const first = await open({ dataDir, durability });
    await first.store.append({ events: events.slice(0, 1) });
    await first.store.append({ events: events.slice(1) });
    await first.driver.close();
    const { store, driver } = await open({ dataDir, durability });
    expect(await store.countEvents()).toBe(3);
    expect((await store.head('chat-durable', 'server-a'))?.seq).toBe(3);
    expect(driver.description).toBe(`embedded PGlite at ${dataDir} (durability ${durability})`);
  });
});

/** Why strace cannot watch a child here, or undefined when it can. */
function straceUnavailable(): string | undefined {
  const probe = spawnSync('strace', ['-o', '/dev/null', 'true']);
  if (probe.error) return `strace is not installed (${probe.error.message})`;
  return probe.status === 0 ? undefined : `strace cannot trace here: ${probe.stderr.toString().trim()}`;
}

/** A child node that opens a store in `dir` and commits `commits` rows, between two marker fsyncs. */
const CHILD = `
import fs from 'node:fs';
import { openPglite } from ${JSON.stringify(join(REPO, 'store', 'pglite.ts'))};
const [dir, durability, commits] = process.argv.slice(-3);
const marker = (name) => { const fd = fs.openSync(dir + '.' + name, 'w'); fs.fsyncSync(fd); fs.closeSync(fd); };
const db = await openPglite({ dataDir: dir, durability });
await db.query('create table probe (n int)');
marker('begin');
for (let n = 0; n < Number(commits); n++) await db.query('insert into probe values ($1)', [n]);
marker('end');
await db.close();
`;

/** The fsync(2)/fdatasync(2) calls on the data directory's WAL that `commits` commits of a child made, as strace saw them. */
function tracedWalSyncs(durability: 'fsync' | 'os', commits: number): string[] {
  const dir = join(freshDir(), 'data');
  const script = `${dir}-child.mts`;
  const trace = `${dir}.strace`;
  fs.writeFileSync(script, CHILD);
  const viteNode = join(REPO, 'node_modules', 'vite-node', 'vite-node.mjs');
  execFileSync('strace', ['-f', '-qq', '-y', '-e', 'trace=fsync,fdatasync', '-o', trace, process.execPath, viteNode, script, '--', dir, durability, String(commits)], {
    cwd: REPO,
    stdio: 'pipe',
  });
  const lines = fs.readFileSync(trace, 'utf8').split('\n');
  const between = lines.slice(lines.findIndex((line) => line.includes('.begin>')), lines.findIndex((line) => line.includes('.end>')));
  expect(between.length, 'the begin marker precedes the end marker').toBeGreaterThan(0);
  return between.filter((line) => line.includes(`${dir}/pg_wal/`));
}

describe.skipIf(await skipWithout('strace', straceUnavailable()))('embedded durability, as the kernel sees it (strace)', () => {
  it('fsync(2)s the WAL for every commit with durability fsync, never with os', () => {
    const commits = 20;
    const synced = tracedWalSyncs('fsync', commits);
    expect(synced.length).toBeGreaterThanOrEqual(commits);
    for (const line of synced) expect(line).toMatch(/ fsync\(\d+<[^>]*\/pg_wal\/[^>]*>\)\s+= 0$/);
    expect(tracedWalSyncs('os', commits)).toEqual([]);
  });
});
