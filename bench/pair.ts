/**
 * Two Trellis servers joined by one trust link over real gRPC on 127.0.0.1, each on a
 * durable PGlite store in its own data directory: the origin in this process, the peer
 * in a forked child (bench/link-peer.ts) so each has a core of its own.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateIdentityPem } from '../crypto/index.js';
import { createLogger, parseConfig, TrellisNode } from '../router/index.js';
import { cpuMs } from './cpu.js';
import type { FromPeer, ToPeer } from './peer-messages.js';

/** Opening both stores (PGlite start and migrations) and the handshake fit in this. */
export const PAIR_START_LIMIT_MS = 60_000;
/** A peer that has not exited this long after being told to stop is killed. */
export const PEER_STOP_LIMIT_MS = 10_000;

export type AppendReport = Extract<FromPeer, { type: 'appended' }>;

export interface LinkedPair {
  readonly origin: TrellisNode;
  readonly peerId: string;
  /** Called with every durable append of the origin's events at the peer. */
  onPeerAppended(listener: (report: AppendReport) => void): void;
  /** CPU time each server's process has used so far, in ms. */
  cpuMs(): Promise<{ origin: number; peer: number }>;
  stop(): Promise<void>;
}

/** Children still running, killed on any exit of this process (an error, Ctrl-C). */
const running = new Set<ChildProcess>();
process.once('exit', () => running.forEach((child) => child.kill('SIGKILL')));
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

function keyFile(dir: string, name: string): string {
  const file = join(dir, `${name}.key`);
  writeFileSync(file, generateIdentityPem(), { mode: 0o600 });
  return file;
}

interface Side {
  id: string;
  name: string;
}

/** A config document in the shape of a node's YAML; the origin dials, the peer only accepts. */
function nodeDocument(dir: string, self: Side, other: Side, tokens: { accept: string; connect: string }, endpoint?: string): unknown {
  return {
    server: { id: self.id, name: self.name, kind: 'CTS' },
    listen: '127.0.0.1:0',
    identity_key_file: keyFile(dir, self.name),
    store: { data_dir: join(dir, self.name) },
    log_level: 'silent',
    trusts: [{ server_id: other.id, name: other.name, token_for_accepting: tokens.accept, token_for_connecting: tokens.connect, ...(endpoint ? { endpoint } : {}) }],
  };
}

function withinLimit<T>(what: string, limitMs: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not done within ${limitMs} ms`)), limitMs)));
  return Promise.race([work, limit]).finally(() => clearTimeout(timer));
}

class PeerProcess {
  readonly child: ChildProcess;
  private stopping = false;
  private readonly listeners: Array<(report: AppendReport) => void> = [];
  private readonly cpuAnswers: Array<(cpuMs: number) => void> = [];
  readonly ready: Promise<number>;

  constructor() {
    this.child = fork(fileURLToPath(new URL('./link-peer.js', import.meta.url)), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    running.add(this.child);
    this.child.once('exit', () => running.delete(this.child));
    this.ready = new Promise((resolve, reject) => {
      this.child.on('message', (message: FromPeer) => {
        if (message.type === 'ready') resolve(message.port);
        else if (message.type === 'failed') reject(new Error(`bench peer: ${message.message}`));
        else if (message.type === 'cpu') this.cpuAnswers.shift()?.(message.cpuMs);
        else this.listeners.forEach((listener) => listener(message));
      });
      this.child.once('exit', (code, signal) => reject(new Error(`bench peer exited (${signal ?? code})`)));
    });
    this.ready.catch(() => undefined);
    // A peer lost in the middle of a run would leave the run waiting for its time limit: end now.
    void this.ready.then(() =>
      this.child.once('exit', (code, signal) => {
        if (this.stopping) return;
        console.error(`bench: the peer process exited during the run (${signal ?? code})`);
        process.exit(1);
      }),
    );
  }

  send(message: ToPeer): void {
    if (this.child.connected) this.child.send(message);
  }

  onAppended(listener: (report: AppendReport) => void): void {
    this.listeners.push(listener);
  }

  cpuMs(): Promise<number> {
    const answer = new Promise<number>((resolve) => this.cpuAnswers.push(resolve));
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

function untilLinked(origin: TrellisNode, peerId: string): Promise<void> {
  if (origin.link(peerId)) return Promise.resolve();
  return new Promise((resolve) => {
    const onUp = () => {
      if (!origin.link(peerId)) return;
      origin.off('link-up', onUp);
      resolve();
    };
    origin.on('link-up', onUp);
  });
}

/** Starts the peer, then the origin dialling it, and resolves once their link is up. */
export async function startPair(dir: string): Promise<LinkedPair> {
  const origin: Side = { id: randomUUID(), name: 'origin' };
  const peer: Side = { id: randomUUID(), name: 'peer' };
  const tokens = { originAccepts: randomBytes(24).toString('base64url'), peerAccepts: randomBytes(24).toString('base64url') };
  const peerProcess = new PeerProcess();
  let originNode: TrellisNode | undefined;
  try {
    peerProcess.send({ type: 'start', config: nodeDocument(dir, peer, origin, { accept: tokens.peerAccepts, connect: tokens.originAccepts }) });
    const port = await withinLimit('peer start', PAIR_START_LIMIT_MS, peerProcess.ready);
    const document = nodeDocument(dir, origin, peer, { accept: tokens.originAccepts, connect: tokens.peerAccepts }, `127.0.0.1:${port}`);
    originNode = await TrellisNode.start(parseConfig(document, 'bench origin'), { logger: createLogger('silent') });
    await withinLimit('link up', PAIR_START_LIMIT_MS, untilLinked(originNode, peer.id));
  } catch (error) {
    await originNode?.stop().catch(() => undefined);
    await peerProcess.stop();
    throw error;
  }
  const started = originNode;
  return {
    origin: started,
    peerId: peer.id,
    onPeerAppended: (listener) => peerProcess.onAppended(listener),
    cpuMs: async () => ({ origin: cpuMs(), peer: await peerProcess.cpuMs() }),
    stop: async () => {
      await Promise.allSettled([started.stop(), peerProcess.stop()]);
    },
  };
}
