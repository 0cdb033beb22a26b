/**
 * What the projection tests and the publish bench build on: a synthetic log (real event
 * ids and chains, random bodies, no signatures: the store keeps what it is given) and a
 * lone node. Not part of the public surface.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chainEvent, generateIdentityPem, type ChainPosition } from '../../crypto/index.js';
import { EventKind, type Event } from '../../proto/gen/trellis/v1/event.js';
import { parseConfig, TrellisNode, type Logger, type NodeConfig } from '../../router/index.js';
import type { EventStore } from '../../store/index.js';
import { ChatEventRecord } from '../../proto/gen/trellis/v1/projection.js';
import type { RecordSink } from './relay.js';
import type { OutgoingRecord } from './sources.js';

export interface SyntheticLog {
  origin: string;
  chats: string[];
  /** Chat-created first in each chat, then messages, chats taking turns. */
  events: Event[];
}

/** `events` messages across `chats` chats of `origin` (plus one chat-created each), bodies of `bodyBytes`. */
export function syntheticLog(options: { origin?: string; chats: number; events: number; bodyBytes: number; members?: string[] }): SyntheticLog {
  const origin = options.origin ?? randomUUID();
  const chats = Array.from({ length: options.chats }, () => randomUUID());
  const heads = new Map<string, ChainPosition>();
  const members = options.members ?? [`alice@${origin}`];
  let ms = Date.now();
  let counter = 0;
  const next = (chatId: string, kind: EventKind): Event => {
    const event = chainEvent(origin, heads.get(chatId), { chatId, senderUser: `alice@${origin}`, senderDevice: 'laptop', kind, ...(kind === EventKind.EVENT_KIND_CHAT_CREATED ? { members } : {}), body: randomBytes(options.bodyBytes) }, { ms, counter: counter++ });
    heads.set(chatId, { seq: event.seq, id: event.id });
    if (counter > 1_000) [ms, counter] = [ms + 1, 0];
    return event;
  };
  const events = chats.map((chatId) => next(chatId, EventKind.EVENT_KIND_CHAT_CREATED));
  for (let i = 0; i < options.events; i++) events.push(next(chats[i % chats.length]!, EventKind.EVENT_KIND_MESSAGE_POSTED));
  return { origin, chats, events };
}

/** Appends in batches as a node commits them. */
export async function appendAll(store: EventStore, events: readonly Event[], batch = 500): Promise<void> {
  for (let first = 0; first < events.length; first += batch) await store.append({ events: events.slice(first, first + batch) });
}

export interface SoloNode {
  node: TrellisNode;
  config: NodeConfig;
  dir: string;
  /** Stops the node (if running) and removes its folder. */
  cleanUp(): Promise<void>;
}

/** A CTS with no trusts on a loopback port, its key (and data, if `persistent`) in a temporary folder. */
export async function soloNode(options: { logger: Logger; persistent?: boolean; name?: string; store?: EventStore }): Promise<SoloNode> {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-projection-'));
  writeFileSync(join(dir, 'node.key'), generateIdentityPem(), { mode: 0o600 });
  const config = parseConfig({
    server: { id: randomUUID(), name: options.name ?? 'cts-solo', kind: 'CTS' },
    listen: '127.0.0.1:0',
    identity_key_file: join(dir, 'node.key'),
    store: options.persistent ? { data_dir: join(dir, 'data') } : { memory: true },
  });
  const node = await TrellisNode.start(config, { logger: options.logger, ...(options.store ? { store: options.store } : {}) });
  let stopped = false;
  return {
    node,
    config,
    dir,
    cleanUp: async () => {
      if (!stopped) await node.stop().catch(() => undefined);
      stopped = true;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A bus in memory: keeps what it acknowledged; can fail or hold the next sends. */
export class MemorySink implements RecordSink {
  readonly acknowledged: OutgoingRecord[] = [];
  readonly attempts: number[] = [];
  failNext = 0;
  /** Once this many are acknowledged, every later send hangs: the process died with it in flight. */
  hangAfter = Number.POSITIVE_INFINITY;

  async publish(records: readonly OutgoingRecord[]): Promise<void> {
    this.attempts.push(records[0]!.position);
    if (this.failNext > 0) {
      this.failNext -= 1;
      throw new Error('broker unreachable');
    }
    if (this.acknowledged.length >= this.hangAfter) await new Promise(() => undefined);
    this.acknowledged.push(...records);
  }
}

/** Per chain (chat, origin), the seqs in the order they came, copies dropped as a subscriber drops them. */
export function deliveredPerChain(records: readonly OutgoingRecord[]): Map<string, number[]> {
  const chains = new Map<string, number[]>();
  for (const record of records) {
    const event = ChatEventRecord.decode(record.value).event!;
    const key = `${event.chatId}/${event.origin}`;
    const seqs = chains.get(key) ?? [];
    if (seqs.length === 0 || event.seq > seqs[seqs.length - 1]!) seqs.push(event.seq);
    chains.set(key, seqs);
  }
  return chains;
}

