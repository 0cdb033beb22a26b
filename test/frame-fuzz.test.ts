import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { between, pick, prng, type Random } from '../gateways/faults/index.js';
import type { Event } from '../proto/gen/trellis/v1/event.js';
import { Frame } from '../proto/gen/trellis/v1/link.js';
import { LinkFailure } from '../router/index.js';
import { checkedFrame } from '../router/link.js';
import { encodeForwards, withForwards } from '../router/queues/forwards.js';
import { createdDraft, messageDraft, newChat } from './support/devices.js';
import { TestPair, waitFor } from './support/federation.js';
import { InboundGenerator } from './support/inbound-generator.js';
import { RoguePeer, type RogueLink } from './support/rogue-peer.js';

/**
 * A fuzzer of frame decoding and of the inbound path: real frames (batches of a real
 * chain, with forward ranges; the node's own directory and reachability; backfill
 * answers and requests; acks, heartbeats, errors) and the property test's generator,
 * mutated by a seeded stream, fed (a) to the decoder and the link's frame checks, and
 * (b) to a real node over a real gRPC link by a peer that completed the handshake, with
 * batches also duplicated, swapped and replayed (what only a hostile peer does inside one
 * stream). The node must never crash, keep serving its honest peer and the rogue, and
 * lose nothing it had stored. Bounded by count, and the link part also by time.
 */
const SEED = 0xf022_0001;
/** Mutants through the decoder and the frame checks: pure, fast. */
const DECODE_ITERATIONS = 20_000;
/** Frames sent to the node over the link, and the most time that part may take. */
const LINK_FRAMES = 600;
const LINK_FUZZ_MS_MAX = 90_000;
/** Generator chats, and how long their chains grow. */
const FUZZ_CHATS = 3;
const CHAIN_EVENTS_MAX = 60;
const SKEW_MS = 300_000;
/** After a fatal refusal the rogue dials again; past this many the node is refusing it for good (a failure). */
const RECONNECTS_MAX = 200;
/** Between two frames sent, so the node reads, stores and answers as it would a live peer. */
const SEND_GAP_MS = 5;

type Mutation = (random: Random, bytes: Buffer, corpus: readonly Buffer[]) => Buffer;

/** Byte-level mutations of an encoded frame, each what a broken or hostile encoder could send. */
const MUTATIONS: ReadonlyArray<[string, Mutation]> = [
  ['flip bits', (random, bytes) => {
    const out = Buffer.from(bytes);
    for (let n = between(random, 1, 8); n > 0 && out.length > 0; n--) out[between(random, 0, out.length - 1)]! ^= 1 << between(random, 0, 7);
    return out;
  }],
  ['set a byte', (random, bytes) => {
    const out = Buffer.from(bytes);
    if (out.length > 0) out[between(random, 0, out.length - 1)] = pick(random, [0x00, 0xff, 0x7f, 0x80, between(random, 0, 255)]);
    return out;
  }],
  ['truncate', (random, bytes) => bytes.subarray(0, between(random, 0, bytes.length))],
  ['cut a range', (random, bytes) => {
    const at = between(random, 0, bytes.length);
    return Buffer.concat([bytes.subarray(0, at), bytes.subarray(Math.min(bytes.length, at + between(random, 1, 64)))]);
  }],
  ['repeat a range', (random, bytes) => {
    const at = between(random, 0, bytes.length);
    const range = bytes.subarray(at, at + between(random, 1, 64));
    return Buffer.concat([bytes.subarray(0, at), range, range, bytes.subarray(at + range.length)]);
  }],
  ['insert bytes', (random, bytes) => {
    const at = between(random, 0, bytes.length);
    const noise = Buffer.from(Array.from({ length: between(random, 1, 16) }, () => between(random, 0, 255)));
    return Buffer.concat([bytes.subarray(0, at), noise, bytes.subarray(at)]);
  }],
  ['splice two frames', (random, bytes, corpus) => {
    const other = pick(random, corpus);
    return Buffer.concat([bytes.subarray(0, between(random, 0, bytes.length)), other.subarray(between(random, 0, other.length))]);
  }],
];

function mutate(random: Random, corpus: readonly Buffer[]): { name: string; bytes: Buffer } {
  let bytes = pick(random, corpus);
  const names: string[] = [];
  for (let n = between(random, 1, 3); n > 0; n--) {
    const [name, mutation] = pick(random, MUTATIONS);
    bytes = mutation(random, bytes, corpus);
    names.push(name);
  }
  return { name: names.join(' + '), bytes };
}

/** Decoded, then the checks a link runs as it reads: throws only a LinkFailure when it refuses. */
function checkAsLinkReads(frame: Frame): void {
  const checked = checkedFrame(frame);
  if (checked.kind?.$case === 'batch') withForwards(checked.kind.value.events, checked.kind.value.forwards);
}

