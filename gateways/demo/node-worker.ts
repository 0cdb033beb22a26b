/**
 * One server of `trellis demo --processes`, in a process of its own: starts the node of
 * the config it is sent (with its admin service), answers the demo's calls over the IPC
 * channel, reports its appends, and exits when told to stop or when the demo goes away.
 */
import { pino } from 'pino';
import { cryptoReady } from '../../crypto/index.js';
import { createLogger, TrellisNode, type NodeConfig } from '../../router/index.js';
import type { StoredEvent } from '../../store/index.js';
import { startAdminServer, type AdminServer } from '../admin/index.js';
import { answer, appendedSummary, type WorkerMessage, type WorkerRequest } from './demo-node.js';
import { sharedNowMs } from './latency.js';

const STOP_LIMIT_MS = 5_000;

function send(message: WorkerMessage): void {
  process.send?.(message);
}

async function main(): Promise<void> {
  await cryptoReady();
  const { config, logFile } = await new Promise<{ config: NodeConfig; logFile: string }>((resolve) => process.once('message', resolve));
  const destination = pino.destination({ dest: logFile, sync: false, append: true });
  const node = await TrellisNode.start(config, { logger: createLogger(config.log_level, destination) });
  const admin: AdminServer | undefined = config.admin ? await startAdminServer(node, config.admin.listen) : undefined;
  const stop = (code: number) => {
    setTimeout(() => process.exit(code), STOP_LIMIT_MS).unref();
    void Promise.allSettled([admin?.stop(), node.stop()]).finally(() => {
      destination.flushSync();
      process.exit(code);
    });
  };
  process.once('disconnect', () => stop(0));
  node.on('appended', (events: StoredEvent[]) => send({ type: 'appended', atMs: sharedNowMs(), events: appendedSummary(events) }));
  process.on('message', (message: { n: number; request: WorkerRequest }) => {
    answer(node, message.request).then(
      (value) => {
        send({ type: 'answer', n: message.n, value });
        if (message.request.op === 'stop') stop(0);
      },
      (error: unknown) => send({ type: 'answer', n: message.n, error: error instanceof Error ? error.message : String(error) }),
    );
  });
  send({ type: 'ready', id: node.id, port: node.port, ...(admin ? { adminPort: admin.port } : {}) });
}

main().catch((error: unknown) => {
  send({ type: 'failed', message: error instanceof Error ? error.message : String(error) });
  process.exit(1);
});
