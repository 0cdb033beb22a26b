import { describe, expect, it } from 'vitest';
import type { StoredEvent } from '../../store/index.js';
import { AppendTail, TAIL_EVENTS_MAX } from './append-tail.js';

const event = (localSeq: number, chatId = 'chat-a', bodyBytes = 8): StoredEvent =>
  ({ localSeq, chatId, origin: 'self', seq: localSeq, body: Buffer.alloc(bodyBytes) }) as unknown as StoredEvent;

describe('the tail of recent appends', () => {
  it('answers what follows a position, filtered, in order and up to a limit', async () => {
    const tail = new AppendTail(10);
    // Local seqs have holes where other origins' events were appended.
    for (const localSeq of [11, 12, 15, 16, 20]) tail.push(event(localSeq, localSeq % 2 ? 'chat-b' : 'chat-a'));
    expect((await tail.after(10, 10, () => true))!.events.map((e) => e.localSeq)).toEqual([11, 12, 15, 16, 20]);
    expect((await tail.after(12, 10, () => true))!.events.map((e) => e.localSeq)).toEqual([15, 16, 20]);
    expect((await tail.after(13, 2, () => true))!.events.map((e) => e.localSeq)).toEqual([15, 16]);
    expect((await tail.after(10, 10, async (e) => e.chatId === 'chat-a'))!.events.map((e) => e.localSeq)).toEqual([12, 16, 20]);
    // A reader learns how far it looked, so it need not look at what it skipped again.
    expect(await tail.after(10, 1, (e) => e.chatId === 'chat-a')).toMatchObject({ scannedTo: 12 });
    expect(await tail.after(16, 5, (e) => e.chatId === 'chat-b')).toEqual({ events: [], scannedTo: 20 });
    expect(await tail.after(20, 10, () => true)).toEqual({ events: [], scannedTo: 20 });
  });

  it('sends a link that fell behind it to the store', async () => {
    const tail = new AppendTail(0);
    expect(await tail.after(0, 1, () => true)).toEqual({ events: [], scannedTo: 0 });
    for (let localSeq = 1; localSeq <= TAIL_EVENTS_MAX + 5; localSeq++) tail.push(event(localSeq));
    // The five oldest were evicted: positions before the sixth cannot be answered from memory.
    expect(await tail.after(4, 1, () => true)).toBeUndefined();
    expect((await tail.after(5, 1, () => true))!.events.map((e) => e.localSeq)).toEqual([6]);
    expect((await tail.after(TAIL_EVENTS_MAX + 4, 5, () => true))!.events.map((e) => e.localSeq)).toEqual([TAIL_EVENTS_MAX + 5]);
  });

  it('is bounded by bytes too', async () => {
    const tail = new AppendTail(0);
    for (let localSeq = 1; localSeq <= 70; localSeq++) tail.push(event(localSeq, 'chat-a', 1024 * 1024));
    expect(await tail.after(5, 1, () => true)).toBeUndefined();
    expect((await tail.after(6, 100, () => true))!.events).toHaveLength(64);
  });
});
