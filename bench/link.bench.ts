/**
 * `npm run bench`: one trust link between two servers, each on a durable PGlite store
 * in its own process. Prints a table with each figure beside the bound it runs into
 * (measured in the same run) and writes bench/results/link.json.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { chainEvent, cryptoReady, generateIdentityPem, identityFromSeed, sealBody, verifySignature, type ChainPosition } from '../crypto/index.js';
import { createdDraft, messageDraft, newChat, type DeviceChat } from '../gateways/index.js';
import { EventKind, type Event } from '../proto/gen/trellis/v1/event.js';
import { createLogger, parseConfig, TrellisNode } from '../router/index.js';
import { openEmbeddedStore } from '../store/index.js';
import { percentile, sharedNowMs } from './clock.js';
import type { PeerAppended } from './link-peer.js';

const THROUGHPUT_EVENTS = { 256: 20_000, 4096: 5_000 } as const;
const POSTS_IN_FLIGHT = 256;
const PACED_RATE_PER_S = 1_000;
const PACED_DURATION_MS = 5_000;
const CASE_TIME_LIMIT_MS = 120_000;
const PEER_START_LIMIT_MS = 60_000;
const PEER_STOP_LIMIT_MS = 10_000;
const VERIFY_SAMPLE_MS = 1_000;
const STORE_SAMPLE_ROWS = 10_240;
const STORE_BATCH_ROWS = 512;
const TARGET_EVENTS_PER_S = 20_000;
const TARGET_P99_MS_AT_1000 = 10;
const DURABILITY =
  'committed to the OS before the ack (survives a process crash); PGlite NODEFS has no fsync (not power-loss safe)';

interface CaseResult {
  name: string;
  bodyBytes: number;
  events: number;
  eventsPerS: number;
  p50Ms: number;
  p99Ms: number;
}

/** Posts' start times at the origin and durable-append times at the peer, joined by event id. */
class Timings {
  readonly postedAt = new Map<string, number>();
  readonly appendedAt = new Map<string, number>();
  private onArrival: (() => void) | undefined;

  record(message: PeerAppended): void {
    for (const id of message.ids) this.appendedAt.set(id, message.atMs);
    this.onArrival?.();
  }

  async untilAppended(ids: readonly string[], limitMs: number): Promise<void> {
    const deadline = Date.now() + limitMs;
    while (!ids.every((id) => this.appendedAt.has(id))) {
      if (Date.now() > deadline) throw new Error(`peer appended ${ids.filter((id) => this.appendedAt.has(id)).length}/${ids.length} within ${limitMs} ms`);
      await new Promise<void>((resolve) => {
        this.onArrival = resolve;
        setTimeout(resolve, 100).unref();
      });
    }
  }

  summarise(name: string, bodyBytes: number, ids: readonly string[]): CaseResult {
    const latencies = ids.map((id) => this.appendedAt.get(id)! - this.postedAt.get(id)!).sort((x, y) => x - y);
    const first = Math.min(...ids.map((id) => this.postedAt.get(id)!));
    const last = Math.max(...ids.map((id) => this.appendedAt.get(id)!));
    return { name, bodyBytes, events: ids.length, eventsPerS: (ids.length / (last - first)) * 1000, p50Ms: percentile(latencies, 0.5), p99Ms: percentile(latencies, 0.99) };
  }
}

/** A message text whose sealed body is `bodyBytes` long (nonce, MAC and protobuf framing included). */
function textForBody(chat: DeviceChat, bodyBytes: number): string {
  let text = 'x'.repeat(bodyBytes - 46);
  while (sealBody(chat.key, { content: { $case: 'messagePosted', value: { text } } }).length > bodyBytes) text = text.slice(1);
  return text;
}

async function postOne(origin: TrellisNode, chat: DeviceChat, sender: string, text: string, timings: Timings): Promise<string> {
  const startedAt = sharedNowMs();
  const event = await origin.post(messageDraft(chat, sender, text));
  const id = event.id.toString('hex');
  timings.postedAt.set(id, startedAt);
  return id;
}

