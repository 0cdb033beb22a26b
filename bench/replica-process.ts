import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { DeviceChat } from '../gateways/devices/index.js';
import type { NodeConfig } from '../router/index.js';
import type { ReplicaMessage, ReplicaRequest } from './replica-worker.js';

/** One replica of a server in a child process (bench/replica-worker.ts), driven over IPC. */
export class Replica {
  readonly links = new Set<string>();
  readonly ends: Array<{ code: string; message: string }> = [];
  /** The local seqs of what this replica appended, as it reported them. */
  readonly appended: number[] = [];
  replicaId = '';
  readonly ready: Promise<void>;

  constructor(readonly child: ChildProcess, readonly logFile: string) {
    this.ready = new Promise((resolve, reject) => {
      child.on('message', (message: ReplicaMessage) => {
        if (message.type === 'ready') {
          this.replicaId = message.replica;
          resolve();
        } else if (message.type === 'failed') reject(new Error(`replica: ${message.message}`));
        else if (message.type === 'link-up') this.links.add(message.peer);
        else if (message.type === 'appended') this.appended.push(...message.localSeqs);
        else if (message.type === 'link-down') {
          this.links.delete(message.peer);
          this.ends.push({ code: message.code, message: message.message });
        }
      });
      child.once('exit', (code, signal) => reject(new Error(`replica exited (${signal ?? code})`)));
    });
  }

  /** `source`: run the TypeScript through tsx (tests), else the build beside this file (the bench). */
  static start(config: NodeConfig, logFile: string, options: { source?: boolean } = {}): Replica {
    const worker = fileURLToPath(new URL(options.source ? './replica-worker.ts' : './replica-worker.js', import.meta.url));
    const execArgv = options.source ? ['--import', 'tsx'] : [];
    const child = fork(worker, [], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
    const replica = new Replica(child, logFile);
    child.send({ config, logFile });
    return replica;
  }

  /** Posts `count` messages from `sender`; resolves when all are durable in the shared store. */
  post(chat: DeviceChat, sender: string, count: number, inFlight = 32): Promise<void> {
    return new Promise((resolve, reject) => {
      const onMessage = (message: ReplicaMessage) => {
        if (message.type === 'posted') resolve();
        else if (message.type === 'failed') reject(new Error(message.message));
        else return;
        this.child.off('message', onMessage);
      };
      this.child.on('message', onMessage);
      this.child.send({ op: 'post', chat, sender, count, inFlight } satisfies ReplicaRequest);
    });
  }

  log(): string {
    return readFileSync(this.logFile, 'utf8');
  }

  stop(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}
