/**
 * Trellis servers joined by trust links over real gRPC on 127.0.0.1, each on a durable
 * PGlite store in its own data directory and its own process: the origin in this one,
 * every other server in a forked child (bench/link-peer.ts). One hop is two partner CTS;
 * three hops is the path of a public chat between two contours: the origin CTS, its ETS,
 * the RTS, and a CTS under that RTS.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { generateIdentityPem } from '../crypto/index.js';
import { createLogger, parseConfig, TrellisNode } from '../router/index.js';
import { cpuMs } from './cpu.js';
import { pgliteBench, type BenchEngine, type EngineName } from './engines.js';
import type { AppendReport, FromPeer, ToPeer } from './peer-messages.js';
import { openTimedStore, type AppendTime } from './store-timer.js';

/** Opening both stores (PGlite start and migrations) and the handshake fit in this. */
export const PAIR_START_LIMIT_MS = 60_000;
/** A peer that has not exited this long after being told to stop is killed. */
export const PEER_STOP_LIMIT_MS = 10_000;

export type { AppendReport };

export type Hops = 1 | 3;

/** CPU time each process has used so far, in ms (the transits' together), and each one's time in store appends (the transits' together). */
export interface ChainUsage {
  origin: number;
  peer: number;
  transits: number;
  originStore: AppendTime;
  peerStore: AppendTime;
  transitsStore: AppendTime;
}

type PeerUsage = Extract<FromPeer, { type: 'cpu' }>;

export interface LinkedChain {
  readonly origin: TrellisNode;
  /** The engine every server of the chain stores on. */
  readonly engine: EngineName;
  /** 'os' when every server's embedded store runs without fsync (see engines.ts). */
  readonly durability?: 'os';
  /** The destination server, and the origin's next hop toward it (the destination itself for one hop). */
  readonly peerId: string;
  readonly firstHopId: string;
  readonly hops: Hops;
  /** Called with every durable append of the origin's events at the destination. */
  onPeerAppended(listener: (report: AppendReport) => void): void;
  /** CPU time each process has used so far, in ms: the origin's, the destination's, and the transits' together. */
  cpuMs(): Promise<ChainUsage>;
  /** Resident memory of each process now, in bytes: the origin's (with the bench), the destination's, each transit's. */
  rssBytes(): Promise<{ origin: number; peer: number; transits: number[] }>;
  stop(): Promise<void>;
}

/**
 * BENCH_CPU_PROFILE_DIR=dir: every server process writes a V8 CPU profile there when it
 * stops (open it in Chrome DevTools), so where a case spends its time can be read again
 * from the same command. Profiling slows the servers: figures of such a run are not results.
 */
function profileArgs(): string[] {
  const dir = process.env.BENCH_CPU_PROFILE_DIR;
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [];
}

/** Children still running, killed on any exit of this process (an error, Ctrl-C). */
const running = new Set<ChildProcess>();
process.once('exit', () => running.forEach((child) => child.kill('SIGKILL')));
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

export function keyFile(dir: string, name: string): string {
  const file = join(dir, `${name}.key`);
  writeFileSync(file, generateIdentityPem(), { mode: 0o600 });
  return file;
}

interface Server {
  id: string;
  name: string;
  kind: 'CTS' | 'ETS' | 'RTS';
}

/** One trust link: the lower side dials (`endpoint`), each side knows the other by the tokens. */
interface Pairing {
  tokens: { [serverId: string]: string };
}

const pairing = (a: Server, b: Server): Pairing => ({ tokens: { [a.id]: randomBytes(24).toString('base64url'), [b.id]: randomBytes(24).toString('base64url') } });

