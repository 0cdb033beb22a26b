import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cryptoReady, generateIdentityPem } from '../../crypto/index.js';
import { REFERENCE_CHATS, type ReferenceChat } from '../../gateways/demo/index.js';
import { createLogger, loadConfig, TrellisNode, type NodeConfig } from '../../router/index.js';
import { createdDraft, newChat, type TestChat } from './devices.js';
import { FAST_LINK, freePort, LogCapture, waitFor } from './federation.js';

export const FEDERATION_FIXTURES = 'fixtures/federation';

/** A reference chat as its member devices hold it, with a sender (user@id) per member server. */
export type FederationChat = TestChat & { name: string; creator: string; sender: Map<string, string> };

export interface FederationOptions {
  /** Keep each node's log on disk, so a node can be stopped and started again. */
  persistent?: boolean;
  link?: Partial<NodeConfig['link']>;
}

/**
 * The reference federation of fixtures/federation, six nodes on real gRPC over 127.0.0.1:
 * the fixtures' configs as an operator wrote them, moved to free ports, fresh keys and a
 * temporary folder. Nodes are named by their server names (rts-ru, ets-acme, ...).
 */
export class ReferenceFederation {
  readonly logs = new LogCapture();
  readonly dir = mkdtempSync(join(tmpdir(), 'trellis-federation-'));
  readonly configs = new Map<string, NodeConfig>();
  readonly nodes = new Map<string, TrellisNode>();

  static async start(options: FederationOptions = {}): Promise<ReferenceFederation> {
    await cryptoReady();
    const federation = new ReferenceFederation();
    await federation.configure(options);
    await Promise.all([...federation.configs.keys()].map((name) => federation.startNode(name)));
    return federation;
  }

  private async configure(options: FederationOptions): Promise<void> {
    const fixtures = readdirSync(FEDERATION_FIXTURES).filter((file) => file.endsWith('.yaml')).map((file) => loadConfig(join(FEDERATION_FIXTURES, file)));
    const moved = new Map<string, string>();
    for (const config of fixtures) moved.set(config.listen, `127.0.0.1:${await freePort()}`);
    for (const config of fixtures) {
      const name = config.server.name;
      const keyFile = join(this.dir, `${name}.key`);
      writeFileSync(keyFile, generateIdentityPem(), { mode: 0o600 });
      const dataDir = join(this.dir, name);
      if (options.persistent) mkdirSync(dataDir);
      const { admin: _, ...rest } = config;
      this.configs.set(name, {
        ...rest,
        listen: moved.get(config.listen)!,
        identity_key_file: keyFile,
        store: options.persistent ? { data_dir: dataDir } : { memory: true },
        link: { ...config.link, ...FAST_LINK, ...options.link },
        trusts: config.trusts.map((trust) => (trust.endpoint ? { ...trust, endpoint: moved.get(trust.endpoint) ?? trust.endpoint } : trust)),
      });
    }
  }

  node(name: string): TrellisNode {
    const node = this.nodes.get(name);
    if (!node) throw new Error(`${name} is not running`);
    return node;
  }

  id(name: string): string {
    return this.configs.get(name)!.server.id;
  }

  nameOf(id: string): string {
    for (const [name, config] of this.configs) if (config.server.id === id) return name;
    return id;
  }

  async startNode(name: string): Promise<TrellisNode> {
    const node = await TrellisNode.start(this.configs.get(name)!, { logger: createLogger('info', this.logs) });
    this.nodes.set(name, node);
    return node;
  }

  async stopNode(name: string): Promise<void> {
    await this.nodes.get(name)?.stop();
    this.nodes.delete(name);
  }

  /** Every running node has a default route to every other server of the federation. */
  routesComplete(): boolean {
    const ids = [...this.configs.values()].map((config) => config.server.id);
    return [...this.nodes.values()].every((node) => ids.every((id) => id === node.id || node.routing.nextHop(id, 0) !== undefined));
  }

  async waitUntilRouted(timeoutMs = 30_000): Promise<void> {
    await waitFor('every node to have a route to every server', () => this.routesComplete(), timeoutMs, async () => {
      const missing = [...this.nodes.entries()].map(([name, node]) => `${name} lacks ${[...this.configs.values()].filter((c) => c.server.id !== node.id && !node.routing.nextHop(c.server.id, 0)).map((c) => c.server.name).join(',') || 'nothing'}`);
      return missing.join('; ');
    });
  }

  /** Every destination queue on every running node is empty: each next hop acknowledged all it was sent. */
  async waitUntilDrained(timeoutMs = 30_000): Promise<void> {
    const waiting = async () => {
      const lines: string[] = [];
      for (const [name, node] of this.nodes) {
        for (const link of await node.inspect.linkCounters()) for (const queue of link.queues) if (queue.depth > 0) lines.push(`${name}→${link.name}: ${queue.name} ${queue.depth}`);
        for (const queue of await node.inspect.unrouted()) if (queue.depth > 0) lines.push(`${name} unrouted: ${queue.name} ${queue.depth}`);
      }
      return lines;
    };
    await waitFor('every destination queue empty', async () => (await waiting()).length === 0, timeoutMs, async () => (await waiting()).join('; '));
  }

  /** A reference chat with its members' ids, created on its first member's server. */
  async createChat(chat: ReferenceChat): Promise<FederationChat> {
    const sender = new Map<string, string>();
    const members = chat.members.map(({ user, server }) => {
      const member = `${user}@${this.id(server)}`;
      if (!sender.has(server)) sender.set(server, member);
      return member;
    });
    const device = newChat(members, chat.policy);
    const creator = chat.members[0]!.server;
    await this.node(creator).post(createdDraft(device, sender.get(creator)!, chat.name));
    return { ...device, name: chat.name, creator, sender };
  }

  /** The servers of a chat, by name. */
  static serversOf(chat: ReferenceChat): string[] {
    return [...new Set(chat.members.map((member) => member.server))];
  }

  async stop(): Promise<void> {
    await Promise.allSettled([...this.nodes.values()].map((node) => node.stop()));
    this.nodes.clear();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export const referenceChat = (name: string): ReferenceChat => REFERENCE_CHATS.find((chat) => chat.name === name)!;
