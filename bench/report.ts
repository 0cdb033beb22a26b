/**
 * The bench's output: one table, each figure beside its target, the bound it runs into
 * (from the machine bounds measured in the same run) and how durable it is; and the
 * same figures as JSON for comparing runs.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname } from 'node:path';
import { COMMIT_SAMPLES, PACED_COMMIT_PAUSE_MS, PACED_COMMIT_SAMPLES, type AppendsTogether, type StoreBounds } from './bounds.js';
import type { FsyncBounds } from './disk.js';
import type { StoreRelayBound } from './relay.js';
import type { RelayAppendsTo } from './relay-wire.js';
import type { IdleLinksResult } from './idle-links.js';
import type { FailoverResult } from './failover.js';
import type { PublishBenchResult } from './publish.js';
import type { EngineName } from './engines.js';
import type { CaseResult, CatchUpResult } from './link-case.js';

/** The contour-routing issue's targets at 256 B: events/s, share of the store's append ceiling (one hop), p99 at the paced rate. */
export const TARGETS = {
  1: { eventsPerS: 8_000, p99Ms: 10 },
  3: { eventsPerS: 4_000, p99Ms: 25 },
} as const;
export const TARGET_SHARE_OF_APPEND = 0.6;
/** The production-engines issue's targets for one hop on PostgreSQL at 256 B (no share of the append ceiling asked). */
export const TARGET_POSTGRES = { eventsPerS: 10_000, p99Ms: 10 } as const;
export const TARGET_PACED_PER_S = 1_000;
/** A destination back after a while: this many stored events delivered within this time. */
export const TARGET_CATCH_UP = { events: 100_000, seconds: 12 };
/** An RTS holding this many idle trust links: each may add at most this much resident memory. */
export const TARGET_IDLE_LINKS = { links: 1_000, kibPerLink: 200 };
/** The production-engines issue: events/s published through the outbox. */
export const TARGET_PUBLISH_PER_S = 20_000;
/** A server this long inside its store's appends ran them back to back: its store (on PostgreSQL, the server's commits) set the pace. */
export const STORE_BOUND_SHARE = 0.7;
/** A core this busy during a run is the bound: the run waited on that process's CPU. */
export const SATURATED_BUSY = 0.9;
/** Other processes using more than this share of a core during a run: the bench did not have the machine to itself. */
export const OTHERS_BUSY_MAX = 0.1;

/** What "durable" means for a stored figure, by engine (each figure's row says which). */
export const DURABILITY: Record<EngineName, { short: string; full: string }> = {
  PGlite: {
    short: 'fsync',
    full:
      'PGlite (store.durability: fsync, the default, which every server here runs): an event is acknowledged (post resolves, ' +
      'a frame is acked) only after its commit is fsynced, WAL first and data files at each checkpoint: durable against ' +
      'power loss. Rows marked "os" leave writing to the OS: durable against a crash of the process only.',
  },
  PostgreSQL: {
    short: 'fsync (server)',
    full: 'PostgreSQL: acknowledged after COMMIT returns, with the local server at fsync = on, synchronous_commit = on: durable against power loss.',
  },
};

/** Resident memory of each server's process, right after start and after its throughput cases. */
export interface MemoryResult {
  hops: 1 | 3;
  engine: EngineName;
  idle: { origin: number; peer: number; transits: number[] };
  loaded: { origin: number; peer: number; transits: number[] };
}

/** Measured in the same run as the cases: what this machine allows, without our code (Ed25519, the disk) or with the store alone. */
export interface MachineBounds {
  ed25519VerifyPerS: number;
  /** The checks against a hostile neighbour at a transit (bench/transit-checks.ts), µs per event. */
  transitChecksUs: number;
  store: StoreBounds[];
  /** The disk's paced fsync, with as many writers as a chain has servers. */
  fsync: FsyncBounds[];
  /** The embedded store's append ceiling with as many stores appending at once as a chain has servers. */
  appendsTogether: AppendsTogether[];
  /** The paced chains with the engine alone: embedded stores in series, relaying at the paced rate. */
  storeRelay: StoreRelayBound[];
}

