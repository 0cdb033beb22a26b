import { cpSync } from 'node:fs';
import { join } from 'node:path';
import type { NodeConfig } from '../../router/index.js';
import { openStore } from '../../store/index.js';
import { writeIdentityKey } from '../cli/keys.js';
import { processNode, type ProcessNode } from '../demo/index.js';
import type { LinkName } from './schedule.js';
import { FaultError } from './errors.js';
import { TcpProxy } from './tcp-proxy.js';

/**
 * The reference federation as the fault suite runs it: each server in a process of its
 * own (the demo's worker) on a loopback address of its own, every trust dialled through a
 * proxy the suite owns, each store in a data directory that outlives a SIGKILL.
 */

/** Servers take 127.0.77.10, .11, ...: an address range no other test or the demo (127.0.0.21-26) uses. */
export const FAULT_HOSTS_PREFIX = '127.0.77.';
const FAULT_HOST_FIRST = 10;
/**
 * Quick redials, so a healed link is back within a second; a dead link is noticed after
 * 4 s of silence (a trickled or blackholed link, a killed peer whose socket stayed open).
 */
export const FAULT_LINK = {
  heartbeat_interval_ms: 500,
  dead_after_heartbeats: 8,
  reconnect_min_ms: 20,
  reconnect_max_ms: 1_000,
  handshake_timeout_ms: 2_000,
};

/** A server's process up and its store open, at the start or a restart: seconds alone, more with six on two cores. */
export const NODE_START_WAIT_MS = 90_000;

/** One direction of a trust that dials: `from` dials `to` through `proxy`. */
interface Dial {
  from: string;
  to: string;
  proxy: TcpProxy;
}

/**
 * An empty embedded store, migrated and closed, to copy as every server's data directory:
 * a fresh store's first open (its initdb) costs seconds of CPU, six at once on two cores
 * most of a run's start. Servers still open it as they do at any restart.
 */
export async function makeStoreTemplate(dir: string): Promise<string> {
  const store = await openStore({ dataDir: dir });
  await store.close();
  return dir;
}

export class FaultFederation {
  readonly configs = new Map<string, NodeConfig>();
  readonly nodes = new Map<string, ProcessNode>();
  readonly dials: Dial[] = [];
  /** Servers killed on purpose and not yet started again: their exit is no crash. */
  private readonly killed = new Set<string>();
  /** A server whose process ended without being told to: the run fails with it. */
  crashed: { server: string; how: string } | undefined;
  /** SIGKILLs sent (a server still starting when its kill comes is left alone), and starts after them. */
  kills = 0;
  restarts = 0;
  private readonly starting = new Map<string, Promise<void>>();

  private constructor(
    readonly dir: string,
    readonly logFile: string,
  ) {}

  /** Configs, keys and proxies in `dir`; each data directory a copy of `storeTemplate` (a closed store, migrated). */
  static async create(fixtures: Map<string, NodeConfig>, dir: string, storeTemplate: string): Promise<FaultFederation> {
    const federation = new FaultFederation(dir, join(dir, 'nodes.log'));
    const names = [...fixtures.keys()].sort();
    const host = (name: string) => `${FAULT_HOSTS_PREFIX}${FAULT_HOST_FIRST + names.indexOf(name)}`;
    const nameOf = new Map([...fixtures.values()].map((config) => [config.server.id, config.server.name]));
    for (const name of names) {
      const config = fixtures.get(name)!;
      const trusts = [];
      for (const trust of config.trusts) {
        const to = nameOf.get(trust.server_id);
        if (!trust.endpoint || !to) {
          trusts.push(trust);
          continue;
        }
        // The node is not up yet: the proxy learns its port when it starts (and again at each restart).
        const proxy = await TcpProxy.start({ host: host(to), port: 0 }, { listenHost: host(to), localAddress: host(name) });
        federation.dials.push({ from: name, to, proxy });
        trusts.push({ ...trust, endpoint: proxy.address });
      }
      const keyFile = join(dir, `${name}.key`);
      writeIdentityKey(keyFile);
      const dataDir = join(dir, name);
      cpSync(storeTemplate, dataDir, { recursive: true });
      federation.configs.set(name, {
        ...config,
        listen: `${host(name)}:0`,
        admin: { listen: `${host(name)}:0` },
        identity_key_file: keyFile,
        store: { data_dir: dataDir },
        link: { ...config.link, ...FAULT_LINK },
        trusts,
      });
    }
    return federation;
  }

  get names(): string[] {
    return [...this.configs.keys()];
  }

  /** Each trust once, whichever side dials (both do, for partners). */
  get links(): LinkName[] {
    const seen = new Map<string, LinkName>();
    for (const { from, to } of this.dials) {
      const link = [from, to].sort() as [string, string];
      seen.set(link.join('~'), link);
    }
    return [...seen.values()];
  }

  /** The proxies that carry a link, both directions. */
  proxiesOf(link: LinkName): TcpProxy[] {
    return this.dials.filter(({ from, to }) => link.includes(from) && link.includes(to)).map((dial) => dial.proxy);
  }

  /** Every proxy a server's connections pass: those it dials through and those dialled to it. */
  proxiesAt(server: string): TcpProxy[] {
    return this.dials.filter(({ from, to }) => from === server || to === server).map((dial) => dial.proxy);
  }

  node(name: string): ProcessNode | undefined {
    return this.nodes.get(name);
  }

  /** Starts a server's process on its data directory and points the proxies in front of it at its new port. */
  async start(name: string): Promise<ProcessNode> {
    const starting = processNode(this.configs.get(name)!, this.logFile);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // A process that comes up after all is not left running.
        void starting.then((node) => node.kill(), () => undefined);
        reject(new FaultError('start-failed', `${name} did not start within ${NODE_START_WAIT_MS / 1000} s on its data directory; its log is in ${this.logFile}`));
      }, NODE_START_WAIT_MS);
    });
    const node = await Promise.race([starting, late]).finally(() => clearTimeout(timer));
    this.killed.delete(name);
    this.nodes.set(name, node);
    for (const dial of this.dials) if (dial.to === name) dial.proxy.target = { ...dial.proxy.target, port: node.port };
    void node.exited.then((how) => {
      if (this.nodes.get(name) !== node || this.killed.has(name)) return;
      this.crashed ??= { server: name, how };
      this.nodes.delete(name);
    });
    return node;
  }

  async startAll(): Promise<void> {
    // All at once: started one by one, the first would back off their dials to servers not up yet.
    const started = await Promise.allSettled(this.names.map((name) => this.start(name)));
    const failed = started.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** SIGKILL: the process gets no chance to stop, flush or tell its peers. */
  async kill(name: string): Promise<void> {
    const node = this.nodes.get(name);
    if (!node) return;
    this.kills += 1;
    this.killed.add(name);
    this.nodes.delete(name);
    await node.kill();
  }

  /** Starts a killed server again; a second call while it starts waits for the same start (never two processes on one data directory). */
  restart(name: string): Promise<void> {
    if (this.nodes.has(name)) return Promise.resolve();
    let starting = this.starting.get(name);
    if (!starting) {
      starting = this.start(name)
        .then(() => void (this.restarts += 1))
        .finally(() => this.starting.delete(name));
      this.starting.set(name, starting);
    }
    return starting;
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.starting.values());
    for (const name of this.nodes.keys()) this.killed.add(name);
    await Promise.allSettled([...this.nodes.values()].map((node) => node.stop()));
    this.nodes.clear();
    await Promise.allSettled(this.dials.map(({ proxy }) => proxy.stop()));
  }
}
