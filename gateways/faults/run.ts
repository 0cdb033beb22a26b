import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { cryptoReady } from '../../crypto/index.js';
import { adminClient } from '../admin/index.js';
import { loadFederation, REFERENCE_CHATS, type ReferenceChat } from '../demo/index.js';
import { createdDraft, messageDraft, newChat, type DeviceChat } from '../devices/index.js';
import { FaultError } from './errors.js';
import { FaultFederation, makeStoreTemplate } from './federation.js';
import { pick, prng, type Random } from './prng.js';
import { describeFault, makeSchedule, type Schedule, type Step } from './schedule.js';

export { FaultError };

/** Every server linked and routed, once all are up. */
export const LINK_WAIT_MS = 60_000;
/** After the last fault is healed and every server is up again: every chat complete and equal, every queue empty. */
export const CONVERGE_WAIT_MS = 120_000;
/** Between two looks at the logs and queues while converging. */
const CONVERGE_LOOK_MS = 1_000;
/** Between two posts of the run, and how many may wait for their answer at once. */
const POST_GAP_MS = 40;
const POSTS_IN_FLIGHT_MAX = 32;
/** A post whose server does not answer in this long counts as in doubt (it may yet be stored). */
const POST_ANSWER_MS = 30_000;

export interface FaultRunOptions {
  seed: number;
  runMs: number;
  killsMax: number;
  fixtures: string;
  /** A closed, migrated store to copy as each data directory (makeStoreTemplate); made for this seed if absent. */
  storeTemplate?: string;
  /** Keep the data directories and node logs even when the seed passes. */
  keep: boolean;
  print: (line: string) => void;
}

export interface FaultRunResult {
  seed: number;
  steps: number;
  kills: number;
  restarts: number;
  /** Posts answered with an id, and those whose server died before answering (stored or not). */
  posted: number;
  inDoubt: number;
  /** Of those in doubt, posts a live node refused. */
  refused: number;
  /** Posts not tried because the server was down. */
  skipped: number;
  chats: number;
  /** Events × member servers, each found exactly once; and queues read empty through the admin service. */
  copiesVerified: number;
  queuesVerified: number;
  /** Events the live links received that were already stored (resends, second paths): a floor, as a link's counters start with it. */
  duplicatesReceived: number;
  durationMs: number;
}

/** What the last look counted: copies held once, queues read empty, duplicates the links dropped. */
interface Verified {
  copies: number;
  queues: number;
  duplicates: number;
}

interface RunChat extends DeviceChat {
  spec: ReferenceChat;
  servers: string[];
  /** Ids of the posts the servers answered, creation included. */
  acked: Set<string>;
  inDoubt: number;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

class FaultRun {
  private readonly chats: RunChat[] = [];
  private readonly started = Date.now();
  private posting = true;
  private inFlight = 0;
  private skipped = 0;
  private readonly pending = new Set<Promise<void>>();
  /** Posts a live node refused (not killed under them): reported with the result. */
  readonly refusedPosts: string[] = [];
  /** A heal that failed (a server that could not start again): the run fails with it. */
  private healFailure: unknown;
  /** Heals waiting to run, in time order of the schedule: run early when the run ends. */
  private readonly heals = new Set<{ run: () => Promise<void>; timer: NodeJS.Timeout }>();

  constructor(
    private readonly federation: FaultFederation,
    private readonly schedule: Schedule,
    private readonly options: FaultRunOptions,
  ) {}

  /** A progress line, stamped with the seed and the time since the run began. */
  line(text: string): void {
    this.options.print(`[seed ${this.schedule.seed} +${seconds(Date.now() - this.started)}] ${text}`);
  }

  private get posted(): number {
    return this.chats.reduce((sum, chat) => sum + chat.acked.size, 0) - this.chats.length;
  }

