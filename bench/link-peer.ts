/**
 * The receiving server of the link benchmark, run as a child process so the two
 * servers use two cores, as two real servers would. It reports every durable append
 * of the origin's events (id and time) to the parent over IPC.
 */
import { cryptoReady } from '../crypto/index.js';
import { createLogger, parseConfig, TrellisNode } from '../router/index.js';
import type { StoredEvent } from '../store/index.js';
import { sharedNowMs } from './clock.js';

export interface PeerAppended {
  type: 'appended';
  ids: string[];
  atMs: number;
}

async function main(): Promise<void> {
  await cryptoReady();
  const configDocument = await new Promise<unknown>((resolve) => process.once('message', resolve));
  const node = await TrellisNode.start(parseConfig(configDocument, 'bench peer'), { logger: createLogger('silent') });
  node.on('appended', (events: StoredEvent[]) => {
    const atMs = sharedNowMs();
    const ids = events.filter((event) => event.origin !== node.id).map((event) => event.id.toString('hex'));
    if (ids.length > 0) process.send!({ type: 'appended', ids, atMs } satisfies PeerAppended);
  });
  process.send!({ type: 'ready', port: node.port });
  process.once('disconnect', () => void node.stop().finally(() => process.exit(0)));
}

main().catch((error) => {
  console.error(`bench peer: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
