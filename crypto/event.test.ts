import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { EventKind, type Event } from '../proto/gen/trellis/v1/event.js';
import { EventError, type EventErrorCode } from './errors.js';
import { chainEvent, checkEventShape, checkRun, eventId, logDigest, signEventId, EVENT_BODY_BYTES_MAX, type ChainPosition } from './event.js';
import { identityFromSeed } from './identity.js';

const origin = identityFromSeed(Buffer.alloc(32, 0x11));
const otherOrigin = identityFromSeed(Buffer.alloc(32, 0x22));

const draft = (n: number, chatId = 'chat-1') => ({
  chatId,
  senderUser: 'alice@cts.example',
  senderDevice: 'laptop',
  kind: EventKind.EVENT_KIND_MESSAGE_POSTED,
  body: Buffer.from(`sealed body ${n} `.repeat(4)),
});

/** A chain of `length` events of cts.example in one chat, signed only at its last event. */
function makeRun(length = 3, originId = 'cts.example', chatId = 'chat-1'): Event[] {
  const run: Event[] = [];
  let head: ChainPosition | undefined;
  for (let n = 1; n <= length; n++) {
    const event = chainEvent(originId, head, draft(n, chatId), { ms: 1_700_000_000_000 + n, counter: 0 });
    run.push(event);
    head = { seq: event.seq, id: event.id };
  }
  return signLast(run);
}

function signLast(run: Event[], signer = origin): Event[] {
  const last = run[run.length - 1]!;
  return [...run.slice(0, -1), { ...last, signature: signEventId(signer, last.id) }];
}

const flipBit = (bytes: Uint8Array, index = 0): Buffer => {
  const copy = Buffer.from(bytes);
  copy[index]! ^= 0x01;
  return copy;
};

/** The event with its id recomputed: what a forger does so the id check passes. */
const rehashed = (event: Event): Event => ({ ...event, id: eventId(event) });

function refusal(check: () => unknown): EventError {
  try {
    check();
  } catch (error) {
    expect(error).toBeInstanceOf(EventError);
    return error as EventError;
  }
  throw new Error('expected an EventError, but the check passed');
}

function expectRefused(check: () => unknown, code: EventErrorCode, seq?: number): void {
  const error = refusal(check);
  expect(error.code).toBe(code);
  if (seq !== undefined) expect(error.message).toContain(`seq ${seq}`);
}

describe('checkRun', () => {
  it('accepts a run signed only at its last event and returns its events in order', () => {
    const run = makeRun();
    const checked = checkRun(run, origin.publicKey);
    expect(checked.map((event) => event.seq)).toEqual([1, 2, 3]);
    expect(checked.map((event) => event.id)).toEqual(run.map((event) => event.id));
    expect(checked[2]!.signature).toEqual(run[2]!.signature);
  });

  it('accepts a lone signed event', () => {
    expect(checkRun(makeRun(1), origin.publicKey)).toHaveLength(1);
  });

  it('strips the inner signatures it did not check, even garbage ones, and keeps the last one', () => {
    const run = makeRun();
    const withInnerSignatures = run.map((event, i) => (i < 2 ? { ...event, signature: Buffer.alloc(64, 0xee) } : event));
    const checked = checkRun(withInnerSignatures, origin.publicKey);
    expect(checked[0]!.signature).toHaveLength(0);
    expect(checked[1]!.signature).toHaveLength(0);
    expect(checked[2]!.signature).toEqual(run[2]!.signature);
    expect(withInnerSignatures[0]!.signature).toHaveLength(64);
  });

  it('refuses a run whose body had one bit flipped', () => {
    const run = makeRun();
    run[1] = { ...run[1]!, body: flipBit(run[1]!.body, 3) };
    expectRefused(() => checkRun(run, origin.publicKey), 'bad-id', 2);
  });

  it('refuses a run whose last signature had one bit flipped', () => {
    const run = makeRun();
    run[2] = { ...run[2]!, signature: flipBit(run[2]!.signature, 40) };
    expectRefused(() => checkRun(run, origin.publicKey), 'bad-signature', 3);
  });

  it('refuses a run whose last event carries no signature', () => {
    const run = makeRun();
    run[2] = { ...run[2]!, signature: Buffer.alloc(0) };
    expectRefused(() => checkRun(run, origin.publicKey), 'bad-signature', 3);
  });

  it('refuses a run whose prev had one bit flipped', () => {
    const run = makeRun();
    run[1] = { ...run[1]!, prev: flipBit(run[1]!.prev, 31) };
    expectRefused(() => checkRun(run, origin.publicKey), 'bad-id', 2);
  });

  it('refuses a run whose prev was rewritten and the id re-hashed to match', () => {
    const run = makeRun();
    run[1] = rehashed({ ...run[1]!, prev: flipBit(run[1]!.prev, 31) });
    expectRefused(() => checkRun(run, origin.publicKey), 'bad-chain', 2);
  });

  it('refuses a run whose seq was changed', () => {
    const run = makeRun();
    run[1] = { ...run[1]!, seq: 5 };
    expectRefused(() => checkRun(run, origin.publicKey), 'bad-id', 5);
  });

  it('refuses a run whose seq skips one, even with the id re-hashed', () => {
    const run = makeRun();
    run[1] = rehashed({ ...run[1]!, seq: 3 });
    expectRefused(() => checkRun(run, origin.publicKey), 'bad-chain', 3);
  });

  it('refuses a reordered run', () => {
    const [first, second, third] = makeRun();
    expectRefused(() => checkRun([first!, third!, second!], origin.publicKey), 'bad-chain', 3);
  });

  it('refuses a run checked under another origin\'s key', () => {
    expectRefused(() => checkRun(makeRun(), otherOrigin.publicKey), 'bad-signature', 3);
  });

  it('refuses a run re-chained after a body change: every id checks, the last signature does not', () => {
    const original = makeRun();
    const forged: Event[] = [];
    let head: ChainPosition | undefined;
    for (const [i, event] of original.entries()) {
      const body = i === 0 ? flipBit(event.body) : event.body;
      const next = chainEvent(event.origin, head, { ...draft(i + 1), body }, { ms: event.hlcMs, counter: event.hlcCounter });
      forged.push(next);
      head = { seq: next.seq, id: next.id };
    }
    forged[2] = { ...forged[2]!, signature: original[2]!.signature };
    expectRefused(() => checkRun(forged, origin.publicKey), 'bad-signature', 3);
  });

  it('refuses a run that carries another origin\'s event inside, signed only by the run\'s last origin', () => {
    const [foreign] = makeRun(1, 'victim.example');
    const tail = chainEvent('cts.example', { seq: 1, id: foreign!.id }, draft(2), { ms: 1_700_000_000_002, counter: 0 });
    const run = signLast([{ ...foreign!, signature: Buffer.alloc(0) }, tail]);
    expectRefused(() => checkRun(run, origin.publicKey), 'bad-chain', 2);
  });

  it('refuses a run that crosses into another chat', () => {
    const [first] = makeRun(1, 'cts.example', 'chat-1');
    const second = chainEvent('cts.example', { seq: 1, id: first!.id }, draft(2, 'chat-2'), { ms: 1_700_000_000_002, counter: 0 });
    expectRefused(() => checkRun(signLast([first!, second]), origin.publicKey), 'bad-chain', 2);
  });

  it('refuses an empty run as malformed', () => {
    expectRefused(() => checkRun([], origin.publicKey), 'malformed');
  });

  it('refuses a run with a malformed event as malformed', () => {
    const run = makeRun();
    run[0] = { ...run[0]!, id: run[0]!.id.subarray(0, 31) };
    expectRefused(() => checkRun(run, origin.publicKey), 'malformed');
  });
});

