/**
 * How long a bench server spends inside its store's appends, and how many it makes. On
 * PGlite an append runs on the node's own thread (WebAssembly, and fsync waits there
 * too), so this share of a run is time the node could do nothing else: the bound a
 * paced run's latency stands on, measured inside the running node rather than alone.
 */
import { openStore, type EventStore } from '../store/index.js';
import { storeLocation, type NodeConfig } from '../router/index.js';

export interface AppendTime {
  ms: number;
  appends: number;
}

const TIMED: ReadonlySet<PropertyKey> = new Set(['append', 'appendOwn']);

/** The server's store as its config names it, with every append timed into `time`. */
export async function openTimedStore(config: NodeConfig): Promise<{ store: EventStore; time: AppendTime }> {
  const store = await openStore(storeLocation(config.store, process.env));
  const time: AppendTime = { ms: 0, appends: 0 };
  const timed = new Proxy(store, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      if (!TIMED.has(property)) return value.bind(target);
      return async (...args: unknown[]) => {
        const startMs = performance.now();
        try {
          return await value.apply(target, args);
        } finally {
          time.ms += performance.now() - startMs;
          time.appends += 1;
        }
      };
    },
  });
  return { store: timed, time };
}
