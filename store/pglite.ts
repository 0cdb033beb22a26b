import fs from 'node:fs';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { NodeFS } from '@electric-sql/pglite/nodefs';
import pg from 'pg';
import { drizzle } from 'drizzle-orm/pglite';
import { migrate } from 'drizzle-orm/pglite/migrator';
import { migrationsFolder, type SqlDriver } from './driver.js';
import { PgliteSocket } from './pglite-socket.js';
import { poolDriver, rowTypes } from './pool-driver.js';
import { StoreError } from './errors.js';

export interface PgliteOptions {
  /** A directory keeps the log across restarts; absent means in memory. */
  dataDir?: string;
  /**
   * fsync: a commit is on disk (fsynced) before it is acknowledged, so it survives a power
   * loss; os: written to the operating system only, so it survives a crash of the process.
   */
  durability?: 'fsync' | 'os';
}

/*
 * Durability 'fsync', and why this way. PGlite starts PostgreSQL with -F (fsync off), and its
 * file layer (emscripten NODEFS over the data directory) drops syncs: fdatasync(2) is a stub
 * and fsync(2) calls a stream operation NODEFS lacks. We add that operation (fs.fsyncSync on
 * the real descriptor), drop -F and set wal_sync_method=fsync. Then PostgreSQL's own protocol
 * reaches the disk, so we track no files ourselves: the WAL is fsynced before a commit returns,
 * a new WAL segment and its directory when made, and a checkpoint fsyncs the data files and
 * pg_control before it lets the WAL covering them be recycled. What PostgreSQL did not write
 * with fsync on (the initdb copy PGlite unpacks, an earlier run with 'os') is fsynced at open.
 */

/** The part of emscripten's NODEFS we extend. */
interface NodeFsInternals {
  stream_ops: { fsync?: (stream: { nfd: number }) => number };
  tryFSOperation<T>(operation: () => T): T;
}

type EmscriptenOptions = Parameters<NodeFS['init']>[1];

/** NodeFS whose fsync(2) reaches the disk. */
class FsyncingNodeFS extends NodeFS {
  fsyncInstalled = false;

  override async init(pg: PGlite, opts: EmscriptenOptions): Promise<{ emscriptenOpts: EmscriptenOptions }> {
    const { emscriptenOpts } = await super.init(pg, opts);
    const preRun = [...(emscriptenOpts.preRun ?? []), (mod: { NODEFS: unknown }) => this.installFsync(mod.NODEFS as NodeFsInternals)];
    return { emscriptenOpts: { ...emscriptenOpts, preRun } };
  }

  private installFsync(nodefs: NodeFsInternals): void {
    // A failed fsync comes back to PostgreSQL as its errno: it then fails the commit (PANIC), never acknowledges it.
    nodefs.stream_ops.fsync = (stream) => {
      nodefs.tryFSOperation(() => fs.fsyncSync(stream.nfd));
      return 0;
    };
    this.fsyncInstalled = true;
  }
}

/**
 * A new WAL segment (every 16 MiB of WAL) is not filled with zeros first. PostgreSQL would
 * write all 16 MiB and fsync them inside the commit that crossed into it, a stall of tens of
 * ms on the node's thread; ext4 allocates the blocks as the WAL reaches them instead, and an
 * fsync (wal_sync_method=fsync, never fdatasync) carries that allocation to disk too.
 */
const WAL_PARAMS = ['-c', 'wal_init_zero=off'];

/** PGlite's start parameters with fsync on, and a WAL sync method NODEFS does not skip. */
function fsyncStartParams(): string[] {
  return [...PGlite.defaultStartParams.filter((param) => param !== '-F'), '-c', 'wal_sync_method=fsync', ...WAL_PARAMS];
}

function fsyncPath(path: string): void {
  const fd = fs.openSync(path, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Every file and directory under `dir`, contents before the directory naming them. */
function fsyncTree(dir: string): void {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) fsyncTree(path);
    else if (entry.isFile()) fsyncPath(path);
  }
  fsyncPath(dir);
}

async function openDurable(dataDir: string): Promise<PGlite> {
  const files = new FsyncingNodeFS(dataDir);
  const db = await PGlite.create({ fs: files, startParams: fsyncStartParams() });
  try {
    if (!files.fsyncInstalled) throw new Error('this PGlite build did not run the filesystem hook that adds fsync');
    fsyncTree(dataDir);
    return db;
  } catch (cause) {
    await db.close();
    throw cause;
  }
}

async function create(options: PgliteOptions): Promise<PGlite> {
  try {
    if (!options.dataDir) return await PGlite.create();
    if (options.durability === 'os') return await PGlite.create({ dataDir: options.dataDir, startParams: [...PGlite.defaultStartParams, ...WAL_PARAMS] });
    return await openDurable(options.dataDir);
  } catch (cause) {
    throw new StoreError('open-failed', `cannot open the embedded store at ${options.dataDir ?? 'memory'}`, { cause });
  }
}

/**
 * The embedded engine: PostgreSQL compiled to WebAssembly, in this process, driven through
 * node-postgres like PostgreSQL is (store/pool-driver.ts), over a socket into the engine.
 */
export async function openPglite(options: PgliteOptions = {}): Promise<SqlDriver> {
  const db = await create(options);
  try {
    await migrate(drizzle(db), { migrationsFolder: migrationsFolder() });
  } catch (cause) {
    await db.close();
    throw new StoreError('migration-failed', 'applying the store migrations failed', { cause });
  }
  // One connection: PGlite is one backend, and the pool's queue keeps a transaction's statements together.
  // Never closed for being idle: a new client starts a clean session (pglite-socket.ts) and prepares every statement again.
  const pool = new pg.Pool({ stream: () => new PgliteSocket(db), max: 1, idleTimeoutMillis: 0, types: rowTypes });
  const where = options.dataDir ? `${options.dataDir} (durability ${options.durability ?? 'fsync'})` : 'memory';
  return poolDriver(pool, `embedded PGlite at ${where}`, async () => {
    await pool.end();
    await db.close();
  });
}
