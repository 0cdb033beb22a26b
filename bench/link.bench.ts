/**
 * `npm run bench`: trust links between servers on durable PGlite stores, each in its own
 * process. Measures the machine's bounds (Ed25519 verify, PGlite append and read-back),
 * then one hop's throughput and end-to-end latency for 256 B and 4 KiB bodies, flat out
 * and at a paced 1,000 events/s; the same at 256 B over three hops (through an ETS and an
 * RTS), on PGlite and on PostgreSQL; a destination catching up on 100,000 stored events;
 * each server's memory; an RTS holding 1,000 idle trust links; publishing to Kafka through
 * the outbox. Prints one table and writes bench/results/link.json. Every run stops by
 * itself within BENCH_TIME_LIMIT_MS.
 *
 * One hop is also run paced with every store at store.durability: os, beside the others
 * as a bound: what the latency is with no fsync on the path at all; and the paced chains
 * are run with the engine alone (bench/relay.ts): the latency the stores leave a router.
 *
 * BENCH_ONLY=one-hop,three-hops (any of SECTIONS) runs the machine bounds and those sections
 * only, and writes bench/results/link-only.json instead: one case again, to compare two builds.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cryptoReady } from '../crypto/index.js';
import { measureAppendsTogether, measureStore, measureVerifyPerS, type StoreBounds } from './bounds.js';
import { measureFsync } from './disk.js';
import { measureStoreRelay, type StoreRelayBound } from './relay.js';
import { measureTransitChecksUs } from './transit-checks.js';
import { startChain, type Hops, type LinkedChain } from './chain.js';
import { pgliteBench, pgliteOsBench, postgresBench, postgresBenchUnavailable, type BenchEngine } from './engines.js';
import { measureIdleLinks } from './idle-links.js';
import { measureFailover, type FailoverResult } from './failover.js';
import { measurePublish } from './publish.js';
import { PeerArrivals, runCase, runCatchUp, type CaseResult, type CaseSpec, type CatchUpResult } from './link-case.js';
import { WakeCanary } from './wake-canary.js';
import { makeReport, printReport, TARGET_CATCH_UP, TARGET_IDLE_LINKS, TARGET_PACED_PER_S, writeReport, type MachineBounds, type MemoryResult } from './report.js';

const BODY_BYTES = [256, 4096] as const;
/** Events of a flat-out run, by body size: enough for steady state, few enough for the time budget. */
const THROUGHPUT_EVENTS: Record<(typeof BODY_BYTES)[number], number> = { 256: 20_000, 4096: 5_000 };
/** Posts in flight at the origin in a flat-out run: several group commits' worth. */
const THROUGHPUT_IN_FLIGHT = 256;
const PACED_DURATION_MS = 5_000;
const PACED_EVENTS = (TARGET_PACED_PER_S * PACED_DURATION_MS) / 1000;
/**
 * The paced chains with the engine alone (bench/relay.ts): one hop's two stores, three
 * hops' four, and those four with transits that cut through; then the same chains on a
 * one-column table (the engine's floor, no schema of ours) and four with no store at all.
 */
const STORE_RELAY_SHAPES = [
  { stages: 2, cutThrough: false, appendsTo: 'event-store' },
  { stages: 4, cutThrough: false, appendsTo: 'event-store' },
  { stages: 4, cutThrough: true, appendsTo: 'event-store' },
  { stages: 2, cutThrough: false, appendsTo: 'one-column' },
  { stages: 4, cutThrough: false, appendsTo: 'one-column' },
  { stages: 4, cutThrough: false, appendsTo: 'nothing' },
] as const;
/** A paced run never holds more posts than this; if it would, the offered load falls and the table shows it. */
const PACED_IN_FLIGHT_MAX = 4_096;
/** A short unreported run first, so the JIT and both stores' caches are warm for the first figure. */
const WARMUP_EVENTS = 2_000;
const CASE_TIME_LIMIT_MS = 60_000;
/** The whole bench: past this it kills the servers, removes their files and exits non-zero. */
const BENCH_TIME_LIMIT_MS = 900_000;
const RESULTS_FILE = fileURLToPath(new URL('../../bench/results/link.json', import.meta.url));
const PARTIAL_RESULTS_FILE = fileURLToPath(new URL('../../bench/results/link-only.json', import.meta.url));

/** The parts of the bench beyond the machine bounds (which every run measures: each row's bound is read from them). */
const SECTIONS = ['one-hop', 'one-hop-os', 'one-hop-postgres', 'three-hops', 'three-hops-postgres', 'idle-links', 'kafka', 'failover'] as const;
type Section = (typeof SECTIONS)[number];

/** The sections BENCH_ONLY names (all without it); an unknown name is refused with the list. */
function chosenSections(only: string | undefined): ReadonlySet<Section> {
  if (only === undefined || only.trim() === '') return new Set(SECTIONS);
  const names = only.split(',').map((name) => name.trim()).filter(Boolean);
  const unknown = names.filter((name) => !(SECTIONS as readonly string[]).includes(name));
  if (unknown.length > 0) throw new Error(`BENCH_ONLY: unknown section ${unknown.join(', ')} (sections: ${SECTIONS.join(', ')})`);
  return new Set(names as Section[]);
}