async function throughputCase(origin: TrellisNode, chat: DeviceChat, sender: string, bodyBytes: 256 | 4096, timings: Timings): Promise<CaseResult> {
  const text = textForBody(chat, bodyBytes);
  const ids: string[] = [];
  for (let first = 0; first < THROUGHPUT_EVENTS[bodyBytes]; first += POSTS_IN_FLIGHT) {
    const size = Math.min(POSTS_IN_FLIGHT, THROUGHPUT_EVENTS[bodyBytes] - first);
    ids.push(...(await Promise.all(Array.from({ length: size }, () => postOne(origin, chat, sender, text, timings)))));
  }
  await timings.untilAppended(ids, CASE_TIME_LIMIT_MS);
  return timings.summarise(`throughput, ${bodyBytes} B bodies`, bodyBytes, ids);
}

/** Offers a steady 1,000 events/s, each post on its own schedule, never waiting for the last. */
async function pacedCase(origin: TrellisNode, chat: DeviceChat, sender: string, timings: Timings): Promise<CaseResult> {
  const text = textForBody(chat, 256);
  const count = (PACED_RATE_PER_S * PACED_DURATION_MS) / 1000;
  const intervalMs = 1000 / PACED_RATE_PER_S;
  const startMs = sharedNowMs();
  const posts: Array<Promise<string>> = [];
  while (posts.length < count) {
    const dueCount = Math.min(count, Math.floor((sharedNowMs() - startMs) / intervalMs) + 1);
    while (posts.length < dueCount) posts.push(postOne(origin, chat, sender, text, timings));
    await sleep(1);
  }
  const ids = await Promise.all(posts);
  await timings.untilAppended(ids, CASE_TIME_LIMIT_MS);
  return timings.summarise(`paced ${PACED_RATE_PER_S}/s, 256 B bodies`, 256, ids);
}

function measureVerifyPerS(): number {
  const identity = identityFromSeed(randomBytes(32));
  const message = randomBytes(32);
  const signature = identity.sign(message);
  let count = 0;
  const start = sharedNowMs();
  while (sharedNowMs() - start < VERIFY_SAMPLE_MS) {
    for (let i = 0; i < 100; i++) verifySignature(identity.publicKey, message, signature);
    count += 100;
  }
  return (count / (sharedNowMs() - start)) * 1000;
}

async function measureStoreAppendRowsPerS(dir: string): Promise<number> {
  const store = await openEmbeddedStore({ dataDir: join(dir, 'append-sample') });
  try {
    const events: Event[] = [];
    let head: ChainPosition | undefined;
    for (let i = 0; i < STORE_SAMPLE_ROWS; i++) {
      const draft = { chatId: 'sample', senderUser: 'u@s', senderDevice: 'd', kind: EventKind.EVENT_KIND_MESSAGE_POSTED, body: randomBytes(256) };
      const event = chainEvent('origin', head, draft, { ms: i, counter: 0 });
      head = { seq: event.seq, id: event.id };
      events.push(event);
    }
    const start = sharedNowMs();
    for (let i = 0; i < events.length; i += STORE_BATCH_ROWS) await store.append({ events: events.slice(i, i + STORE_BATCH_ROWS) });
    return (events.length / (sharedNowMs() - start)) * 1000;
  } finally {
    await store.close();
  }
}

interface Pair {
  origin: TrellisNode;
  peer: ChildProcess;
  peerId: string;
}

