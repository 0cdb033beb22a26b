import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { cryptoReady } from '../../crypto/index.js';
import { createLogger, loadConfig, TrellisNode, type NodeConfig } from '../../router/index.js';
import { createdDraft, messageDraft, newChat, readMessage, type DeviceChat } from '../devices/index.js';
import { CliError, EXIT_CONFIG, EXIT_FAILURE } from './exit-codes.js';
import { writeIdentityKey } from './keys.js';

/**
 * The main job of a fresh clone: start the federation described by a fixtures folder
 * (one YAML config per server) in this process on the embedded store, post a chat's
 * worth of messages on every server, and show that each server ends with the same
 * log, which member devices can read and the servers cannot.
 */
export const DEMO_LINK_WAIT_MS = 30_000;
export const DEMO_CONVERGE_WAIT_MS = 120_000;
const POSTS_IN_FLIGHT = 256;
const PROGRESS_EVERY_MS = 1_000;

export interface DemoOptions {
  fixtures: string;
  eventsPerServer: number;
  logFile: string;
  print: (line: string) => void;
}

function loadFixtureConfigs(folder: string): NodeConfig[] {
  let files: string[];
  try {
    files = readdirSync(folder).filter((file) => /\.ya?ml$/.test(file)).sort();
  } catch {
    throw new CliError(`fixtures folder ${folder} cannot be read`, EXIT_CONFIG);
  }
  if (files.length < 2) throw new CliError(`fixtures folder ${folder} needs at least two server configs (*.yaml)`, EXIT_CONFIG);
  return files.map((file) => loadConfig(join(folder, file)));
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
    if (Date.now() > deadline) throw new CliError(`gave up after ${timeoutMs / 1000} s waiting for ${what}`, EXIT_FAILURE);
    if (progress && print && Date.now() >= nextProgressAt) {
      print(await progress());
      nextProgressAt = Date.now() + PROGRESS_EVERY_MS;
    }
    await sleep(50);
  }
}

async function postAll(node: TrellisNode, chat: DeviceChat, sender: string, count: number): Promise<void> {
  for (let first = 0; first < count; first += POSTS_IN_FLIGHT) {
    const size = Math.min(POSTS_IN_FLIGHT, count - first);
    await Promise.all(Array.from({ length: size }, (_, i) => node.post(messageDraft(chat, sender, `message ${first + i + 1} from ${sender}`))));
  }
}

function allLinked(nodes: TrellisNode[]): boolean {
  return nodes.every((node) => node.linkStatus().every((link) => link.status !== 'red'));
}

export async function runDemo(options: DemoOptions): Promise<void> {
  const { print } = options;
  await cryptoReady();
  const configs = loadFixtureConfigs(resolve(options.fixtures));
  for (const config of configs) {
    ensureIdentityKey(config, print);
    if (config.store.data_dir) mkdirSync(config.store.data_dir, { recursive: true });
  }
  mkdirSync(dirname(options.logFile), { recursive: true });
  const destination = pino.destination({ dest: options.logFile, sync: false });
  const nodes: TrellisNode[] = [];
  try {
    for (const config of configs) {
      nodes.push(await TrellisNode.start(config, { logger: createLogger(config.log_level, destination) }));
      print(`started ${config.server.kind} ${config.server.name} (${config.server.id}) on ${config.listen}`);
    }
    await waitUntil('every trust link to come up', DEMO_LINK_WAIT_MS, () => allLinked(nodes));
    print(`trust links up: ${nodes.map((node) => node.linkStatus().map((l) => `${node.config.server.name}→${l.name} ${l.status}`).join(', ')).join('; ')}`);
    await exchange(nodes, options);
  } finally {
    await Promise.allSettled(nodes.map((node) => node.stop()));
    destination.flushSync();
    print(`node logs: ${options.logFile}`);
  }
}

async function exchange(nodes: TrellisNode[], options: DemoOptions): Promise<void> {
  const { print } = options;
  const users = nodes.map((node) => `${node.config.server.name}-user@${node.id}`);
  const chat = newChat(users);
  const expected = 1 + nodes.length * options.eventsPerServer;
  const startedAt = Date.now();
  await nodes[0]!.post(createdDraft(chat, users[0]!, 'demo chat'));
  print(`posting ${options.eventsPerServer} messages on each of ${nodes.length} servers into chat ${chat.id}`);
  await Promise.all(nodes.map((node, index) => postAll(node, chat, users[index]!, options.eventsPerServer)));
  const counts = () => Promise.all(nodes.map((node) => node.store.chatLog(chat.id).then((log) => log.length)));
  await waitUntil(
    'every server to hold the whole chat',
    DEMO_CONVERGE_WAIT_MS,
    async () => (await counts()).every((count) => count === expected),
    async () => `  delivered ${(await counts()).map((count, i) => `${nodes[i]!.config.server.name} ${count}/${expected}`).join(', ')}`,
    print,
  );
  const seconds = (Date.now() - startedAt) / 1000;
  const digests = await Promise.all(nodes.map((node) => node.store.chatDigest(chat.id)));
  const equal = digests.every((digest) => digest.equals(digests[0]!));
  for (const [index, node] of nodes.entries()) {
    print(`  ${node.config.server.name.padEnd(12)} events ${expected}  digest ${digests[index]!.toString('hex').slice(0, 16)}`);
  }
  const last = (await nodes.at(-1)!.store.chatLog(chat.id)).findLast((event) => event.origin === nodes[0]!.id);
  print(`a member device on ${nodes.at(-1)!.config.server.name} reads ${nodes[0]!.config.server.name}'s last message: "${readMessage(chat, last!.body)}"`);
  print(`${expected} events on each of ${nodes.length} servers in ${seconds.toFixed(1)} s; logs ${equal ? 'equal' : 'DIFFER'}`);
  if (!equal) throw new CliError('the servers hold the same events in different orders', EXIT_FAILURE);
}