describe('checkEventShape', () => {
  const good = (): Event => makeRun(1)[0]!;

  it('accepts a well-formed event and a body of exactly the maximum size', () => {
    expect(() => checkEventShape(good())).not.toThrow();
    expect(() => checkEventShape({ ...good(), body: Buffer.alloc(EVENT_BODY_BYTES_MAX) })).not.toThrow();
  });

  it.each<[string, (event: Event) => Event, RegExp]>([
    ['a body one byte over the maximum', (e) => ({ ...e, body: Buffer.alloc(EVENT_BODY_BYTES_MAX + 1) }), /body/],
    ['an id of 31 bytes', (e) => ({ ...e, id: e.id.subarray(0, 31) }), /^event id/],
    ['an id of 33 bytes', (e) => ({ ...e, id: Buffer.concat([e.id, Buffer.alloc(1)]) }), /^event id/],
    ['an empty chat id', (e) => ({ ...e, chatId: '' }), /chat_id/],
    ['an empty origin', (e) => ({ ...e, origin: '' }), /origin/],
    ['seq 0', (e) => ({ ...e, seq: 0 }), /seq/],
    ['a prev at seq 1', (e) => ({ ...e, prev: Buffer.alloc(32) }), /prev/],
    ['an unspecified kind', (e) => ({ ...e, kind: EventKind.EVENT_KIND_UNSPECIFIED }), /kind/],
    ['a signature of 63 bytes', (e) => ({ ...e, signature: e.signature.subarray(0, 63) }), /signature/],
  ])('rejects %s as malformed, naming the field', (_, mutate, field) => {
    const error = refusal(() => checkEventShape(mutate(good())));
    expect(error.code).toBe('malformed');
    expect(error.message).toMatch(field);
  });
});

describe('logDigest', () => {
  const [a, b, c] = makeRun().map((event) => event.id);

  it('is equal for the same ids in the same order', () => {
    expect(logDigest([a!, b!, c!])).toEqual(logDigest([Buffer.from(a!), Buffer.from(b!), Buffer.from(c!)]));
  });

  it('changes when two events swap places', () => {
    expect(logDigest([a!, b!, c!])).not.toEqual(logDigest([a!, c!, b!]));
  });

  it('changes when an event is missing', () => {
    expect(logDigest([a!, b!, c!])).not.toEqual(logDigest([a!, c!]));
  });

  it('is SHA-256 over the ids concatenated in order', () => {
    expect(logDigest([a!, b!])).toEqual(createHash('sha256').update(Buffer.concat([a!, b!])).digest());
  });
});
