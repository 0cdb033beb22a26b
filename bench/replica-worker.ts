/**
 * One replica of a server in a process of its own, as `trellis start` wires it (the bench
 * forks its build, test/replicas.test.ts its source with `node --import tsx`): PostgreSQL from DATABASE_URL, leases in Redis from REDIS_URL.
 * The test drives it over IPC (post messages, stop) and hears when its links go up and
 * down; its log goes to a file the test reads. Exits when told to or when the test goes away.
 */
import { pino } from 'pino';
import { cryptoReady } from '../crypto/index.js';
import { openReplication } from '../gateways/redis/index.js';
import { createLogger, TrellisNode, type LinkEnd, type LinkSession, type NodeConfig } from '../router/index.js';
import type { StoredEvent } from '../store/index.js';
import { messageDraft, type DeviceChat } from '../gateways/devices/index.js';

export type ReplicaRequest = { op: 'post'; chat: DeviceChat; sender: string; count: number; inFlight: number } | { op: 'stop' };

export type ReplicaMessage =
  | { type: 'ready'; replica: string }
  | { type: 'link-up'; peer: string }
  | { type: 'link-down'; peer: string; code: string; message: string }
  | { type: 'posted'; count: number }
  /** The local seqs of what this replica appended (its own posts, or what a link it holds brought). */
  | { type: 'appended'; localSeqs: number[] }
  | { type: 'failed'; message: string };

const send = (message: ReplicaMessage) => process.send?.(message);

async function post(node: TrellisNode, request: Extract<ReplicaRequest, { op: 'post' }>): Promise<void> {
  for (let first = 0; first < request.count; first += request.inFlight) {
    const size = Math.min(request.inFlight, request.count - first);
    await Promise.all(Array.from({ length: size }, (_, i) => node.post(messageDraft(request.chat, request.sender, `message ${first + i} from ${request.sender}`))));
  }
}

async function main(): Promise<void> {
  await cryptoReady();
  const { config, logFile } = await new Promise<{ config: NodeConfig; logFile: string }>((resolve) => process.once('message', resolve));
  const destination = pino.destination({ dest: logFile, sync: true, append: true });
  const replication = await openReplication(config, process.env);
  if (!replication) throw new Error('REDIS_URL is not set: not a replica');
  const node = await TrellisNode.start(config, { leases: replication.leases, logger: createLogger('info', destination) });
  replication.attach(node);
  node.on('link-up', (session: LinkSession) => send({ type: 'link-up', peer: session.peerId }));
  node.on('appended', (events: StoredEvent[]) => send({ type: 'appended', localSeqs: events.map((event) => event.localSeq) }));
  node.on('link-down', (session: LinkSession, end: LinkEnd) => send({ type: 'link-down', peer: session.peerId, code: end.code, message: end.message }));
  const stop = () => {
    setTimeout(() => process.exit(0), 5_000).unref();
    void node.stop().finally(() => replication.close().finally(() => process.exit(0)));
  };
  process.once('disconnect', stop);
  process.on('message', (request: ReplicaRequest) => {
    if (request.op === 'stop') return stop();
    post(node, request).then(
      () => send({ type: 'posted', count: request.count }),
      (error: Error) => send({ type: 'failed', message: error.message }),
    );
  });
  send({ type: 'ready', replica: replication.leases.replicaId });
}

main().catch((error: unknown) => {
  send({ type: 'failed', message: error instanceof Error ? error.message : String(error) });
  process.exit(1);
});