async function startPair(dir: string, timings: Timings): Promise<Pair> {
  const [originId, peerId] = [randomUUID(), randomUUID()];
  const tokens = [randomBytes(24).toString('base64url'), randomBytes(24).toString('base64url')];
  const keyFile = (name: string) => {
    const file = join(dir, `${name}.key`);
    writeFileSync(file, generateIdentityPem(), { mode: 0o600 });
    return file;
  };
  const peer = fork(fileURLToPath(new URL('./link-peer.js', import.meta.url)), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const peerPort = new Promise<number>((resolve, reject) => {
    peer.on('message', (message: PeerAppended | { type: 'ready'; port: number }) => (message.type === 'ready' ? resolve(message.port) : timings.record(message)));
    peer.once('exit', (code) => reject(new Error(`bench peer exited with ${code}`)));
    setTimeout(() => reject(new Error('bench peer did not start')), PEER_START_LIMIT_MS).unref();
  });
  const trust = (id: string, accept: string, connect: string, endpoint?: string) => ({
    server_id: id, name: id.slice(0, 8), token_for_accepting: accept, token_for_connecting: connect, ...(endpoint ? { endpoint } : {}),
  });
  const node = (id: string, name: string, trusts: unknown[]) => ({
    server: { id, name, kind: 'CTS' }, listen: '127.0.0.1:0', identity_key_file: keyFile(name), store: { data_dir: join(dir, name) }, log_level: 'silent', trusts,
  });
  peer.send(node(peerId, 'peer', [trust(originId, tokens[0]!, tokens[1]!)]));
  const port = await peerPort;
  const origin = await TrellisNode.start(parseConfig(node(originId, 'origin', [trust(peerId, tokens[1]!, tokens[0]!, `127.0.0.1:${port}`)])), { logger: createLogger('silent') });
  return { origin, peer, peerId };
}

/** Disconnecting tells the peer to stop its node cleanly; one that lingers past the bound is killed. */
async function stopPeer(peer: ChildProcess): Promise<void> {
  if (peer.exitCode !== null || peer.signalCode !== null) return;
  const exited = new Promise((resolve) => peer.once('exit', resolve));
  if (peer.connected) peer.disconnect();
  await Promise.race([exited, sleep(PEER_STOP_LIMIT_MS)]);
  if (peer.exitCode === null && peer.signalCode === null) peer.kill('SIGKILL');
}

function printTable(results: CaseResult[], verifyPerS: number, appendRowsPerS: number): void {
  const rows = [
    ['case', 'events', 'events/s', 'p50 ms', 'p99 ms', 'target'],
    ...results.map((r) => [
      r.name, String(r.events), r.eventsPerS.toFixed(0), r.p50Ms.toFixed(2), r.p99Ms.toFixed(2),
      r.name.startsWith('paced') ? `p99 < ${TARGET_P99_MS_AT_1000} ms` : `${TARGET_EVENTS_PER_S} ev/s`,
    ]),
  ];
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  for (const row of rows) console.log(row.map((cell, column) => cell.padEnd(widths[column]!)).join('  '));
  console.log(`\nbounds measured in this run (one core each):`);
  console.log(`  Ed25519 verify (node:crypto)          ${verifyPerS.toFixed(0)}/s  — one per (chat, origin) run per batch, not per event`);
  console.log(`  PGlite batch append, 256 B, 512/stmt  ${appendRowsPerS.toFixed(0)} rows/s  — every event is appended at both ends`);
  console.log(`durability of every figure: ${DURABILITY}`);
}

async function main(): Promise<void> {
  await cryptoReady();
  const dir = mkdtempSync(join(tmpdir(), 'trellis-bench-'));
  const timings = new Timings();
  let pair: Pair | undefined;
  try {
    console.log('measuring bounds: Ed25519 verify, PGlite batch append');
    const verifyPerS = measureVerifyPerS();
    const appendRowsPerS = await measureStoreAppendRowsPerS(dir);
    console.log('starting two servers (origin here, peer in a child process)');
    pair = await startPair(dir, timings);
    const linked = pair;
    const chat = newChat([`alice@${linked.origin.id}`, `bob@${linked.peerId}`]);
    const sender = `alice@${linked.origin.id}`;
    const created = await linked.origin.post(createdDraft(chat, sender));
    await timings.untilAppended([created.id.toString('hex')], PEER_START_LIMIT_MS);
    const results: CaseResult[] = [];
    for (const bodyBytes of [256, 4096] as const) {
      console.log(`case: throughput, ${bodyBytes} B bodies, ${THROUGHPUT_EVENTS[bodyBytes]} events`);
      results.push(await throughputCase(linked.origin, chat, sender, bodyBytes, timings));
    }
    console.log(`case: paced ${PACED_RATE_PER_S}/s for ${PACED_DURATION_MS / 1000} s`);
    results.push(await pacedCase(linked.origin, chat, sender, timings));
    console.log('');
    printTable(results, verifyPerS, appendRowsPerS);
    const report = { date: new Date().toISOString(), node: process.version, cpus: cpus().length, durability: DURABILITY, bounds: { ed25519VerifyPerS: verifyPerS, pgliteAppendRowsPerS: appendRowsPerS }, targets: { eventsPerS: TARGET_EVENTS_PER_S, p99MsAt1000PerS: TARGET_P99_MS_AT_1000 }, cases: results };
    const out = fileURLToPath(new URL('../../bench/results/link.json', import.meta.url));
    mkdirSync(join(out, '..'), { recursive: true });
    writeFileSync(out, JSON.stringify(report, null, 2) + '\n');
    console.log(`\nwrote ${out}`);
  } finally {
    await pair?.origin.stop().catch(() => undefined);
    if (pair) await stopPeer(pair.peer);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(`bench: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
