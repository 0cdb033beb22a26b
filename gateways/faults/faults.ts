/**
 * `npm run faults`: the reference federation (fixtures/federation), one process per server,
 * under a seeded schedule of faults while its member servers post into the five reference
 * chats; then, per chat, every member server must hold every event exactly once with equal
 * digests, and every destination queue must be empty. A failing seed is printed with the
 * reason; `--seed N` replays its schedule.
 *
 * What each fault exercises, and why it is faithful:
 * - SIGKILL and restart from the data directory (the core): the process gets no stop, no
 *   flush, no goodbye; whatever a commit had not made durable is gone, whatever it had
 *   must be there after the restart. A kill in the middle of a window of batches makes the
 *   peers resend what was not acknowledged (duplicate frames, on the new link), and a kill
 *   in the middle of a post leaves the post in doubt (counted, and allowed to be stored).
 * - Partition (a link's proxies cut every connection, then reset or swallow each new one
 *   until healed): a network that refuses, or one that drops packets silently so dials
 *   hang until the handshake times out. Routes move while it lasts: default chats fail over
 *   through the ETS or RTS and the new next hop is resent what the old one had not
 *   acknowledged, so a destination receives the same events by two paths (duplicates) and
 *   one origin's chain in another order than it was made (reordering across paths); the
 *   corporate chat waits for the direct trust.
 * - Cut: every connection of a link destroyed mid-stream, possibly mid-frame.
 * - Delay: every TCP chunk of a link held back 20-400 ms, order kept; what a long path
 *   does. Frames of one link stay in order, as HTTP/2 over TCP keeps them: delaying one
 *   link against the others is what reorders events between paths.
 * - Trickle: one peer's connections carry a few KB/s each way: a slow peer must slow only
 *   its own links (a batch may take longer than the dead-link bound, so the link is
 *   redialled and resent), never the rest of the federation.
 * The proxy works on TCP chunks and never rewrites HTTP/2: duplicating or swapping frames
 * inside one stream is not something a network does, only a hostile peer; that is the
 * fuzzer's part (test/frame-fuzz.test.ts, real frames replayed, swapped and mutated over a
 * real link).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { EXIT_FAILURE as EXIT_FAILED, EXIT_OK, EXIT_USAGE } from '../cli/exit-codes.js';
import { makeStoreTemplate } from './federation.js';
import { FaultError, runFaults, type FaultRunResult } from './run.js';

/** Bounds of a run: the default is what CI runs per seed; the maxima keep any run finite. */
export const RUN_MS_DEFAULT = 30_000;
export const RUN_MS_MAX = 600_000;
export const KILLS_DEFAULT = 4;
export const KILLS_MAX = 50;
export const SEEDS_MAX = 1_000;
const SEED_MAX = 0xffff_ffff;

function wholeNumber(what: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${what} must be a whole number from ${min} to ${max}, not "${value}"`);
    return n;
  };
}

interface CliOptions {
  seed?: number;
  seeds?: number;
  runMs: number;
  kills: number;
  fixtures: string;
  keep?: boolean;
}

function program(): Command {
  return new Command('faults')
    .description('run the reference federation, one process per server, under a seeded schedule of SIGKILLs and restarts, partitions, cuts, delays and one slow peer while events are posted; then check that every member server of every chat holds every event exactly once with equal digests and every queue is empty')
    .option('--seed <n>', `the seed of a single run (to replay a failure), 0 to ${SEED_MAX}`, wholeNumber('--seed', 0, SEED_MAX))
    .option('--seeds <count>', `run seeds 1 to <count> (or from --seed on), one after another, at most ${SEEDS_MAX}`, wholeNumber('--seeds', 1, SEEDS_MAX))
    .option('--run-ms <ms>', `how long faults are started for, per seed (1000 to ${RUN_MS_MAX})`, wholeNumber('--run-ms', 1_000, RUN_MS_MAX), RUN_MS_DEFAULT)
    .option('--kills <count>', `SIGKILLs per seed at most (0 to ${KILLS_MAX})`, wholeNumber('--kills', 0, KILLS_MAX), KILLS_DEFAULT)
    .option('--fixtures <folder>', "the reference federation's configs, one YAML per server", 'fixtures/federation')
    .option('--keep', 'keep each seed\'s data directories and node logs (a failing seed\'s are always kept)')
    .addHelpText(
      'after',
      `
Without --seed or --seeds it runs seed 1. Each step of the schedule prints a line, each
seed a summary; the first failing seed stops the run with its number and the reason.
Exit codes: 0 every seed held, 1 a seed failed (replay it with --seed N), 64 bad command line.`,
    )
    .exitOverride();
}

function summary(result: FaultRunResult): string {
  return (
    `seed ${result.seed}: held — ${result.steps} steps (${result.kills} kills, ${result.restarts} restarts), ` +
    `${result.posted} events posted (${result.inDoubt} in doubt of which ${result.refused} refused by a live node, ${result.skipped} not tried), ` +
    `${result.chats} chats: ${result.copiesVerified} copies on member servers each held once, digests equal, ${result.queuesVerified} destination queues empty; ${result.duplicatesReceived} duplicates received and dropped by the live links; ` +
    `${(result.durationMs / 1000).toFixed(1)} s`
  );
}

export async function main(argv: string[], print: (line: string) => void = console.log, printError: (line: string) => void = console.error): Promise<number> {
  let options: CliOptions;
  try {
    options = program().configureOutput({ writeOut: (text) => print(text.trimEnd()), writeErr: (text) => printError(text.trimEnd()) }).parse(argv, { from: 'user' }).opts<CliOptions>();
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    throw error;
  }
  const first = options.seed ?? 1;
  const count = options.seeds ?? 1;
  if (first + count - 1 > SEED_MAX) {
    printError(`--seed ${first} with --seeds ${count} runs past seed ${SEED_MAX}`);
    return EXIT_USAGE;
  }
  const results: FaultRunResult[] = [];
  // One empty store for every seed of this run to copy: its first open is the slow one.
  const templateRoot = mkdtempSync(join(tmpdir(), 'trellis-faults-template-'));
  try {
    const storeTemplate = await makeStoreTemplate(join(templateRoot, 'store'));
    for (let seed = first; seed < first + count; seed++) {
      try {
        const result = await runFaults({ seed, runMs: options.runMs, killsMax: options.kills, fixtures: options.fixtures, keep: options.keep === true, storeTemplate, print });
        results.push(result);
        print(summary(result));
      } catch (error) {
        const reason = error instanceof FaultError ? `${error.code}: ${error.message}` : error instanceof Error ? error.message : String(error);
        printError(`FAILED seed ${seed} (replay: npm run faults -- --seed ${seed} --run-ms ${options.runMs} --kills ${options.kills}): ${reason}`);
        return EXIT_FAILED;
      }
    }
  } finally {
    rmSync(templateRoot, { recursive: true, force: true });
  }
  const seconds = results.map((result) => result.durationMs / 1000);
  print(`${results.length} seeds held (${first} to ${first + count - 1}); ${(seconds.reduce((a, b) => a + b, 0) / results.length).toFixed(1)} s a seed on average, ${Math.max(...seconds).toFixed(1)} s at most`);
  return EXIT_OK;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : String(error));
      process.exit(EXIT_FAILED);
    },
  );
}