describe('frames mutated from real ones, to the decoder and to a node over a real link', () => {
  let pair: TestPair;
  let rogue: RoguePeer;
  const corpus: Buffer[] = [];
  /** Batches as sent (real, unmutated), for duplicates, swaps and replays. */
  const sentBatches: Frame[] = [];
  let generator: InboundGenerator;
  const honest = { chat: newChat([]), ids: [] as string[] };
  const fuzzChats = Array.from({ length: FUZZ_CHATS }, () => randomUUID());

  beforeAll(async () => {
    pair = await TestPair.start();
    await waitFor('A and B linked', () => pair.a.link(pair.b.id) !== undefined);
    // What A holds before the fuzz: an honest chat with B, from both sides.
    honest.chat = newChat([`alice@${pair.a.id}`, `bob@${pair.b.id}`]);
    await pair.a.post(createdDraft(honest.chat, `alice@${pair.a.id}`));
    for (let i = 0; i < 5; i++) await pair.b.post(messageDraft(honest.chat, `bob@${pair.b.id}`, `before the fuzz ${i}`));
    await waitFor('the honest chat on A', async () => (await pair.a.store.chatSummary(honest.chat.id)).events === 6);
    honest.ids = (await pair.a.store.chatLog(honest.chat.id)).map((event) => event.id.toString('hex'));

    rogue = await RoguePeer.attach(pair.a);
    const link = await rogue.connect();
    // The node's own greeting: real directory and reachability frames.
    corpus.push(Frame.encode({ kind: { $case: 'directory', value: await link.until('directory') } }).finish() as Buffer);
    corpus.push(Frame.encode({ kind: { $case: 'reachability', value: await link.until('reachability') } }).finish() as Buffer);
    const chat = rogue.newChat();
    const chain = rogue.events(chat, 12);
    const batch = (events: Event[], lastLinkSeq: number, forwardTo: string[][] = []): Frame => ({ kind: { $case: 'batch', value: { lastLinkSeq, events, forwards: encodeForwards(forwardTo) } } });
    for (const frame of [
      batch(chain.slice(0, 4), 1),
      batch(rogue.signedRun(chain.slice(4, 9)), 2, [[pair.a.id], [pair.a.id], [], [pair.b.id, pair.a.id], [pair.b.id]]),
      { kind: { $case: 'backfillAnswer', value: { chatId: chat.id, origin: rogue.id, events: chain.slice(9), more: false } } },
      { kind: { $case: 'backfillRequest', value: { chatId: chat.id, origin: pair.a.id, fromSeq: 1 } } },
      { kind: { $case: 'ack', value: { linkSeq: 2 } } },
      { kind: { $case: 'heartbeat', value: { sentAtMs: Date.now() } } },
      { kind: { $case: 'error', value: { code: 'bad-chain', message: 'a refusal', fatal: false } } },
    ] satisfies Frame[]) {
      corpus.push(Frame.encode(frame).finish() as Buffer);
    }
    link.close();
    generator = new InboundGenerator({
      random: prng(SEED ^ 0x9e4e),
      origins: [{ id: rogue.id, identity: rogue.identity }],
      outsiders: 0,
      members: [`victor@${pair.a.id}`],
      chats: fuzzChats,
      chainEventsMax: CHAIN_EVENTS_MAX,
      skewMs: SKEW_MS,
      storedSeq: async (chatId, origin) => (await pair.a.store.head(chatId, origin))?.seq ?? 0,
    });
  });
  afterAll(() => pair?.stop());

  it(`the decoder and the frame checks refuse ${DECODE_ITERATIONS} mutants only with errors (the checks only with a LinkFailure), never a crash`, () => {
    const random = prng(SEED);
    const outcomes = { undecodable: 0, refusedByChecks: 0, passed: 0 };
    for (let i = 0; i < DECODE_ITERATIONS; i++) {
      const { name, bytes } = mutate(random, corpus);
      let frame: Frame;
      try {
        frame = Frame.decode(bytes);
      } catch (error) {
        // The decoder's refusal becomes the call's error on a link: an Error, never anything thrown raw.
        expect(error, name).toBeInstanceOf(Error);
        outcomes.undecodable += 1;
        continue;
      }
      try {
        checkAsLinkReads(frame);
        outcomes.passed += 1;
      } catch (error) {
        expect(error, `${name}: ${String(error)}`).toBeInstanceOf(LinkFailure);
        outcomes.refusedByChecks += 1;
      }
    }
    // Each side was reached: mutants the decoder refused, mutants the checks refused, and mutants that passed on to the inbound path.
    expect(outcomes.undecodable).toBeGreaterThan(DECODE_ITERATIONS / 20);
    expect(outcomes.refusedByChecks).toBeGreaterThan(0);
    expect(outcomes.passed).toBeGreaterThan(DECODE_ITERATIONS / 20);
  });

  it(`a node fed ${LINK_FRAMES} mutated, generated, duplicated and swapped frames keeps serving and loses nothing`, async () => {
    const random = prng(SEED + 1);
    const tally = { sent: 0, decodeRefused: 0, reconnects: 0, nonFatal: 0, fatal: 0, duplicated: 0, swapped: 0 };
    let link: RogueLink | undefined;
    const drain = (current: RogueLink) =>
      void (async () => {
        for (;;) {
          const frame = await current.channel.next().catch(() => undefined);
          if (!frame) return;
          if (frame.kind?.$case === 'error') tally[frame.kind.value.fatal ? 'fatal' : 'nonFatal'] += 1;
        }
      })();
    const liveLink = async (): Promise<RogueLink> => {
      if (link && pair.a.link(rogue.id)) return link;
      link?.close();
      tally.reconnects += 1;
      if (tally.reconnects > RECONNECTS_MAX) throw new Error(`the node refused the rogue ${RECONNECTS_MAX} times: it stopped serving a trusted peer`);
      await waitFor('the rogue link replaced', () => pair.a.link(rogue.id) === undefined, 10_000);
      link = await rogue.connect();
      drain(link);
      return link;
    };
    const deadline = Date.now() + LINK_FUZZ_MS_MAX;
    for (let i = 0; i < LINK_FRAMES && Date.now() < deadline; i++) {
      const current = await liveLink();
      const roll = random();
      let frames: Frame[];
      if (roll < 0.4) {
        // A byte mutant that still decodes: whatever the decoder lets through reaches the link.
        const { bytes } = mutate(random, corpus);
        try {
          frames = [Frame.decode(bytes)];
        } catch {
          tally.decodeRefused += 1;
          continue;
        }
      } else if (roll < 0.85) {
        // Copies: the generator keeps its honest chains, which a field mutant must not change.
        const events = (await generator.run(Date.now())).map((event) => ({ ...event }));
        if (events.length === 0) continue;
        // Field mutants of the generator's run: a wrong seq, a bit off in an id, a prev or a signature.
        if (random() < 0.3) {
          const target = pick(random, events);
          const field = pick(random, ['seq', 'id', 'prev', 'signature'] as const);
          if (field === 'seq') target.seq = pick(random, [0, target.seq + 1, 2 ** 31, Number.MAX_SAFE_INTEGER]);
          else if (target[field].length > 0) target[field] = Buffer.from(target[field]).fill(between(random, 0, 255), 0, 1);
        }
        const frame: Frame = { kind: { $case: 'batch', value: { lastLinkSeq: 0, events, forwards: [] } } };
        sentBatches.push(frame);
        frames = [frame];
      } else if (sentBatches.length >= 2) {
        // Inside one stream only a hostile peer does this: a batch twice, two swapped, an old one replayed.
        const [a, b] = [pick(random, sentBatches), pick(random, sentBatches)];
        if (random() < 0.5) {
          frames = [a, a];
          tally.duplicated += 1;
        } else {
          frames = [b, a];
          tally.swapped += 1;
        }
      } else continue;
      for (const frame of frames) {
        try {
          // Generated batches carry the link's next sequence; mutants and replays keep whatever they hold.
          if (frame.kind?.$case === 'batch' && frame.kind.value.lastLinkSeq === 0) await current.sendBatch(frame.kind.value.events);
          else await current.send(frame);
          tally.sent += 1;
        } catch {
          // The node ended the link: the next frame dials again.
        }
      }
      await new Promise((resolve) => setTimeout(resolve, SEND_GAP_MS));
    }
    link?.close();
    console.log(`frame fuzz over the link: ${JSON.stringify(tally)}`);
    expect(tally.sent).toBeGreaterThan(LINK_FRAMES / 2);
    // The node answered: refusals it could carry on from, and links it ended.
    expect(tally.nonFatal + tally.fatal + tally.reconnects).toBeGreaterThan(1);
    expect(tally.duplicated + tally.swapped).toBeGreaterThan(0);

    // The generator's runs reached the store, not only the refusals.
    const stored = await Promise.all(fuzzChats.map(async (chatId) => (await pair.a.store.chatSummary(chatId)).events));
    expect(stored.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    // Nothing A had stored is lost.
    const after = new Set((await pair.a.store.chatLog(honest.chat.id)).map((event) => event.id.toString('hex')));
    expect(honest.ids.filter((id) => !after.has(id))).toEqual([]);
    // A keeps serving its honest peer, both ways.
    await pair.b.post(messageDraft(honest.chat, `bob@${pair.b.id}`, 'after the fuzz'));
    await pair.a.post(messageDraft(honest.chat, `alice@${pair.a.id}`, 'after the fuzz'));
    await waitFor('the honest chat carries on after the fuzz', async () => (await pair.a.store.chatSummary(honest.chat.id)).events === 8 && (await pair.b.store.chatSummary(honest.chat.id)).events === 8);
    // And the rogue itself, on a fresh link: a good chat is stored and acknowledged without refusal.
    await waitFor('the rogue link replaced', () => pair.a.link(rogue.id) === undefined, 10_000);
    const good = await rogue.connect();
    try {
      const chat = rogue.newChat();
      expect(await good.exchange(rogue.events(chat, 3))).toEqual([]);
      expect((await pair.a.store.chatSummary(chat.id)).events).toBe(3);
    } finally {
      good.close();
    }
  }, LINK_FUZZ_MS_MAX + 60_000);
});
