import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { cryptoReady } from '../../crypto/index.js';
import { createLogger, loadConfig, type NodeConfig } from '../../router/index.js';
import { CliError, EXIT_CONFIG, EXIT_FAILURE } from '../cli/exit-codes.js';
import { writeIdentityKey } from '../cli/keys.js';
import { createdDraft, messageDraft, newChat, readMessage, type DeviceChat } from '../devices/index.js';
import { inProcessNode, processNode, type DemoNode } from './demo-node.js';
import { percentile, sharedNowMs } from './latency.js';
import { REFERENCE_CHATS, type ReferenceChat } from './reference-chats.js';

/**
 * The main job of a fresh clone: the reference federation (fixtures/federation) on the
 * embedded store, in this process. Every member server posts end-to-end encrypted
 * messages into each of its chats; the partner trust is cut and restored; then, per
 * chat, the path to each destination, what arrived, the delivery latency, and whether
 * every member server holds the same log.
 */
export const DEMO_LINK_WAIT_MS = 30_000;
export const DEMO_DELIVERY_WAIT_MS = 120_000;
const PROGRESS_EVERY_MS = 1_000;
const CHECK_EVERY_MS = 250;
/**
 * Between two posts of one poster. Six embedded engines share this process's one thread,
 * so the demo posts at a pace they keep up with (about 60 messages a second in all) and
 * its latency figures show hops, not queues; `npm run bench` measures throughput.
 */
const POST_GAP_MS = 200;
const PARTNERS = ['cts-acme-msk', 'cts-globex'] as const;

export interface DemoOptions {
  fixtures: string;
  /** One process per server instead of all in this one. */
  processes: boolean;
  /** Messages each member server posts into each of its chats. */
  messages: number;
  logFile: string;
  print: (line: string) => void;
}

interface DemoChat extends DeviceChat {
  spec: ReferenceChat;
  servers: string[];
  /** Messages expected on every member server, creation included. */
  expected: number;
}

/** The reference federation's configs by server name; refuses a folder that lacks one of its servers. */
export function loadFederation(folder: string): Map<string, NodeConfig> {
  let files: string[];
  try {
    files = readdirSync(folder).filter((file) => /\.ya?ml$/.test(file)).sort();
  } catch {
    throw new CliError(`fixtures folder ${folder} cannot be read`, EXIT_CONFIG);
  }
  const configs = new Map(files.map((file) => loadConfig(join(folder, file))).map((config) => [config.server.name, config]));
  const needed = new Set(REFERENCE_CHATS.flatMap((chat) => chat.members.map((member) => member.server)));
  const missing = [...needed, 'ets-acme', 'rts-ru'].filter((name) => !configs.has(name));
  if (missing.length > 0) throw new CliError(`fixtures folder ${folder} lacks the reference servers ${missing.join(', ')}`, EXIT_CONFIG);
  return configs;
}

/** A fixture's identity key is made on first run, so no private key is ever committed. */
function ensureIdentityKey(config: NodeConfig, print: (line: string) => void): void {
  if (existsSync(config.identity_key_file)) return;
  writeIdentityKey(config.identity_key_file);
  print(`created identity key ${config.identity_key_file}`);
}

async function waitUntil(what: string, timeoutMs: number, check: () => Promise<boolean> | boolean, progress?: () => Promise<string>, print?: (line: string) => void): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let nextProgressAt = Date.now() + PROGRESS_EVERY_MS;
  while (!(await check())) {
    if (Date.now() > deadline) throw new CliError(`gave up after ${timeoutMs / 1000} s waiting for ${what}${progress ? `: ${await progress()}` : ''}`, EXIT_FAILURE);
    if (progress && print && Date.now() >= nextProgressAt) {
      print(await progress());
      nextProgressAt = Date.now() + PROGRESS_EVERY_MS;
    }
    // Each look reads every member server's log: often enough for a progress line, seldom enough to leave the engines to the traffic.
    await sleep(CHECK_EVERY_MS);
  }
}

const short = (id: string) => id.slice(0, 8);