export interface Report {
  date: string;
  node: string;
  cpus: number;
  cpuModel: string;
  durability: string;
  targets: { byHops: typeof TARGETS; postgres: typeof TARGET_POSTGRES; atPerS: number; catchUp: typeof TARGET_CATCH_UP; idleLinks: typeof TARGET_IDLE_LINKS };
  bounds: MachineBounds;
  cases: CaseResult[];
  catchUp: CatchUpResult | undefined;
  memory: MemoryResult[];
  /** Absent when not run (BENCH_ONLY). */
  idleLinks: IdleLinksResult | undefined;
  /** Absent when no broker answered. */
  publish: PublishBenchResult | undefined;
  /** Absent without PostgreSQL and Redis. */
  failover: FailoverResult | undefined;
  /** The bench's sections this run measured (all, unless BENCH_ONLY named some). */
  sections: string[];
}

export function makeReport(
  bounds: MachineBounds,
  cases: CaseResult[],
  catchUp: CatchUpResult | undefined,
  memory: MemoryResult[],
  idleLinks: IdleLinksResult | undefined,
  publish: PublishBenchResult | undefined,
  failover: FailoverResult | undefined,
  sections: readonly string[],
): Report {
  return {
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    durability: Object.values(DURABILITY).map((durability) => durability.full).join(' '),
    targets: { byHops: TARGETS, postgres: TARGET_POSTGRES, atPerS: TARGET_PACED_PER_S, catchUp: TARGET_CATCH_UP, idleLinks: TARGET_IDLE_LINKS },
    bounds,
    cases,
    catchUp,
    memory,
    idleLinks,
    publish,
    failover,
    sections: [...sections],
  };
}

const count = (value: number) => Math.round(value).toLocaleString('en-US');
const ms = (value: number) => (value < 10 ? value.toFixed(2) : value < 100 ? value.toFixed(1) : count(value));
const size = (bytes: number) => (bytes >= 1024 ? `${(bytes / 1024).toFixed(bytes % 1024 ? 1 : 0)} KiB` : `${bytes} B`);

const percent = (share: number) => `${Math.round(share * 100)}%`;

/** The bounds the servers of a run stand on: their engine, at the run's durability (the default unless 'os'). */
function nearestStore(all: StoreBounds[], engine: EngineName, bodyBytes: number, durability?: 'os'): StoreBounds {
  const store = all.filter((bounds) => bounds.engine === engine && (durability === 'os') === (bounds.durability === 'os'));
  return store.reduce((best, next) => (Math.abs(next.bodyBytes - bodyBytes) < Math.abs(best.bodyBytes - bodyBytes) ? next : best));
}

/**
 * What the run waited on, from the CPU each server's process used during it. With
 * transits, four processes share the machine's cores: together near the core count,
 * the machine is the bound.
 */
function limiter(result: CaseResult): string {
  const total = result.originBusy + result.peerBusy + result.transitsBusy + (result.otherBusy ?? 0);
  if (result.hops > 1 && total >= cpus().length * SATURATED_BUSY) return `all ${cpus().length} cores (${percent(total)} of one core in all)`;
  if (Math.max(result.originBusy, result.peerBusy) < SATURATED_BUSY) {
    const [server, share] = result.originInStore >= result.peerInStore ? ['origin', result.originInStore] : ['destination', result.peerInStore];
    if (share >= STORE_BOUND_SHARE) return `no core saturated: the ${server}'s store, ${percent(share)} of the run inside its appends`;
    return 'no core saturated: waits on the links';
  }
  return result.originBusy >= result.peerBusy ? 'origin CPU' : 'destination CPU';
}

type Row = [figure: string, measured: string, target: string, busy: string, bound: string, durability: string];

