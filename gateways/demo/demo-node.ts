import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { EventDraft } from '../../crypto/index.js';
import { createLogger, TrellisNode, type ChatRouteView, type NodeConfig } from '../../router/index.js';
import type { StoredEvent } from '../../store/index.js';
import { startAdminServer, type AdminServer } from '../admin/index.js';
import { sharedNowMs } from './latency.js';

/**
 * One server of the demo as the demo drives it: in this process (a TrellisNode) or in a
 * process of its own (`trellis demo --processes`), through the same calls.
 */
export interface DemoNode {
  readonly config: NodeConfig;
  readonly id: string;
  /** Posts a device's draft; answers the event id (hex) once it is durable. */
  post(draft: EventDraft): Promise<string>;
  summary(chatId: string): Promise<{ events: number; digest: string }>;
  /** The ids (hex) of every event of a chat the node holds, in the log's order, copies included. */
  eventIds(chatId: string): Promise<string[]>;
  /** The body of an origin's newest event in a chat, as a member device would receive it. */
  lastBody(chatId: string, origin: string): Promise<Uint8Array | undefined>;
  chatRoute(chatId: string): Promise<ChatRouteView>;
  setTrustStatus(serverId: string, status: 'enabled' | 'disabled'): Promise<void>;
  /** Whether each trust's link is up, by server id. */
  links(): Promise<Record<string, boolean>>;
  /** Whether a default route leads to each of these servers. */
  routesTo(serverIds: readonly string[]): Promise<boolean>;
  /** Called at each durable append with when it happened and what it held. */
  onAppended(listener: (atMs: number, events: Array<{ id: string; chatId: string }>) => void): void;
  stop(): Promise<void>;
}

export type WorkerRequest =
  | { op: 'post'; draft: EventDraft }
  | { op: 'summary'; chatId: string }
  | { op: 'eventIds'; chatId: string }
  | { op: 'lastBody'; chatId: string; origin: string }
  | { op: 'chatRoute'; chatId: string }
  | { op: 'setTrustStatus'; serverId: string; status: 'enabled' | 'disabled' }
  | { op: 'links' }
  | { op: 'routesTo'; serverIds: string[] }
  | { op: 'stop' };

/** The calls of a DemoNode on a running node: the in-process one and the worker both answer through this. */
export async function answer(node: TrellisNode, request: WorkerRequest): Promise<unknown> {
  switch (request.op) {
    case 'post':
      return (await node.post(request.draft)).id.toString('hex');
    case 'summary': {
      const { events, digest } = await node.store.chatSummary(request.chatId);
      return { events, digest: digest.toString('hex') };
    }
    case 'eventIds':
      return (await node.store.chatLog(request.chatId)).map((event) => event.id.toString('hex'));
    case 'lastBody':
      return (await node.store.chatLog(request.chatId)).findLast((event) => event.origin === request.origin)?.body;
    case 'chatRoute':
      return node.inspect.chatRoute(request.chatId);
    case 'setTrustStatus':
      return node.setTrustStatus(request.serverId, request.status);
    case 'links':
      return Object.fromEntries(node.config.trusts.map((trust) => [trust.server_id, node.link(trust.server_id) !== undefined]));
    case 'routesTo':
      return request.serverIds.every((id) => id === node.id || node.routing.nextHop(id, 0) !== undefined);
    case 'stop':
      return undefined;
  }
}

export function appendedSummary(events: readonly StoredEvent[]): Array<{ id: string; chatId: string }> {
  return events.map((event) => ({ id: event.id.toString('hex'), chatId: event.chatId }));
}

/** A DemoNode whose calls all go through one `call` (a direct answer, or a message to the node's process). */
function demoNode(
  config: NodeConfig,
  id: string,
  call: <T>(request: WorkerRequest) => Promise<T>,
  onAppended: DemoNode['onAppended'],
  stop: () => Promise<void>,
): DemoNode {
  return {
    config,
    id,
    post: (draft) => call({ op: 'post', draft }),
    summary: (chatId) => call({ op: 'summary', chatId }),
    eventIds: (chatId) => call({ op: 'eventIds', chatId }),
    lastBody: (chatId, origin) => call({ op: 'lastBody', chatId, origin }),
    chatRoute: (chatId) => call({ op: 'chatRoute', chatId }),
    setTrustStatus: (serverId, status) => call({ op: 'setTrustStatus', serverId, status }),
    links: () => call({ op: 'links' }),
    routesTo: (serverIds) => call({ op: 'routesTo', serverIds: [...serverIds] }),
    onAppended,
    stop,
  };
}