/** A node's config document, as its YAML would say it: its upstream (if any) and its other trusts. */
function nodeDocument(dir: string, self: Server, store: Record<string, string>, links: Array<{ peer: Server; pairing: Pairing; endpoint?: string; upstream?: boolean }>): unknown {
  const accept = (link: (typeof links)[number]) => link.pairing.tokens[self.id]!;
  const connect = (link: (typeof links)[number]) => link.pairing.tokens[link.peer.id]!;
  const upstream = links.find((link) => link.upstream);
  const prefix = upstream?.peer.kind === 'ETS' ? 'ets' : 'rts';
  return {
    server: { id: self.id, name: self.name, kind: self.kind },
    listen: '127.0.0.1:0',
    identity_key_file: keyFile(dir, self.name),
    store,
    log_level: 'silent',
    ...(upstream
      ? { [`${prefix}_id`]: upstream.peer.id, [`${prefix}_name`]: upstream.peer.name, [`${prefix}_host`]: upstream.endpoint, [`${prefix}_token`]: `${accept(upstream)}:${connect(upstream)}` }
      : {}),
    trusts: links
      .filter((link) => !link.upstream)
      .map((link) => ({ server_id: link.peer.id, name: link.peer.name, kind: link.peer.kind, token_for_accepting: accept(link), token_for_connecting: connect(link), ...(link.endpoint ? { endpoint: link.endpoint } : {}) })),
  };
}