function caseRows(result: CaseResult, report: Report): Row[] {
  const bounds = nearestStore(report.bounds.store, result.engine, result.bodyBytes, result.durability);
  const durable = result.durability ?? DURABILITY[result.engine].short;
  const body = size(result.bodyBytes);
  const busy = [result.originBusy, result.transitsBusy, result.peerBusy, result.otherBusy].map((share) => (share === undefined ? '?' : percent(share))).join(' / ');
  const batching = `${result.eventsPerCommit.toFixed(1)} ev/commit, ${result.eventsPerFrame.toFixed(1)} ev/frame`;
  // Measured inside the running nodes: on PGlite the node's thread does nothing else meanwhile.
  const transits = result.transitsInStore === undefined ? '' : `, each transit ${percent(result.transitsInStore)} at ${ms(result.transitsAppendMs!)} ms`;
  const inStore = `in store appends: origin ${percent(result.originInStore)} of the run at ${ms(result.originAppendMs)} ms each, destination ${percent(result.peerInStore)} at ${ms(result.peerAppendMs)} ms${transits}`;
  // PostgreSQL's own target is for one hop; over three its rows stand against the three-hop target.
  const target = result.engine === 'PostgreSQL' && result.hops === 1 ? TARGET_POSTGRES : TARGETS[result.hops];
  const hops = `${result.hops === 1 ? 'one hop' : `${result.hops} hops`}${result.engine === 'PGlite' ? '' : ` on ${result.engine}`}${result.durability ? `, no fsync (${result.durability})` : ''}`;
  if (result.ratePerS) {
    // Without fsync the row is a bound beside the others, not a result against a target.
    const wantedP99 = result.durability ? 'bound, no target' : `p99 < ${target.p99Ms} ms`;
    // Each server sends from memory (router/queues/append-tail.ts): a hop costs a commit at each end,
    // and at a pace each commit follows a pause: the paced commit, not the back-to-back one, is the floor.
    const floorMs = bounds.pacedCommitMs * (result.hops + 1);
    const commitCpu = `each costs ${ms(bounds.pacedCommitCpuMs)} ms of CPU at this pace, ${ms(bounds.commitOneCpuMs)} ms back to back`;
    const shortfall = result.eventsPerS < result.ratePerS * 0.95 ? `, the links carried only ${count(result.eventsPerS)}/s` : '';
    // Each of those commits, and each frame between them, is a wake-up of a server's thread: it waits for a core first.
    const wake = result.wake ? `; a ready process waited for a core p99 ${ms(result.wake.p99Ms)} ms, slowest ${ms(result.wake.maxMs)} ms (idle canary)` : '';
    // Each of those commits waits for the disk: its paced fsync with as many servers writing at once, outside any code of ours.
    const disk = report.bounds.fsync.find((bound) => bound.writers === result.hops + 1);
    const fsync = disk && !result.durability && result.engine === 'PGlite' ? `; the disk alone, ${disk.writers} writers: an fsync p50 ${ms(disk.p50Ms)} / p99 ${ms(disk.p99Ms)} ms` : '';
    const relayed = !result.durability && result.engine === 'PGlite' ? storeRelayText(report.bounds.storeRelay, result.hops + 1, result.bodyBytes) : '';
    return [
      [`${hops}: latency p50 / p99 at ${count(result.ratePerS)}/s, ${body}`, `${ms(result.p50Ms)} / ${ms(result.p99Ms)} ms`, wantedP99, busy,
        `${limiter(result)}${shortfall}; ${batching}; floor ${result.hops + 1} paced commits ≈ ${ms(floorMs)} ms alone (${commitCpu})${relayed}${fsync}${wake}; ${inStore}`, durable],
    ];
  }
  // Each server appends each event once; they send from memory, so the append is the store's ceiling.
  const backlog = result.originPerS > result.eventsPerS * 1.05;
  const share = result.eventsPerS / bounds.appendRowsPerS;
  // Every server of the chain appends at the same moment: the ceiling each one has then, beside the lone store's.
  const together = result.engine === 'PGlite' ? report.bounds.appendsTogether.find((bound) => bound.stores === result.hops + 1 && bound.bodyBytes === result.bodyBytes) : undefined;
  const each = together && meanOf(together.rowsPerS);
  const appendingTogether = together && each ? `; ${together.stores} stores appending at once: ${count(each)} rows/s each, ${percent(each / bounds.appendRowsPerS)} of that ceiling; the link carried ${percent(result.eventsPerS / each)} of this one` : '';
  const ofAppend = result.hops === 1 && result.engine === 'PGlite' ? `, ${percent(TARGET_SHARE_OF_APPEND)} of append` : '';
  const wanted = `${count(target.eventsPerS)} ev/s${ofAppend}`;
  return [
    [`${hops}: throughput, ${body}`, `${count(result.eventsPerS)} ev/s`, result.bodyBytes <= 512 ? wanted : '', busy,
      `${limiter(result)}; ${percent(share)} of the store's append ceiling (${count(bounds.appendRowsPerS)} rows/s)${appendingTogether}`, durable],
    [`  durable at the origin`, `${count(result.originPerS)} ev/s`, '', '', `group commit, ${batching}; ${inStore}`, durable],
    [`  latency p50 / p99 at full load`, `${ms(result.p50Ms)} / ${ms(result.p99Ms)} ms`, '', '',
      backlog ? `backlog: the origin took ${count(result.originPerS)}/s, the link carried ${count(result.eventsPerS)}/s` : `queueing of ${result.inFlightMax} posts in flight`,
      durable],
  ];
}