  async linkUp(): Promise<void> {
    const ids = this.federation.names.map((name) => this.federation.configs.get(name)!.server.id);
    const ready = async () => {
      const nodes = [...this.federation.nodes.values()];
      const each = await Promise.all(nodes.map(async (node) => Object.values(await node.links()).every(Boolean) && (await node.routesTo(ids))));
      return nodes.length === ids.length && each.every(Boolean);
    };
    const deadline = Date.now() + LINK_WAIT_MS;
    while (!(await ready())) {
      if (Date.now() > deadline) throw new FaultError('start-failed', `the federation's links and routes were not all up within ${seconds(LINK_WAIT_MS)}`);
      await sleep(CONVERGE_LOOK_MS);
    }
    this.line(`${this.federation.links.length} trust links up, every server routed`);
  }

  async createChats(): Promise<void> {
    for (const spec of REFERENCE_CHATS) {
      const servers = [...new Set(spec.members.map((member) => member.server))];
      const members = spec.members.map(({ user, server }) => `${user}@${this.federation.configs.get(server)!.server.id}`);
      const chat: RunChat = { ...newChat(members, spec.policy), spec, servers, acked: new Set(), inDoubt: 0 };
      chat.acked.add(await this.federation.node(servers[0]!)!.post(createdDraft(chat, members[0]!, spec.name)));
      this.chats.push(chat);
    }
    this.line(`chats created: ${this.chats.map((chat) => `${chat.spec.name} (${chat.servers.join(', ')})`).join('; ')}`);
  }

  private sender(chat: RunChat, server: string): string {
    const member = chat.spec.members.find((m) => m.server === server)!;
    return `${member.user}@${this.federation.configs.get(server)!.server.id}`;
  }

  /** Posts from member servers into their chats as the post stream draws them, while the run lasts. */
  async postLoop(random: Random): Promise<void> {
    let n = 0;
    while (this.posting) {
      const chat = pick(random, this.chats);
      const server = pick(random, chat.servers);
      const node = this.federation.node(server);
      n += 1;
      if (!node || this.inFlight >= POSTS_IN_FLIGHT_MAX) this.skipped += 1;
      else {
        this.inFlight += 1;
        const answered = Promise.race([node.post(messageDraft(chat, this.sender(chat, server), `fault run message ${n}`)), sleep(POST_ANSWER_MS).then(() => undefined)]);
        const done = answered.then(
          (id) => {
            if (id) chat.acked.add(id);
            else chat.inDoubt += 1;
          },
          // Killed before it answered (stored or not), or refused by a live node: either way no id to expect.
          (error: unknown) => {
            chat.inDoubt += 1;
            if (this.federation.node(server) === node) this.refusedPosts.push(error instanceof Error ? error.message : String(error));
          },
        );
        const tracked = done.finally(() => {
          this.inFlight -= 1;
          this.pending.delete(tracked);
        });
        this.pending.add(tracked);
      }
      await sleep(POST_GAP_MS);
    }
    await Promise.all(this.pending);
  }

  /** Starts a step's fault and arranges its heal. */
  private async apply(step: Step): Promise<void> {
    const { fault } = step;
    this.line(`step ${step.n}/${this.schedule.steps.length}: ${describeFault(fault)} (posted ${this.posted})`);
    switch (fault.kind) {
      case 'kill':
        await this.federation.kill(fault.server);
        return this.healLater(fault.downMs, async () => {
          await this.federation.restart(fault.server);
          this.line(`  ${fault.server} started again from its data directory`);
        });
      case 'partition':
        for (const proxy of this.federation.proxiesOf(fault.link)) proxy.partition(fault.how);
        return this.healLater(fault.forMs, async () => this.federation.proxiesOf(fault.link).forEach((proxy) => proxy.heal()));
      case 'cut':
        for (const proxy of this.federation.proxiesOf(fault.link)) proxy.cutAll();
        return;
      case 'delay':
        for (const proxy of this.federation.proxiesOf(fault.link)) proxy.delay(fault.delayMs);
        return this.healLater(fault.forMs, async () => this.federation.proxiesOf(fault.link).forEach((proxy) => proxy.delay(0)));
      case 'trickle':
        for (const proxy of this.federation.proxiesAt(fault.server)) proxy.trickle(fault.bytesPerS);
        return this.healLater(fault.forMs, async () => this.federation.proxiesAt(fault.server).forEach((proxy) => proxy.trickle(0)));
    }
  }