function caseSpecs(hops: Hops, engine: BenchEngine): CaseSpec[] {
  const bodies = hops === 1 && !engine.durability ? BODY_BYTES : ([256] as const);
  // PostgreSQL: the 256 B pace only (its p99 target), and both throughputs.
  const pacedBodies = engine.name === 'PostgreSQL' ? ([256] as const) : bodies;
  // Without fsync: the paced run only, the latency it stands beside.
  const throughputBodies = engine.durability ? [] : bodies;
  const throughput = throughputBodies.map((bodyBytes) => ({
    name: `throughput, ${bodyBytes} B`, bodyBytes, events: THROUGHPUT_EVENTS[bodyBytes], inFlightMax: THROUGHPUT_IN_FLIGHT, timeLimitMs: CASE_TIME_LIMIT_MS,
  }));
  const paced = pacedBodies.map((bodyBytes) => ({
    name: `paced ${TARGET_PACED_PER_S}/s, ${bodyBytes} B`, bodyBytes, events: PACED_EVENTS,
    inFlightMax: PACED_IN_FLIGHT_MAX, ratePerS: TARGET_PACED_PER_S, timeLimitMs: CASE_TIME_LIMIT_MS,
  }));
  return [...throughput, ...paced];
}

/**
 * Ed25519 verify; the disk's paced fsync in the stores' directory; the embedded stores
 * relaying at the paced rate; each engine's append, read-back and one-event commit, on a
 * store of its own made as a server's would be.
 */
async function measureBounds(dir: string, engines: readonly BenchEngine[]): Promise<MachineBounds> {
  console.log(`machine bounds: Ed25519 verify; the disk's paced fsync; PGlite stores relaying at ${TARGET_PACED_PER_S}/s; ${engines.map((engine) => engine.name).join(' and ')} append / read-back / one-event commit`);
  const ed25519VerifyPerS = measureVerifyPerS();
  const transitChecksUs = measureTransitChecksUs();
  // As many writers as a chain has servers: one hop's two, three hops' four.
  const fsync = [await measureFsync(dir, 2), await measureFsync(dir, 4)];
  // Likewise the embedded store's append ceiling, each end of a link appending while the other does.
  const appendsTogether = [await measureAppendsTogether(dir, 2, 256, THROUGHPUT_EVENTS[256]), await measureAppendsTogether(dir, 4, 256, THROUGHPUT_EVENTS[256])];
  const storeRelay: StoreRelayBound[] = [];
  for (const shape of STORE_RELAY_SHAPES) {
    storeRelay.push(await measureStoreRelay(dir, { ...shape, bodyBytes: 256, ratePerS: TARGET_PACED_PER_S, events: PACED_EVENTS }, CASE_TIME_LIMIT_MS));
  }
  const store: StoreBounds[] = [];
  for (const engine of engines) {
    try {
      for (const bodyBytes of BODY_BYTES) {
        // The embedded store at 256 B also without fsync: the difference is what fsync costs.
        const settings = engine === pgliteBench ? (bodyBytes === 256 ? (['fsync', 'os'] as const) : (['fsync'] as const)) : [undefined];
        for (const durability of settings) {
          const { location } = await engine.fresh(dir, `store-${bodyBytes}-${durability ?? 'server'}`);
          store.push(await measureStore(engine.name, { ...location, ...(durability ? { durability } : {}) }, bodyBytes, THROUGHPUT_EVENTS[bodyBytes]));
        }
      }
    } finally {
      await engine.cleanUp();
    }
  }
  return { ed25519VerifyPerS, transitChecksUs, store, fsync, appendsTogether, storeRelay };
}

/** The cases of one chain of servers, and each process's memory idle and after its throughput cases; one hop also measures a catch-up. */
async function measureChain(dir: string, canary: WakeCanary, hops: Hops, engine: BenchEngine = pgliteBench): Promise<{ cases: CaseResult[]; memory: MemoryResult; catchUp?: CatchUpResult }> {
  const servers = hops === 1 ? 'two linked servers (origin here, destination in a child process)' : `${hops + 1} servers over ${hops} hops (origin here, each other in a child process)`;
  const on = `${engine.name}${engine.durability ? ` (durability ${engine.durability})` : ''}`;
  console.log(`starting ${servers} on ${on}`);
  let chain: LinkedChain | undefined;
  try {
    chain = await startChain(join(dir, `hops-${hops}-${engine.name}${engine.durability ?? ''}`), hops, engine);
    const idle = await chain.rssBytes();
    const arrivals = new PeerArrivals(chain);
    await runCase(chain, arrivals, { name: 'warm-up', bodyBytes: 256, events: WARMUP_EVENTS, inFlightMax: THROUGHPUT_IN_FLIGHT, timeLimitMs: CASE_TIME_LIMIT_MS });
    const cases: CaseResult[] = [];
    let loaded = idle;
    for (const spec of caseSpecs(hops, engine)) {
      console.log(`case: ${hops} hop(s) on ${on}, ${spec.name}, ${spec.events} events`);
      // Paced runs are latency runs: the canary samples how long a ready process waits for a core meanwhile.
      cases.push(await runCase(chain, arrivals, spec, spec.ratePerS ? canary : undefined));
      if (!spec.ratePerS) loaded = await chain.rssBytes();
    }
    const memory: MemoryResult = { hops, engine: engine.name, idle, loaded };
    if (hops > 1 || engine !== pgliteBench) return { cases, memory };
    console.log(`case: catch-up of ${TARGET_CATCH_UP.events} events stored while the trust was blocked`);
    return { cases, memory, catchUp: await runCatchUp(chain, arrivals, TARGET_CATCH_UP.events, CASE_TIME_LIMIT_MS * 2) };
  } finally {
    await chain?.stop();
  }
}