/**
 * A paced row's engine-alone chain: its stores relaying at the same pace, with cut-through
 * transits where it has any, and the engine's floor (a one-column table) below both.
 */
function storeRelayText(relays: readonly StoreRelayBound[], stages: number, bodyBytes: number): string {
  const of = (cutThrough: boolean, appendsTo: RelayAppendsTo) =>
    relays.find((relay) => relay.stages === stages && relay.bodyBytes === bodyBytes && relay.cutThrough === cutThrough && relay.appendsTo === appendsTo);
  const stored = of(false, 'event-store');
  if (!stored) return '';
  const cut = of(true, 'event-store');
  const cutText = cut ? `, transits cutting through ${ms(cut.p50Ms)} / ${ms(cut.p99Ms)} ms` : '';
  const floor = of(false, 'one-column');
  const floorText = floor ? `, on a one-column table ${ms(floor.p50Ms)} / ${ms(floor.p99Ms)} ms` : '';
  return `; the engines alone, ${stages} stores relaying at this pace: p50 / p99 ${ms(stored.p50Ms)} / ${ms(stored.p99Ms)} ms${cutText}${floorText}`;
}

function catchUpRows(report: Report): Row[] {
  const result = report.catchUp;
  if (!result) return [];
  const busy = [result.originBusy, 0, result.peerBusy].map(percent).join(' / ') + ' / ?';
  const bound = result.originBusy >= SATURATED_BUSY || result.peerBusy >= SATURATED_BUSY ? (result.originBusy >= result.peerBusy ? 'origin CPU' : 'destination CPU') : 'no core saturated';
  return [
    [`one hop: catch-up of ${count(result.events)} stored events`, `${result.seconds.toFixed(1)} s (${count(result.eventsPerS)} ev/s)`, `< ${TARGET_CATCH_UP.seconds} s`, busy,
      `${bound}; the backlog beyond the in-memory tail is read from the store`, DURABILITY.PGlite.short],
  ];
}

const mib = (bytes: number) => `${(bytes / 1024 ** 2).toFixed(0)}`;

function memoryRows(report: Report): Row[] {
  return report.memory.map((memory) => {
    const figure = (rss: MemoryResult['idle']) => [rss.origin, ...rss.transits, rss.peer].map(mib).join(' / ');
    const who = memory.hops === 1 ? 'origin / destination' : 'origin / ETS / RTS / destination';
    const on = memory.engine === 'PGlite' ? '' : ` on ${memory.engine}`;
    const held = memory.engine === 'PGlite' ? '; PGlite (WebAssembly) holds most of it' : "; the PostgreSQL server's own memory is not counted";
    return [`${memory.hops === 1 ? 'one hop' : `${memory.hops} hops`}${on}: RSS idle → after load, MiB`, `${figure(memory.idle)} → ${figure(memory.loaded)}`, '', '',
      `${who}; the origin's process also runs the bench${held}`, '—'] as Row;
  });
}

function idleLinkRows(report: Report): Row[] {
  const result = report.idleLinks;
  if (!result) return [];
  return [
    [`RTS: memory per idle trust link (${count(result.links)})`, `${(result.bytesPerLink / 1024).toFixed(0)} KiB`, `< ${TARGET_IDLE_LINKS.kibPerLink} KiB`, '',
      `RSS after a collection: ${mib(result.rssBaselineBytes)} MiB with a tenth of the links, ${mib(result.rssLinkedBytes)} MiB with all; all up in ${result.upSeconds.toFixed(1)} s; a bare grpc-js stream on its own connection ≈ 29 KiB`, '—'],
  ];
}

function publishRows(report: Report): Row[] {
  const result = report.publish;
  if (!report.sections.includes('kafka')) return [];
  if (!result) return [['Kafka: publish through the outbox', 'not run', `${count(TARGET_PUBLISH_PER_S)} ev/s`, '', 'no broker answered (bash scripts/kafka.sh start)', '—']];
  return [
    [`Kafka: publish through the outbox, ${size(result.bodyBytes)}`, `${count(result.outboxEventsPerS)} ev/s`, `≥ ${count(TARGET_PUBLISH_PER_S)} ev/s`, '',
      `kafkajs alone ${count(result.kafkajsEventsPerS)} ev/s and reading + encoding alone ${count(result.readEncodeEventsPerS)} ev/s, one core for both; ${count(result.events)} records of ${result.recordBytes} B`, 'acks=all'],
  ];
}