  private healLater(afterMs: number, run: () => Promise<void>): void {
    const heal = { run, timer: setTimeout(() => void this.runHeal(heal).catch((error: unknown) => (this.healFailure ??= error)), afterMs) };
    this.heals.add(heal);
  }

  private async runHeal(heal: { run: () => Promise<void>; timer: NodeJS.Timeout }): Promise<void> {
    if (!this.heals.delete(heal)) return;
    clearTimeout(heal.timer);
    await heal.run();
  }

  /** The schedule, step by step at its times, with posts all along; then every fault healed and every server up. */
  async runSchedule(): Promise<void> {
    const posts = this.postLoop(prng(this.schedule.seed ^ 0x5eed_0001));
    const runStart = Date.now();
    try {
      for (const step of this.schedule.steps) {
        await sleep(Math.max(0, runStart + step.atMs - Date.now()));
        this.failOnCrash();
        await this.apply(step);
      }
      // Every fault runs its course: the last ones end a little after the run's length.
      await sleep(Math.max(0, runStart + this.schedule.endMs - Date.now()));
    } finally {
      this.posting = false;
      await Promise.all([...this.heals].map((heal) => this.runHeal(heal)));
      for (const dial of this.federation.dials) dial.proxy.restore();
      for (const name of this.federation.names) if (!this.federation.node(name) && !this.federation.crashed) await this.federation.restart(name);
      await posts;
    }
    this.failOnCrash();
    this.line(`schedule done, every fault healed and every server up: ${this.posted} posted, ${this.inDoubtCount} in doubt, ${this.skipped} skipped`);
  }

  private get inDoubtCount(): number {
    return this.chats.reduce((sum, chat) => sum + chat.inDoubt, 0);
  }

  private failOnCrash(): void {
    if (this.healFailure) throw new FaultError('start-failed', `a server could not start again: ${this.healFailure instanceof Error ? this.healFailure.message : String(this.healFailure)}`);
    const crashed = this.federation.crashed;
    if (crashed) throw new FaultError('node-crashed', `${crashed.server} exited by itself (${crashed.how}); its log is in ${this.federation.logFile}`);
  }

  /** One look at every member server's log of every chat and every node's queues: what is still wrong. */
  private async problems(): Promise<Verified & { problems: string[] }> {
    const problems: string[] = [];
    let copies = 0;
    let queues = 0;
    let duplicates = 0;
    for (const chat of this.chats) {
      const held = await Promise.all(chat.servers.map(async (server) => ({ server, ids: await this.federation.node(server)!.eventIds(chat.id), digest: (await this.federation.node(server)!.summary(chat.id)).digest })));
      for (const { server, ids } of held) {
        const unique = new Set(ids);
        if (unique.size !== ids.length) problems.push(`${chat.spec.name} on ${server}: ${ids.length - unique.size} events stored twice`);
        const missing = [...chat.acked].filter((id) => !unique.has(id));
        if (missing.length > 0) problems.push(`${chat.spec.name} on ${server}: lacks ${missing.length} of ${chat.acked.size} acknowledged events (first ${missing[0]!.slice(0, 16)})`);
        const extra = unique.size - chat.acked.size;
        if (extra > chat.inDoubt) problems.push(`${chat.spec.name} on ${server}: ${extra} events beyond the acknowledged, more than the ${chat.inDoubt} posts in doubt`);
        copies += ids.length;
      }
      const digests = new Set(held.map(({ digest }) => digest));
      if (digests.size > 1) problems.push(`${chat.spec.name}: digests differ (${held.map(({ server, ids, digest }) => `${server} ${ids.length} ${digest.slice(0, 8)}`).join(', ')})`);
    }
    for (const name of this.federation.names) {
      const address = this.federation.node(name)!.adminAddress!;
      const admin = adminClient(address);
      try {
        const report = await admin.links();
        for (const link of report.links) {
          duplicates += link.stats?.eventsDuplicate ?? 0;
          for (const queue of link.queues) {
            queues += 1;
            if (queue.depth > 0) problems.push(`${name} → ${link.name}: queue for ${queue.name} holds ${queue.depth}`);
          }
        }
        for (const queue of report.unrouted) if (queue.depth > 0) problems.push(`${name}: ${queue.depth} events for ${queue.name} with no route`);
      } finally {
        admin.close();
      }
    }
    return { problems, copies, queues, duplicates };
  }

