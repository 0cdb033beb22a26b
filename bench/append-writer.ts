/**
 * One store of the appends-together bound (bench/bounds.ts, measureAppendsTogether), in a
 * process of its own as each server is: opens a fresh embedded store as a server's
 * (fsync on), makes its sample chat, and, once every other store is ready too
 * (bench/together.ts), appends it in batches as a receiving node does; answers rows/s.
 */
import { openStore } from '../store/index.js';
import { sampleChain, timeBatchAppends } from './bounds.js';
import { serveTogether } from './together.js';

export interface AppendTask {
  dataDir: string;
  bodyBytes: number;
  events: number;
}

serveTogether(async ({ dataDir, bodyBytes, events }: AppendTask) => {
  const store = await openStore({ dataDir, durability: 'fsync' });
  const chain = sampleChain('batch-appends', bodyBytes, events);
  return async () => {
    try {
      return await timeBatchAppends(store, chain);
    } finally {
      await store.close();
    }
  };
});