/** Two replicas of one server: the link's holder killed, the other takes it (needs Redis beside PostgreSQL). */
async function measureFailoverOrSay(dir: string): Promise<FailoverResult | undefined> {
  console.log('case: two replicas of one server on PostgreSQL and Redis; the holder of the trust link killed');
  return measureFailover(dir).catch((error: Error) => {
    console.warn(`bench: the failover case is left out: ${error.message}`);
    return undefined;
  });
}

/** Best effort at exit: a peer killed a moment ago may still be closing its files. */
function removeQuietly(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  } catch (error) {
    console.error(`bench: could not remove ${dir}: ${(error as Error).message}`);
  }
}

async function main(): Promise<void> {
  const sections = chosenSections(process.env.BENCH_ONLY);
  const partial = sections.size < SECTIONS.length;
  await cryptoReady();
  const dir = mkdtempSync(join(tmpdir(), 'trellis-bench-'));
  // Temp files go on any exit, including the time limit below and Ctrl-C (bench/chain.ts).
  process.once('exit', () => removeQuietly(dir));
  const limit = setTimeout(() => {
    console.error(`bench: not done within ${BENCH_TIME_LIMIT_MS / 1000} s, stopping`);
    process.exit(1);
  }, BENCH_TIME_LIMIT_MS);
  limit.unref();
  if (partial) console.log(`bench: only ${[...sections].join(', ')} (BENCH_ONLY), besides the machine bounds`);
  // PostgreSQL cases need the local server; without it they are left out, and the table says why.
  const postgresMissing = await postgresBenchUnavailable();
  if (postgresMissing) console.warn(`bench: the PostgreSQL cases are left out: ${postgresMissing}`);
  const postgres = postgresMissing ? undefined : postgresBench();
  const bounds = await measureBounds(dir, postgres ? [pgliteBench, postgres] : [pgliteBench]);
  const canary = new WakeCanary();
  process.once('exit', () => canary.close());
  const chain = async (section: Section, hops: Hops, engine?: BenchEngine) => (sections.has(section) ? measureChain(dir, canary, hops, engine) : undefined);
  const oneHop = await chain('one-hop', 1);
  const oneHopOs = await chain('one-hop-os', 1, pgliteOsBench);
  const oneHopPostgres = postgres ? await chain('one-hop-postgres', 1, postgres) : undefined;
  const threeHops = await chain('three-hops', 3);
  // The same chain with each server on its own PostgreSQL database: what the embedded engine costs a transit.
  const threeHopsPostgres = postgres ? await chain('three-hops-postgres', 3, postgres) : undefined;
  canary.close();
  let idleLinks;
  if (sections.has('idle-links')) {
    console.log(`case: an RTS holding ${TARGET_IDLE_LINKS.links} idle trust links, dialled from this process`);
    idleLinks = await measureIdleLinks(join(dir, 'idle-links'), TARGET_IDLE_LINKS.links);
  }
  let publish;
  if (sections.has('kafka')) {
    console.log('case: Kafka publishing through the outbox, and kafkajs alone on the same broker');
    publish = await measurePublish().catch((error: Error) => {
      console.warn(`bench: the Kafka case is left out: ${error.message} (bash scripts/kafka.sh start)`);
      return undefined;
    });
  }
  const chains = [oneHop, oneHopOs, oneHopPostgres, threeHops, threeHopsPostgres].filter((measured) => measured !== undefined);
  const failover = postgres && sections.has('failover') ? await measureFailoverOrSay(join(dir, 'failover')) : undefined;
  const report = makeReport(bounds, chains.flatMap((measured) => measured.cases), oneHop?.catchUp, chains.filter((measured) => measured !== oneHopOs).map((measured) => measured.memory), idleLinks, publish, failover, [...sections]);
  printReport(report);
  const file = partial ? PARTIAL_RESULTS_FILE : RESULTS_FILE;
  writeReport(report, file);
  console.log(`\nwrote ${file}`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(`bench: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