function failoverRows(report: Report): Row[] {
  const result = report.failover;
  if (!report.sections.includes('failover')) return [];
  if (!result) return [['replicas: link failover after SIGKILL', 'not run', 'lease + one redial', '', 'needs PostgreSQL and Redis', '—']];
  // The lease lapses at most its length after the kill; the other replica asks again within askEveryMs, then dials once.
  const bound = result.leaseMs + result.askEveryMs;
  return [
    ['replicas: link failover after SIGKILL', `${count(result.failoverMs)} ms`, `≤ ${count(bound)} ms + a dial`, '',
      `the lease (${count(result.leaseMs)} ms, renewed every third of it) lapses; the other replica asks every ${count(result.askEveryMs)} ms, takes it and dials`, '—'],
  ];
}

function boundRows(report: Report): Row[] {
  const verify = report.bounds.ed25519VerifyPerS;
  const rows: Row[] = [[`Ed25519 verify (node:crypto)`, `${count(verify)}/s`, '', '', 'one per event would cap a receiver here; the link checks one per run per frame', '—']];
  const checksUs = report.bounds.transitChecksUs;
  rows.push(['transit checks per event: forward sets, standing in the chat', `${checksUs.toFixed(2)} µs`, '', '',
    `one Ed25519 verify takes ${(1e6 / verify).toFixed(1)} µs in this run: the checks cost ${((checksUs * verify) / 1e6 * 100).toFixed(1)}% of one`, '—']);
  for (const disk of report.bounds.fsync) {
    rows.push([`disk fsync, 8 KiB page, ${disk.writers} writers`, `${ms(disk.p50Ms)} / ${ms(disk.p99Ms)} / ${ms(disk.maxMs)} ms`, '', '',
      `p50 / p99 / slowest of ${count(disk.samples)}, each writer its own process, a page and an fsync every ${disk.paceMs} ms or more: what each commit of a server waits for at the paced rate`, 'fsync']);
  }
  for (const together of report.bounds.appendsTogether) rows.push(appendsTogetherRow(together, report));
  for (const relay of report.bounds.storeRelay) rows.push(storeRelayRow(relay));
  for (const store of report.bounds.store) {
    const body = size(store.bodyBytes);
    const durable = store.durability ?? DURABILITY[store.engine].short;
    const engine = store.durability ? `${store.engine} (${store.durability})` : store.engine;
    // PGlite runs inside the process; PostgreSQL does its part in the server's own processes.
    const clientOnly = store.engine === 'PostgreSQL' ? "; the client's share only, the server's processes are not counted" : '';
    rows.push(
      [`${engine} append, 512/tx, ${body}`, `${count(store.appendRowsPerS)} rows/s`, '', '', 'each event is appended once at each end', durable],
      [`${engine} read-back, ${body}`, `${count(store.readBackRowsPerS)} rows/s`, '', '', `the outbound query, 512 a page, over a ${count(store.chatEvents)}-event chat: only for a link behind the in-memory tail`, '—'],
      [`${engine} one-event commit, ${body}`, `${ms(store.commitOneMs)} ms`, '', '', 'p50; the floor of each hop at low load', durable],
      [`  p99 / slowest of ${count(COMMIT_SAMPLES)}`, `${ms(store.commitOneP99Ms)} / ${ms(store.commitOneMaxMs)} ms`, '', '',
        "single commits' tail: how much of a hop's p99 the engine's own stalls can explain", durable],
      [`  CPU per commit`, `${ms(store.commitOneCpuMs)} ms`, '', '', `user and system, every thread of the process: what a busy server pays per commit${clientOnly}`, durable],
      [`${engine} one-event commit every ${PACED_COMMIT_PAUSE_MS} ms, ${body}`, `${ms(store.pacedCommitMs)} / ${ms(store.pacedCommitP99Ms)} ms`, '', '',
        `p50 / p99 of ${count(PACED_COMMIT_SAMPLES)}, each after a pause of ${PACED_COMMIT_PAUSE_MS} ms or more: a paced server's commit, beside the back-to-back one`, durable],
      [`  CPU per paced commit`, `${ms(store.pacedCommitCpuMs)} ms`, '', '', `the same work as a back-to-back commit, the CPU it costs after a pause${clientOnly}`, durable],
    );
  }
  return rows;
}