  /** Waits, bounded, for every chat complete, once, equal on every member server and every queue empty. */
  async converge(): Promise<Verified> {
    const deadline = Date.now() + CONVERGE_WAIT_MS;
    let lastPrintAt = 0;
    for (;;) {
      this.failOnCrash();
      const look = await this.problems();
      if (look.problems.length === 0) return look;
      if (Date.now() > deadline) throw new FaultError('not-converged', `not converged ${seconds(CONVERGE_WAIT_MS)} after the last heal:\n  ${look.problems.join('\n  ')}`);
      if (Date.now() - lastPrintAt > 10 * CONVERGE_LOOK_MS) {
        this.line(`converging: ${look.problems.length} things still differ (first: ${look.problems[0]})`);
        lastPrintAt = Date.now();
      }
      await sleep(CONVERGE_LOOK_MS);
    }
  }

  result(verified: Verified, kills: number): FaultRunResult {
    return {
      seed: this.schedule.seed,
      steps: this.schedule.steps.length,
      kills,
      restarts: this.federation.restarts,
      posted: this.posted,
      inDoubt: this.inDoubtCount,
      refused: this.refusedPosts.length,
      skipped: this.skipped,
      chats: this.chats.length,
      copiesVerified: verified.copies,
      queuesVerified: verified.queues,
      duplicatesReceived: verified.duplicates,
      durationMs: Date.now() - this.started,
    };
  }
}

export function printSchedule(schedule: Schedule, print: (line: string) => void): void {
  print(`schedule of seed ${schedule.seed}: ${schedule.steps.length} steps, slow peer ${schedule.slowPeer}`);
  for (const step of schedule.steps) print(`  ${String(step.n).padStart(2)}. +${seconds(step.atMs).padStart(6)}  ${describeFault(step.fault)}`);
}

/** One seed: the reference federation under its schedule, then the invariants. Throws a FaultError naming the seed's failure. */
export async function runFaults(options: FaultRunOptions): Promise<FaultRunResult> {
  await cryptoReady();
  const fixtures = loadFederation(resolve(options.fixtures));
  const dir = mkdtempSync(join(tmpdir(), `trellis-faults-${options.seed}-`));
  const federation = await FaultFederation.create(fixtures, dir, options.storeTemplate ?? (await makeStoreTemplate(join(dir, 'store-template'))));
  const schedule = makeSchedule(options.seed, federation.names, federation.links, { runMs: options.runMs, killsMax: options.killsMax });
  printSchedule(schedule, options.print);
  const run = new FaultRun(federation, schedule, options);
  let passed = false;
  try {
    await federation.startAll();
    run.line(`${federation.names.length} servers started, each in its own process on its own data directory`);
    await run.linkUp();
    await run.createChats();
    await run.runSchedule();
    const verified = await run.converge();
    passed = true;
    return run.result(verified, federation.kills);
  } finally {
    await federation.stop();
    if (passed && !options.keep) rmSync(dir, { recursive: true, force: true });
    else options.print(`data directories and node logs of seed ${options.seed}: ${dir}`);
  }
}