class FederationDemo {
  private readonly nodes = new Map<string, DemoNode>();
  private readonly names = new Map<string, string>();
  private readonly chats: DemoChat[] = [];
  /** When each demo message was handed to its server (by event id), and the delivery delays seen per chat. */
  private readonly sentAt = new Map<string, number>();
  private readonly latencies = new Map<string, number[]>();
  /** Events each server appended during this run (a transit's are what it relayed). */
  private readonly appendedThisRun = new Map<string, number>();

  constructor(
    private readonly configs: Map<string, NodeConfig>,
    private readonly options: DemoOptions,
  ) {}

  private node(name: string): DemoNode {
    return this.nodes.get(name)!;
  }

  private path(ids: readonly string[]): string {
    return ids.map((id) => this.names.get(id) ?? short(id)).join(' → ');
  }

  /**
   * Starts every server at once (with its admin service, as `trellis start` runs it), in
   * this process or each in one of its own: started one by one, the first ones would back
   * off their dials to servers not up yet, and the links would come up seconds later.
   */
  async start(start: (config: NodeConfig) => Promise<DemoNode>): Promise<void> {
    const configs = [...this.configs.values()];
    const nodes = await Promise.allSettled(configs.map((config) => start(config)));
    nodes.forEach((result, index) => {
      if (result.status === 'fulfilled') this.nodes.set(configs[index]!.server.name, result.value);
    });
    const failed = nodes.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;
    for (const config of configs) {
      const node = this.node(config.server.name);
      this.names.set(node.id, config.server.name);
      node.onAppended((atMs, events) => {
        this.appendedThisRun.set(config.server.name, (this.appendedThisRun.get(config.server.name) ?? 0) + events.length);
        this.onDelivered(config.server.name, atMs, events);
      });
      this.options.print(`started ${config.server.kind} ${config.server.name.padEnd(12)} ${short(node.id)}… on ${config.listen}${config.admin ? `, admin ${config.admin.listen}` : ''}`);
    }
  }

  async stop(): Promise<void> {
    await Promise.allSettled([...this.nodes.values()].map((node) => node.stop()));
  }

  /** Delivery delays of demo messages at their chats' member servers (a transit's appends are not deliveries). */
  private onDelivered(server: string, atMs: number, events: ReadonlyArray<{ id: string; chatId: string }>): void {
    for (const event of events) {
      const sent = this.sentAt.get(event.id);
      const chat = sent === undefined ? undefined : this.chats.find((c) => c.id === event.chatId);
      if (chat?.servers.includes(server)) this.latencies.get(chat.id)!.push(atMs - sent!);
    }
  }