function withinLimit<T>(what: string, limitMs: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not done within ${limitMs} ms`)), limitMs)));
  return Promise.race([work, limit]).finally(() => clearTimeout(timer));
}

/** A Trellis server in a child process (bench/link-peer.ts), started with a config document. */
export class PeerProcess {
  readonly child: ChildProcess;
  private stopping = false;
  private readonly listeners: Array<(report: AppendReport) => void> = [];
  private readonly usageAnswers: Array<(usage: PeerUsage) => void> = [];
  readonly ready: Promise<number>;

  constructor(config: unknown, report: boolean) {
    // --expose-gc: memory is read after a collection, or startup garbage would count (bench/link-peer.ts).
    this.child = fork(fileURLToPath(new URL('./link-peer.js', import.meta.url)), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--expose-gc', ...profileArgs()] });
    running.add(this.child);
    this.child.once('exit', () => running.delete(this.child));
    this.ready = new Promise((resolve, reject) => {
      this.child.on('message', (message: FromPeer) => {
        if (message.type === 'ready') resolve(message.port);
        else if (message.type === 'failed') reject(new Error(`bench peer: ${message.message}`));
        else if (message.type === 'cpu') this.usageAnswers.shift()?.(message);
        else for (const report of message.reports) this.listeners.forEach((listener) => listener(report));
      });
      this.child.once('exit', (code, signal) => reject(new Error(`bench peer exited (${signal ?? code})`)));
    });
    this.ready.catch(() => undefined);
    // A peer lost in the middle of a run would leave the run waiting for its time limit: end now.
    void this.ready.then(() =>
      this.child.once('exit', (code, signal) => {
        if (this.stopping) return;
        console.error(`bench: a server process exited during the run (${signal ?? code})`);
        process.exit(1);
      }),
    );
    this.send({ type: 'start', config, report });
  }

  send(message: ToPeer): void {
    if (this.child.connected) this.child.send(message);
  }

  onAppended(listener: (report: AppendReport) => void): void {
    this.listeners.push(listener);
  }

  /** CPU time used so far and resident memory now. */
  usage(): Promise<PeerUsage> {
    const answer = new Promise<PeerUsage>((resolve) => this.usageAnswers.push(resolve));
    this.send({ type: 'cpu' });
    return withinLimit('peer cpu time', PEER_STOP_LIMIT_MS, answer);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.stopping = true;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.send({ type: 'stop' });
    await withinLimit('peer stop', PEER_STOP_LIMIT_MS, exited).catch(() => this.child.kill('SIGKILL'));
  }
}

/** Resolves once the origin has a live route to the destination (reachability may take a round trip per hop). */
async function untilRouted(origin: TrellisNode, destinationId: string, nextHopId: string): Promise<void> {
  while (origin.routing.nextHop(destinationId, 0) !== nextHopId || !origin.link(nextHopId)) await sleep(20);
}

const endpointOf = (port: number) => `127.0.0.1:${port}`;

/**
 * Starts the servers of a chain, children first (each dials the ones started before it),
 * then the origin, and resolves once the origin routes to the destination.
 */
export async function startChain(dir: string, hops: Hops, engine: BenchEngine = pgliteBench): Promise<LinkedChain> {
  mkdirSync(dir, { recursive: true });
  const store = async (server: Server) => (await engine.fresh(dir, server.name)).config;
  const origin: Server = { id: randomUUID(), name: 'origin', kind: 'CTS' };
  const destination: Server = { id: randomUUID(), name: 'destination', kind: 'CTS' };
  const children: PeerProcess[] = [];
  let originNode: TrellisNode | undefined;
  let originStoreTime: AppendTime = { ms: 0, appends: 0 };
  let firstHop: Server;
  let peer: PeerProcess;
  /** In path order: the origin's next hop first. */
  let transits: PeerProcess[] = [];
  try {
    let originDocument: unknown;
    if (hops === 1) {
      const link = pairing(origin, destination);
      peer = new PeerProcess(nodeDocument(dir, destination, await store(destination), [{ peer: origin, pairing: link }]), true);
      children.push(peer);
      const port = await withinLimit('destination start', PAIR_START_LIMIT_MS, peer.ready);
      originDocument = nodeDocument(dir, origin, await store(origin), [{ peer: destination, pairing: link, endpoint: endpointOf(port) }]);
      firstHop = destination;
    } else {
      const ets: Server = { id: randomUUID(), name: 'ets', kind: 'ETS' };
      const rts: Server = { id: randomUUID(), name: 'rts', kind: 'RTS' };
      const [originEts, etsRts, rtsDestination] = [pairing(origin, ets), pairing(ets, rts), pairing(rts, destination)];
      const rtsProcess = new PeerProcess(nodeDocument(dir, rts, await store(rts), [{ peer: ets, pairing: etsRts }, { peer: destination, pairing: rtsDestination }]), false);
      children.push(rtsProcess);
      const rtsEndpoint = endpointOf(await withinLimit('rts start', PAIR_START_LIMIT_MS, rtsProcess.ready));
      const etsProcess = new PeerProcess(nodeDocument(dir, ets, await store(ets), [{ peer: rts, pairing: etsRts, endpoint: rtsEndpoint, upstream: true }, { peer: origin, pairing: originEts }]), false);
      peer = new PeerProcess(nodeDocument(dir, destination, await store(destination), [{ peer: rts, pairing: rtsDestination, endpoint: rtsEndpoint, upstream: true }]), true);
      children.push(peer, etsProcess);
      transits = [etsProcess, rtsProcess];
      const [etsPort] = await withinLimit('ets and destination start', PAIR_START_LIMIT_MS, Promise.all([etsProcess.ready, peer.ready]));
      originDocument = nodeDocument(dir, origin, await store(origin), [{ peer: ets, pairing: originEts, endpoint: endpointOf(etsPort), upstream: true }]);
      firstHop = ets;
    }
    const originConfig = parseConfig(originDocument, 'bench origin');
    const timed = await openTimedStore(originConfig);
    originStoreTime = timed.time;
    originNode = await TrellisNode.start(originConfig, { store: timed.store, logger: createLogger('silent') });
    await withinLimit('route to the destination', PAIR_START_LIMIT_MS, untilRouted(originNode, destination.id, firstHop.id));
  } catch (error) {
    await originNode?.stop().catch(() => undefined);
    await Promise.allSettled(children.map((child) => child.stop()));
    await engine.cleanUp().catch(() => undefined);
    throw error;
  }
  const started = originNode;
  return {
    origin: started,
    engine: engine.name,
    ...(engine.durability ? { durability: engine.durability } : {}),
    peerId: destination.id,
    firstHopId: firstHop.id,
    hops,
    onPeerAppended: (listener) => peer.onAppended(listener),
    cpuMs: async () => {
      const [peerUsage, ...transitUsage] = await Promise.all([peer, ...transits].map((child) => child.usage()));
      return {
        origin: cpuMs(),
        peer: peerUsage!.cpuMs,
        transits: transitUsage.reduce((sum, usage) => sum + usage.cpuMs, 0),
        originStore: { ...originStoreTime },
        peerStore: peerUsage!.store,
        transitsStore: transitUsage.reduce((sum, usage) => ({ ms: sum.ms + usage.store.ms, appends: sum.appends + usage.store.appends }), { ms: 0, appends: 0 }),
      };
    },
    rssBytes: async () => {
      const [peerUsage, ...transitUsage] = await Promise.all([peer, ...transits].map((child) => child.usage()));
      return { origin: process.memoryUsage.rss(), peer: peerUsage!.rssBytes, transits: transitUsage.map((usage) => usage.rssBytes) };
    },
    stop: async () => {
      await Promise.allSettled([started.stop(), ...children.map((child) => child.stop())]);
      await engine.cleanUp();
    },
  };
}
