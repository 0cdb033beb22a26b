/**
 * `npm run bench`, first case: one trust link between two servers on durable PGlite
 * stores, each in its own process. Measures the machine's bounds (Ed25519 verify, PGlite
 * append and read-back), then the link's throughput and end-to-end latency for 256 B and
 * 4 KiB bodies, flat out and at a paced 1,000 events/s; prints one table and writes
 * bench/results/link.json. Every run stops by itself within BENCH_TIME_LIMIT_MS.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cryptoReady } from '../crypto/index.js';
import { measureStore, measureVerifyPerS, type StoreBounds } from './bounds.js';
import { PeerArrivals, runCase, type CaseResult, type CaseSpec } from './link-case.js';
import { startPair, type LinkedPair } from './pair.js';
import { makeReport, printReport, TARGET_PACED_PER_S, writeReport } from './report.js';

const BODY_BYTES = [256, 4096] as const;
/** Events of a flat-out run, by body size: enough for steady state, few enough for the time budget. */
const THROUGHPUT_EVENTS: Record<(typeof BODY_BYTES)[number], number> = { 256: 20_000, 4096: 5_000 };
/** Posts in flight at the origin in a flat-out run: several group commits' worth. */
const THROUGHPUT_IN_FLIGHT = 256;
const PACED_DURATION_MS = 5_000;
/** A paced run never holds more posts than this; if it would, the offered load falls and the table shows it. */
const PACED_IN_FLIGHT_MAX = 4_096;
/** A short unreported run first, so the JIT and both stores' caches are warm for the first figure. */
const WARMUP_EVENTS = 2_000;
const CASE_TIME_LIMIT_MS = 60_000;
/** The whole bench: past this it kills the peer, removes its files and exits non-zero. */
const BENCH_TIME_LIMIT_MS = 180_000;
const RESULTS_FILE = fileURLToPath(new URL('../../bench/results/link.json', import.meta.url));

function caseSpecs(): CaseSpec[] {
  const throughput = BODY_BYTES.map((bodyBytes) => ({
    name: `throughput, ${bodyBytes} B`, bodyBytes, events: THROUGHPUT_EVENTS[bodyBytes], inFlightMax: THROUGHPUT_IN_FLIGHT, timeLimitMs: CASE_TIME_LIMIT_MS,
  }));
  const paced = BODY_BYTES.map((bodyBytes) => ({
    name: `paced ${TARGET_PACED_PER_S}/s, ${bodyBytes} B`, bodyBytes, events: (TARGET_PACED_PER_S * PACED_DURATION_MS) / 1000,
    inFlightMax: PACED_IN_FLIGHT_MAX, ratePerS: TARGET_PACED_PER_S, timeLimitMs: CASE_TIME_LIMIT_MS,
  }));
  return [...throughput, ...paced];
}

async function measureBounds(dir: string): Promise<{ verifyPerS: number; store: StoreBounds[] }> {
  console.log('machine bounds: Ed25519 verify, PGlite append / read-back / one-event commit');
  const verifyPerS = measureVerifyPerS();
  const store: StoreBounds[] = [];
  for (const bodyBytes of BODY_BYTES) store.push(await measureStore(dir, bodyBytes, THROUGHPUT_EVENTS[bodyBytes]));
  return { verifyPerS, store };
}

async function measureLink(dir: string): Promise<CaseResult[]> {
  console.log('starting two linked servers (origin here, peer in a child process)');
  let pair: LinkedPair | undefined;
  try {
    pair = await startPair(dir);
    const arrivals = new PeerArrivals(pair);
    await runCase(pair, arrivals, { name: 'warm-up', bodyBytes: 256, events: WARMUP_EVENTS, inFlightMax: THROUGHPUT_IN_FLIGHT, timeLimitMs: CASE_TIME_LIMIT_MS });
    const results: CaseResult[] = [];
    for (const spec of caseSpecs()) {
      console.log(`case: ${spec.name}, ${spec.events} events`);
      results.push(await runCase(pair, arrivals, spec));
    }
    return results;
  } finally {
    await pair?.stop();
  }
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
  await cryptoReady();
  const dir = mkdtempSync(join(tmpdir(), 'trellis-bench-'));
  // Temp files go on any exit, including the time limit below and Ctrl-C (bench/pair.ts).
  process.once('exit', () => removeQuietly(dir));
  const limit = setTimeout(() => {
    console.error(`bench: not done within ${BENCH_TIME_LIMIT_MS / 1000} s, stopping`);
    process.exit(1);
  }, BENCH_TIME_LIMIT_MS);
  limit.unref();
  const { verifyPerS, store } = await measureBounds(dir);
  const cases = await measureLink(dir);
  const report = makeReport(verifyPerS, store, cases);
  printReport(report);
  writeReport(report, RESULTS_FILE);
  console.log(`\nwrote ${RESULTS_FILE}`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(`bench: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