  async linkUp(): Promise<void> {
    const started = Date.now();
    const ids = [...this.nodes.values()].map((node) => node.id);
    const ready = async (node: DemoNode) => Object.values(await node.links()).every(Boolean) && (await node.routesTo(ids));
    await waitUntil('every trust link and route', DEMO_LINK_WAIT_MS, async () => (await Promise.all([...this.nodes.values()].map(ready))).every(Boolean));
    const links = (await Promise.all([...this.nodes.values()].map(async (node) => Object.keys(await node.links()).length))).reduce((a, b) => a + b, 0) / 2;
    this.options.print(`${links} trust links up and every server routed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }

  async createChats(): Promise<void> {
    for (const spec of REFERENCE_CHATS) {
      const members = spec.members.map(({ user, server }) => `${user}@${this.node(server).id}`);
      const servers = [...new Set(spec.members.map((member) => member.server))];
      const chat: DemoChat = { ...newChat(members, spec.policy), spec, servers, expected: 1 };
      this.chats.push(chat);
      this.latencies.set(chat.id, []);
      await this.node(servers[0]!).post(createdDraft(chat, members[0]!, spec.name));
    }
    await this.waitDelivered('every chat to reach its member servers');
    this.options.print(`chats created: ${this.chats.map((chat) => `${chat.spec.name} (${chat.servers.length} servers${chat.spec.policy ? ', corporate' : ''})`).join(', ')}`);
  }

  private senderOn(chat: DemoChat, server: string): string {
    const member = chat.spec.members.find((m) => m.server === server)!;
    return `${member.user}@${this.node(server).id}`;
  }

  /**
   * One poster: `count` messages from a server into a chat, one after another. Latency is
   * measured while every link is up (`measured`): held-back messages would measure the cut.
   */
  private async postFrom(chat: DemoChat, server: string, count: number, label: string, measured: boolean): Promise<void> {
    chat.expected += count;
    for (let i = 0; i < count; i++) {
      const sent = sharedNowMs();
      const id = await this.node(server).post(messageDraft(chat, this.senderOn(chat, server), `${label} ${i + 1} from ${server} in ${chat.spec.name}`));
      if (measured) this.sentAt.set(id, sent);
      await sleep(POST_GAP_MS);
    }
  }

  async postEverywhere(count: number): Promise<void> {
    this.options.print(`posting ${count} messages from each member server into each chat (${this.chats.reduce((sum, chat) => sum + chat.servers.length, 0) * count} in all)`);
    await Promise.all(this.chats.flatMap((chat) => chat.servers.map((server) => this.postFrom(chat, server, count, 'message', true))));
    await this.waitDelivered('every message to reach every member server');
  }

  /** Cuts the partner trust, shows how each chat's route answers, posts across it, and restores it. */
  async partnerTrustCut(count: number): Promise<void> {
    const [msk, globex] = PARTNERS.map((name) => this.node(name));
    const partner = this.chat('partner');
    const corporate = this.chat('corporate');
    this.options.print(`cutting the partner trust ${PARTNERS.join(' ⟷ ')} (blocked on ${PARTNERS[0]})`);
    await msk!.setTrustStatus(globex!.id, 'disabled');
    await waitUntil('the partner link to go down', DEMO_LINK_WAIT_MS, async () => !(await msk!.links())[globex!.id] && !(await globex!.links())[msk!.id]);
    await this.printRoute(partner, PARTNERS[0]);
    await this.printRoute(corporate, PARTNERS[0]);
    const corporateBefore = await Promise.all([msk!, globex!].map(async (node) => (await node.summary(corporate.id)).events));
    await Promise.all([partner, corporate].flatMap((chat) => PARTNERS.map((server) => this.postFrom(chat, server, count, 'while cut', false))));
    await this.waitDelivered('the partner chat to fail over', [partner]);
    // Each side holds only its own new corporate messages: none crossed through a transit.
    const corporateAfter = await Promise.all([msk!, globex!].map(async (node) => (await node.summary(corporate.id)).events));
    const corporateHeld = corporateAfter.every((events, index) => events === corporateBefore[index]! + count);
    this.options.print(`  partner chat: ${count * 2} messages delivered through rts-ru; corporate chat: ${corporateHeld ? `held back on each side (${count} each), none left the contour` : 'DELIVERED WHILE CUT'}`);
    if (!corporateHeld) throw new CliError('the corporate chat left its contour while the partner trust was cut', EXIT_FAILURE);
    this.options.print(`restoring the partner trust`);
    await msk!.setTrustStatus(globex!.id, 'enabled');
    await this.waitDelivered('the corporate chat to be delivered over the restored trust', [corporate]);
    await this.printRoute(corporate, PARTNERS[0]);
  }

  private chat(name: string): DemoChat {
    return this.chats.find((chat) => chat.spec.name === name)!;
  }

  private async printRoute(chat: DemoChat, from: string): Promise<void> {
    const route = await this.node(from).chatRoute(chat.id);
    for (const destination of route.destinations) {
      const taken = destination.candidates.find((candidate) => candidate.taken);
      const why = taken?.why ?? destination.candidates.map((candidate) => `${this.names.get(candidate.via)}: ${candidate.why}`).join('; ');
      const path = destination.via ? this.path(destination.path) : 'waits';
      this.options.print(`  ${chat.spec.name.padEnd(10)} ${from} → ${destination.name}: ${path} (${why})`);
    }
  }

  private async deliveredCounts(chats: readonly DemoChat[]): Promise<Array<{ chat: DemoChat; held: number[] }>> {
    return Promise.all(chats.map(async (chat) => ({ chat, held: await Promise.all(chat.servers.map(async (server) => (await this.node(server).summary(chat.id)).events)) })));
  }

  private async waitDelivered(what: string, chats: readonly DemoChat[] = this.chats): Promise<void> {
    const total = () => chats.reduce((sum, chat) => sum + chat.expected * chat.servers.length, 0);
    const delivered = async () => (await this.deliveredCounts(chats)).reduce((sum, { held }) => sum + held.reduce((a, b) => a + b, 0), 0);
    await waitUntil(what, DEMO_DELIVERY_WAIT_MS, async () => (await delivered()) === total(), async () => `  delivered ${await delivered()}/${total()}`, this.options.print);
  }

  /** Per chat: the paths from its first server, what each server holds, latency, and whether the logs agree. */
  async report(startedAt: number): Promise<boolean> {
    this.options.print('');
    this.options.print(`delivery latency is from a post to its append at each destination, while every link was up`);
    this.options.print(`${'chat'.padEnd(11)}${'events'.padStart(7)}${'p50 ms'.padStart(8)}${'p99 ms'.padStart(8)}  digests   paths (from the chat's first server)`);
    let allEqual = true;
    for (const chat of this.chats) {
      const digests = await Promise.all(chat.servers.map(async (server) => (await this.node(server).summary(chat.id)).digest));
      const equal = digests.every((digest) => digest === digests[0]);
      allEqual &&= equal;
      const sorted = [...this.latencies.get(chat.id)!].sort((a, b) => a - b);
      const route = await this.node(chat.servers[0]!).chatRoute(chat.id);
      const paths = route.destinations.map((destination) => this.path(destination.path)).join('; ');
      this.options.print(
        `${chat.spec.name.padEnd(11)}${String(chat.expected).padStart(7)}${percentile(sorted, 0.5).toFixed(1).padStart(8)}${percentile(sorted, 0.99).toFixed(1).padStart(8)}  ${(equal ? 'equal' : 'DIFFER').padEnd(8)}  ${paths}`,
      );
    }
    const mixed = this.chat('mixed');
    const last = await this.node('cts-solo').lastBody(mixed.id, this.node('cts-acme-msk').id);
    this.options.print('');
    this.options.print(`a member device on cts-solo reads cts-acme-msk's last message in mixed: "${last ? readMessage(mixed, last) : '(none)'}"`);
    const relayed = ['ets-acme', 'rts-ru'].map((name) => `${name} ${this.appendedThisRun.get(name) ?? 0}`);
    this.options.print(`transit servers stored and passed on ciphertext only (events relayed: ${relayed.join(', ')}); no server holds a chat key`);
    const total = this.chats.reduce((sum, chat) => sum + chat.expected * chat.servers.length, 0);
    this.options.print(`${total} events delivered to ${this.chats.length} chats' member servers in ${((Date.now() - startedAt) / 1000).toFixed(1)} s; logs ${allEqual ? 'equal' : 'DIFFER'}`);
    return allEqual;
  }
}

export async function runDemo(options: DemoOptions): Promise<void> {
  const { print } = options;
  await cryptoReady();
  const configs = loadFederation(resolve(options.fixtures));
  for (const config of configs.values()) {
    ensureIdentityKey(config, print);
    if (config.store.data_dir) mkdirSync(config.store.data_dir, { recursive: true });
  }
  mkdirSync(dirname(options.logFile), { recursive: true });
  const destination = pino.destination({ dest: options.logFile, sync: false });
  const demo = new FederationDemo(configs, options);
  const startedAt = Date.now();
  print(`the reference federation of ${options.fixtures}: ${configs.size} servers ${options.processes ? 'in a process each' : 'in this process'}, embedded stores, gRPC over loopback`);
  try {
    await demo.start((config) => (options.processes ? processNode(config, options.logFile) : inProcessNode(config, createLogger(config.log_level, destination))));
    await demo.linkUp();
    await demo.createChats();
    await demo.postEverywhere(options.messages);
    await demo.partnerTrustCut(Math.max(1, Math.round(options.messages / 5)));
    if (!(await demo.report(startedAt))) throw new CliError('member servers of a chat hold different logs', EXIT_FAILURE);
  } finally {
    await demo.stop();
    destination.flushSync();
    print(`node logs: ${options.logFile}`);
  }
}