/** A node in this process, with its admin service when its config has one. */
export async function inProcessNode(config: NodeConfig, logger: ReturnType<typeof createLogger>): Promise<DemoNode> {
  const node = await TrellisNode.start(config, { logger });
  let admin: AdminServer | undefined;
  try {
    if (config.admin) admin = await startAdminServer(node, config.admin.listen);
  } catch (error) {
    await node.stop();
    throw error;
  }
  return demoNode(
    config,
    node.id,
    <T>(request: WorkerRequest) => answer(node, request) as Promise<T>,
    (listener) => node.on('appended', (events: StoredEvent[]) => listener(sharedNowMs(), appendedSummary(events))),
    async () => {
      await admin?.stop();
      await node.stop();
    },
  );
}

/** A node's process that has not exited this long after being told to stop is killed. */
const WORKER_STOP_LIMIT_MS = 10_000;

/** What a node's process tells the demo: answers by request number, and its appends as they happen. */
export type WorkerMessage =
  /** Ready, with the ports it bound (a config may say :0). */
  | { type: 'ready'; id: string; port: number; adminPort?: number }
  | { type: 'failed'; message: string }
  | { type: 'answer'; n: number; value?: unknown; error?: string }
  | { type: 'appended'; atMs: number; events: Array<{ id: string; chatId: string }> };

/** A node in a process of its own: the demo's calls, and what only a process has (its pid, a SIGKILL, its exit). */
export interface ProcessNode extends DemoNode {
  readonly pid: number;
  /** The trust port and the admin service's address it bound. */
  readonly port: number;
  readonly adminAddress: string | undefined;
  /** Settles with how the process ended (a signal name or an exit code), however it ended. */
  readonly exited: Promise<string>;
  /** SIGKILL: no stop, no flush, no goodbye to its peers; settles once the process is gone. */
  kill(): Promise<void>;
}

/**
 * The worker beside this file: its build under node, or, when this module runs from its
 * TypeScript source (vitest), the source through tsx, so a test never runs a stale build.
 */
function workerEntry(): { file: string; execArgv: string[] } {
  const source = import.meta.url.endsWith('.ts');
  return { file: fileURLToPath(new URL(source ? './node-worker.ts' : './node-worker.js', import.meta.url)), execArgv: source ? ['--import', 'tsx'] : [] };
}

/** A node in a process of its own (gateways/demo/node-worker.ts), driven over the IPC channel. */
export async function processNode(config: NodeConfig, logFile: string): Promise<ProcessNode> {
  const { file, execArgv } = workerEntry();
  const child: ChildProcess = fork(file, [], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
  const exited = new Promise<string>((resolve) => child.once('exit', (code, signal) => resolve(signal ?? String(code))));
  const pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  const listeners: Array<(atMs: number, events: Array<{ id: string; chatId: string }>) => void> = [];
  let next = 0;
  const ready = await new Promise<Extract<WorkerMessage, { type: 'ready' }>>((resolve, reject) => {
    child.on('message', (message: WorkerMessage) => {
      if (message.type === 'ready') resolve(message);
      else if (message.type === 'failed') reject(new Error(`${config.server.name}: ${message.message}`));
      else if (message.type === 'appended') listeners.forEach((listener) => listener(message.atMs, message.events));
      else {
        const waiting = pending.get(message.n);
        pending.delete(message.n);
        if (message.error !== undefined) waiting?.reject(new Error(`${config.server.name}: ${message.error}`));
        else waiting?.resolve(message.value);
      }
    });
    child.once('exit', (code, signal) => {
      const error = new Error(`${config.server.name}: its process exited (${signal ?? code})`);
      reject(error);
      for (const waiting of pending.values()) waiting.reject(error);
      pending.clear();
    });
    child.send({ config, logFile });
  });
  const call = <T>(request: WorkerRequest) =>
    new Promise<T>((resolve, reject) => {
      const n = next++;
      if (!child.connected) return reject(new Error(`${config.server.name}: its process has exited`));
      pending.set(n, { resolve: resolve as (value: unknown) => void, reject });
      // A process that dies between the check and the send answers through the callback, not an 'error' event.
      child.send({ n, request }, (error) => {
        if (!error) return;
        pending.delete(n);
        reject(new Error(`${config.server.name}: ${error.message}`));
      });
    });
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  const node = demoNode(config, ready.id, call, (listener) => listeners.push(listener), async () => {
    if (gone()) return;
    await call({ op: 'stop' }).catch(() => undefined);
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, WORKER_STOP_LIMIT_MS))]);
    if (!gone()) child.kill('SIGKILL');
  });
  return {
    ...node,
    pid: child.pid!,
    port: ready.port,
    adminAddress: config.admin && ready.adminPort !== undefined ? `${config.admin.listen.slice(0, config.admin.listen.lastIndexOf(':'))}:${ready.adminPort}` : undefined,
    exited,
    async kill() {
      if (!gone()) child.kill('SIGKILL');
      await exited;
    },
  };
}