function appendsTogetherRow(together: AppendsTogether, report: Report): Row {
  const alone = nearestStore(report.bounds.store, 'PGlite', together.bodyBytes).appendRowsPerS;
  const each = meanOf(together.rowsPerS);
  const range = `${count(Math.min(...together.rowsPerS))}–${count(Math.max(...together.rowsPerS))}`;
  return [`PGlite (fsync) append, 512/tx, ${size(together.bodyBytes)}, ${together.stores} stores at once`, `${count(each)} rows/s each`, '', '',
    `${range}; each store in its own process, all appending at the same moment as a chain's servers do under load: ${percent(each / alone)} of one store alone`, 'fsync'];
}

/** What each stage of a relay row appends to, as its label says it. */
const RELAY_APPENDS_TO: Record<RelayAppendsTo, string> = {
  'event-store': 'PGlite (fsync) relay',
  'one-column': 'PGlite (fsync) relay on a one-column table',
  nothing: 'relay with no store',
};

function storeRelayRow(relay: StoreRelayBound): Row {
  const forwarding = relay.cutThrough ? 'the transits pass events on as they arrive and commit beside it' : 'each passes events on after its commit, as a server does';
  return [`${RELAY_APPENDS_TO[relay.appendsTo]}, ${relay.stages} ${relay.appendsTo === 'nothing' ? 'processes' : 'stores'} in series, ${count(relay.ratePerS)}/s, ${size(relay.bodyBytes)}${relay.cutThrough ? ', cut-through' : ''}`,
    `${ms(relay.p50Ms)} / ${ms(relay.p99Ms)} / ${ms(relay.maxMs)} ms`, '', '',
    `p50 / p99 / slowest of ${count(relay.events)}, post to the last stage's commit; each stage its own process, commits spaced ${relay.commitSpacingMs} ms as a node's, ` +
      `${relay.eventsPerCommit.toFixed(1)} ev/commit; ${forwarding}, over a local socket; no gRPC, signing, checks or routing; they used ${percent(relay.stagesBusy)} of one core`,
    relay.appendsTo === 'nothing' ? '—' : 'fsync'];
}

const meanOf = (values: readonly number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;

function formatTable(rows: Row[]): string {
  const header: Row = ['figure', 'measured', 'target', 'CPU o/t/d/other', 'bound it runs into (measured in this run)', 'durability'];
  const all = [header, ...rows];
  const widths = header.map((_, column) => Math.max(...all.map((row) => row[column]!.length)));
  const line = (row: Row) => row.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd();
  return [line(header), widths.map((width) => '-'.repeat(width)).join('  '), ...rows.map(line)].join('\n');
}

export function printReport(report: Report): void {
  console.log(`\nTrellis link bench: ${report.date}, Node ${report.node}, ${report.cpus} × ${report.cpuModel}`);
  console.log('servers on 127.0.0.1 joined by trust links (gRPC, no TLS), each in its own process, each on PGlite in a data directory (or a database of its own on the local PostgreSQL where a row says so):');
  console.log('one hop = two partner CTS; 3 hops = CTS → its ETS → the RTS → a CTS under the RTS (the path of a public chat)');
  // On PostgreSQL the engine's own server processes are among the others: only embedded runs tell of a busy machine.
  const others = Math.max(...report.cases.filter((result) => result.engine === 'PGlite').map((result) => result.otherBusy ?? 0));
  if (others > OTHERS_BUSY_MAX) console.log(`WARNING: other processes used up to ${percent(others)} of a core during a run: the figures are low`);
  console.log('');
  console.log(formatTable([...report.cases.flatMap((result) => caseRows(result, report)), ...catchUpRows(report), ...memoryRows(report), ...idleLinkRows(report), ...publishRows(report), ...failoverRows(report), ...boundRows(report)]));
  console.log(
    `\nCPU o/t/d/other: share of one core used during the run by the origin's process (with the bench's poster), the transits' together, ` +
      `the destination's, and all other processes (on PostgreSQL rows, the database server's processes are most of it); ${percent(SATURATED_BUSY)} or more of one process: that core is the bound.`,
  );
  for (const engine of new Set(report.cases.map((result) => result.engine))) console.log(`durability: ${DURABILITY[engine].full}`);
}

export function writeReport(report: Report, file: string): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
}
