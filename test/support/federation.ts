import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { cryptoReady, generateIdentityPem } from '../../crypto/index.js';
import { createLogger, parseConfig, TrellisNode, type NodeConfig } from '../../router/index.js';
import type { EventStore } from '../../store/index.js';
import { messageDraft, type TestChat } from './devices.js';
import type { TestEngine } from './engines.js';

/** Captures every log line of the nodes of a test, to search them (for tokens, for bodies). */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    done();
  }
  get text(): string {
    return this.lines.join('\n');
  }
}

/**
 * Ports for nodes whose peers must know them before they start. Taken below the kernel's
 * ephemeral range (32768 and up here), where no outgoing connection of a parallel test
 * takes its local port between our probe and the node's bind, and in a block of its own
 * per vitest worker, so two workers never hand out the same port.
 */
const PORTS_PER_WORKER = 800;
// TEST_PORT_BASE moves the blocks, for two checkouts' suites on one machine at once.
const WORKER_PORTS_FROM = Number(process.env.TEST_PORT_BASE ?? 20_000) + (Number(process.env.VITEST_POOL_ID ?? 0) % 15) * PORTS_PER_WORKER;
let nextPortOffset = 0;

export async function freePort(): Promise<number> {
  for (let tries = 0; tries < PORTS_PER_WORKER; tries++) {
    const port = WORKER_PORTS_FROM + (nextPortOffset++ % PORTS_PER_WORKER);
    if (await canListen(port)) return port;
  }
  throw new Error(`no free port in ${WORKER_PORTS_FROM}..${WORKER_PORTS_FROM + PORTS_PER_WORKER - 1}`);
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * Quick redials for tests. The dead-link bound stays seconds long: PGlite runs on the
 * event loop, and opening a store blocks it for a second or more.
 */
export const FAST_LINK = {
  heartbeat_interval_ms: 500,
  dead_after_heartbeats: 8,
  reconnect_min_ms: 20,
  reconnect_max_ms: 300,
  handshake_timeout_ms: 2_000,
};

export interface SideSpec {
  name: string;
  port: number;
  id: string;
  keyFile: string;
  dataDir?: string;
  acceptToken: string;
  connectToken: string;
}

export interface PairOptions {
  /** Keep logs on disk so a node can be stopped and restarted. */
  persistent?: boolean;
  /** Override what B presents when connecting (a wrong token). */
  bConnectToken?: string;
  /** A only accepts; every link is B's dial. */
  aOnlyAccepts?: boolean;
  /** B only accepts; every link is A's dial (through the proxy, if one is set). */
  bOnlyAccepts?: boolean;
  /** Where A dials B (a proxy in front of B). */
  aDialsB?: (bPort: number) => Promise<string>;
  tls?: NodeConfig['tls'];
  bTls?: NodeConfig['tls'];
  /** A's store, opened by the test (to reach its SQL); A closes it when it stops. */
  aStore?: EventStore;
  /** Both stores on this engine (each side at a place of its own, kept across restarts); else PGlite from the config. */
  engine?: TestEngine;
  link?: Partial<NodeConfig['link']>;
}

/** Two CTS nodes, paired by a token pair, on free loopback ports, in a temporary folder. */
export class TestPair {
  readonly logs = new LogCapture();
  readonly dir = mkdtempSync(join(tmpdir(), 'trellis-pair-'));
  a!: TrellisNode;
  b!: TrellisNode;
  aConfig!: NodeConfig;
  bConfig!: NodeConfig;
  readonly tokens = { aAccepts: randomBytes(24).toString('base64url'), bAccepts: randomBytes(24).toString('base64url') };
  private aStore: EventStore | undefined;
  private engine: { engine: TestEngine; a: string; b: string } | undefined;

  static async start(options: PairOptions = {}): Promise<TestPair> {
    await cryptoReady();
    const pair = new TestPair();
    pair.aStore = options.aStore;
    if (options.engine) pair.engine = { engine: options.engine, a: options.engine.place(), b: options.engine.place() };
    await pair.configure(options);
    [pair.a, pair.b] = await Promise.all([pair.startA(), pair.startB()]);
    return pair;
  }

  private async configure(options: PairOptions): Promise<void> {
    const [aPort, bPort] = [await freePort(), await freePort()];
    const a = this.side('cts-a', aPort, options.persistent);
    const b = this.side('cts-b', bPort, options.persistent);
    const bEndpoint = options.aDialsB ? await options.aDialsB(bPort) : `127.0.0.1:${bPort}`;
    this.aConfig = config(a, b, options.aOnlyAccepts ? undefined : bEndpoint, this.tokens.aAccepts, this.tokens.bAccepts, options, options.tls);
    this.bConfig = config(b, a, options.bOnlyAccepts ? undefined : `127.0.0.1:${aPort}`, this.tokens.bAccepts, options.bConnectToken ?? this.tokens.aAccepts, options, options.bTls ?? options.tls);
  }

  private side(name: string, port: number, persistent?: boolean): { name: string; port: number; id: string; keyFile: string; dataDir?: string } {
    const keyFile = join(this.dir, `${name}.key`);
    writeFileSync(keyFile, generateIdentityPem(), { mode: 0o600 });
    const dataDir = persistent ? join(this.dir, `${name}-data`) : undefined;
    if (dataDir) mkdirSync(dataDir);
    return { name, port, id: randomUUID(), keyFile, ...(dataDir ? { dataDir } : {}) };
  }

  async startA(): Promise<TrellisNode> {
    const store = this.aStore ?? (await this.engine?.engine.open(this.engine.a));
    return TrellisNode.start(this.aConfig, { logger: createLogger('info', this.logs), ...(store ? { store } : {}) });
  }

  async startB(): Promise<TrellisNode> {
    const store = await this.engine?.engine.open(this.engine.b);
    return TrellisNode.start(this.bConfig, { logger: createLogger('info', this.logs), ...(store ? { store } : {}) });
  }

  /** Stops both nodes and keeps their data directories (to read the stored bytes). */
  async stopNodes(): Promise<void> {
    await Promise.allSettled([this.a?.stop(), this.b?.stop()]);
  }

  async stop(): Promise<void> {
    await this.stopNodes();
    await this.engine?.engine.cleanUp();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** One node of a kind, with no trusts yet (a test attaches its peers), on a free loopback port, in a temporary folder. */
export class LoneNode {
  readonly logs = new LogCapture();
  readonly dir = mkdtempSync(join(tmpdir(), 'trellis-lone-'));
  node!: TrellisNode;

  /** `extra`: more of the config as its YAML writes it (an upstream's `ets_*` keys, say). */
  static async start(kind: NodeConfig['server']['kind'], link: Partial<NodeConfig['link']> = {}, extra: Record<string, unknown> = {}): Promise<LoneNode> {
    await cryptoReady();
    const lone = new LoneNode();
    const keyFile = join(lone.dir, 'identity.key');
    writeFileSync(keyFile, generateIdentityPem(), { mode: 0o600 });
    const config = parseConfig({
      server: { id: randomUUID(), name: `lone-${kind.toLowerCase()}`, kind },
      listen: `127.0.0.1:${await freePort()}`,
      identity_key_file: keyFile,
      store: { memory: true },
      link: { ...FAST_LINK, ...link },
      trusts: [],
      ...extra,
    });
    lone.node = await TrellisNode.start(config, { logger: createLogger('info', lone.logs) });
    return lone;
  }

  async stop(): Promise<void> {
    await this.node?.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function config(
  self: { name: string; port: number; id: string; keyFile: string; dataDir?: string },
  peer: { name: string; id: string },
  peerEndpoint: string | undefined,
  acceptToken: string,
  connectToken: string,
  options: PairOptions,
  tls: NodeConfig['tls'] | undefined,
): NodeConfig {
  return parseConfig({
    server: { id: self.id, name: self.name, kind: 'CTS' },
    listen: `127.0.0.1:${self.port}`,
    identity_key_file: self.keyFile,
    store: self.dataDir ? { data_dir: self.dataDir } : { memory: true },
    ...(tls ? { tls } : {}),
    link: { ...FAST_LINK, ...options.link },
    trusts: [{ server_id: peer.id, name: peer.name, ...(peerEndpoint ? { endpoint: peerEndpoint } : {}), token_for_accepting: acceptToken, token_for_connecting: connectToken }],
  });
}

/**
 * Polls until `check` holds; fails with `what` (and what `explain` says of the state
 * it gave up in) after `timeoutMs`. Bounded, so a test always stops.
 */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000, explain?: () => Promise<string>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${explain ? `: ${await explain()}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Posts `count` messages from `sender` on `node`, `inFlight` at a time so the node can group-commit them. */
export async function postMessages(node: TrellisNode, chat: TestChat, sender: string, count: number, inFlight = 256): Promise<void> {
  for (let first = 0; first < count; first += inFlight) {
    const size = Math.min(inFlight, count - first);
    await Promise.all(Array.from({ length: size }, (_, i) => node.post(messageDraft(chat, sender, `message ${first + i} from ${sender}`))));
  }
}

/** Both stores hold `count` events of the chat, with equal digests. */
export async function converged(pair: TestPair, chatId: string, count: number): Promise<boolean> {
  const [inA, inB] = [await pair.a.store.chatSummary(chatId), await pair.b.store.chatSummary(chatId)];
  return inA.events === count && inB.events === count && inA.digest.equals(inB.digest);
}

/** Waits (bounded) for both logs of a chat to hold `count` events with equal digests. */
export async function waitForConvergence(pair: TestPair, chatId: string, count: number, timeoutMs = 90_000): Promise<void> {
  const explain = async () => {
    const [inA, inB] = [await pair.a.store.chatSummary(chatId), await pair.b.store.chatSummary(chatId)];
    const links = [pair.a, pair.b].map((node) => node.linkStatus().map((l) => `${node.config.server.name}→${l.name} ${l.status}`).join()).join(', ');
    const gaps = [await pair.a.store.heldSummary(), await pair.b.store.heldSummary()].map((g) => g.length);
    const stats = [pair.a, pair.b].map((node) => JSON.stringify(node.link(node === pair.a ? pair.b.id : pair.a.id)?.stats ?? null)).join(' / ');
    const warnings = pair.logs.lines.filter((line) => !line.includes('"level":30')).slice(-8).join('\n');
    return `A holds ${inA.events}/${count}, B ${inB.events}/${count}; links ${links}; link stats ${stats}; chains with held events A ${gaps[0]}, B ${gaps[1]}\n${warnings}`;
  };
  await waitFor('both logs complete and equal', () => converged(pair, chatId, count), timeoutMs, explain);
}
