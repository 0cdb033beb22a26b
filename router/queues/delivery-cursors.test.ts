import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openPglite, SqlEventStore, type EventStore, type SqlDriver } from '../../store/index.js';
import { DeliveryCursors, type RewindableLink } from './delivery-cursors.js';

/** A link that records where it was asked to resend from; every rewind starts batch `nextBatch`. */
class RecordingLink implements RewindableLink {
  readonly rewinds: number[] = [];
  nextBatch = 1;
  rewind(toLocalSeq: number): number {
    this.rewinds.push(toLocalSeq);
    return this.nextBatch;
  }
}

const [X, ETS, TTS] = ['x', 'ets', 'tts'];

describe('delivery cursors: handed to a hop, delivered end to end', () => {
  let driver: SqlDriver;
  let store: EventStore;
  let cursors: DeliveryCursors;
  beforeEach(async () => {
    driver = await openPglite();
    store = new SqlEventStore(driver);
    cursors = new DeliveryCursors(store);
    await cursors.load();
  });
  afterEach(() => store.close());

  /** X carried by the ETS, which acknowledged batch 1 ending at local seq 40. */
  function handedToEts(): void {
    cursors.moved(X, undefined, ETS, new RecordingLink());
    cursors.acked(ETS, 1, 40);
  }

  it('lets a transit\'s ack hand events over, and only the destination\'s own ack deliver them', () => {
    handedToEts();
    expect([cursors.handedTo(X), cursors.deliveredTo(X)]).toEqual([40, 0]);

    const direct = new RecordingLink();
    cursors.linkUp(X, 10, [], direct);
    cursors.moved(X, ETS, X, direct);
    expect(direct.rewinds).toEqual([40]);
    expect([cursors.handedTo(X), cursors.deliveredTo(X)]).toEqual([40, 10]);
    cursors.acked(X, 1, 55);
    expect([cursors.handedTo(X), cursors.deliveredTo(X)]).toEqual([55, 55]);
  });

  it('hands back to the delivered position, and the next route resends from there', () => {
    handedToEts();
    expect(cursors.handBack(X, ETS)).toBe(40);
    const next = new RecordingLink();
    cursors.moved(X, ETS, TTS, next);
    expect(next.rewinds).toEqual([0]);
    // The old hop's late acks no longer move X: it left that link.
    cursors.acked(ETS, 2, 60);
    expect(cursors.handedTo(X)).toBe(0);
    expect(cursors.handBack(X, ETS)).toBe(0);
  });

  it('resends a hop that handed back and announces again only from where it had taken, and others from delivered', () => {
    handedToEts();
    cursors.handBack(X, ETS);
    const other = new RecordingLink();
    cursors.moved(X, ETS, TTS, other);
    cursors.acked(TTS, 1, 50);
    cursors.handBack(X, TTS);
    const back = new RecordingLink();
    cursors.moved(X, TTS, ETS, back);
    // The ETS had taken up to 40; what the TTS took past it is the ETS's to get.
    expect([other.rewinds, back.rewinds]).toEqual([[0], [40]]);
    expect(cursors.handedTo(X)).toBe(0);
  });

  it('keeps what a hop took when its link only drops', () => {
    handedToEts();
    cursors.linkDown(ETS);
    const next = new RecordingLink();
    cursors.moved(X, ETS, TTS, next);
    expect(next.rewinds).toEqual([40]);
  });

  it('keeps both positions across a restart, and reads a row from before handed_seq as both', async () => {
    handedToEts();
    await cursors.flush();
    const restarted = new DeliveryCursors(store);
    await restarted.load();
    expect([restarted.handedTo(X), restarted.deliveredTo(X)]).toEqual([40, 0]);

    // Before handed_seq, delivered_seq held the hop's position: it stays the resend point, as it was.
    await driver.query(`insert into destination_cursors (server_id, delivered_seq) values ('old', 7)`);
    expect((await store.deliveredCursors()).get('old')).toEqual({ deliveredSeq: 7, handedSeq: 7 });
  });
});
