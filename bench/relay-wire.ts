/**
 * What the store-relay bound's processes say to each other: the task and answer of each
 * stage (bench/relay.ts, bench/relay-stage.ts), and the frames between stages, each a run
 * of sequence numbers followed by as many body-sized fillers, so a stage's socket carries
 * about the bytes a link frame does.
 */

/**
 * What each stage appends to: Trellis's event store (its events table, indexes and append
 * statement); the same engine with one table of one bytea column and its serial key, so
 * no schema of ours is in the figure (the engine's own floor); or nothing, leaving the
 * processes, sockets and commit spacing alone.
 */
export type RelayAppendsTo = 'event-store' | 'one-column' | 'nothing';

export interface RelayStageTask {
  dataDir: string;
  appendsTo: RelayAppendsTo;
  bodyBytes: number;
  /** Messages of the run (its sample chat has one more event: the creation). */
  events: number;
  ratePerS: number;
  /** Where the previous stage connects; absent for the first stage, which posts the events itself. */
  listenPath?: string;
  /** The next stage's socket; absent for the last stage, which notes when each event was durable. */
  nextPath?: string;
  /** A transit that cuts through: it passes what it receives on at once and commits beside it, instead of after its commit. */
  forwardOnReceipt: boolean;
}

export interface RelayAnswer {
  /** The first stage: [seq, when it was posted]. */
  postedAt?: Array<[number, number]>;
  /** The last stage: [seq, when its commit returned]. */
  durableAt?: Array<[number, number]>;
  /** The stage's CPU from the start of the run to its last commit. */
  cpuMs: number;
  commits: number;
}

const HEADER_BYTES = 8;

/** [u32 frame length][u32 count][count × u32 seq][count × bodyBytes filler]. */
export function encodeSeqs(seqs: readonly number[], bodyBytes: number): Buffer {
  const length = HEADER_BYTES + seqs.length * (4 + bodyBytes);
  const frame = Buffer.alloc(length);
  frame.writeUInt32BE(length, 0);
  frame.writeUInt32BE(seqs.length, 4);
  seqs.forEach((seq, index) => frame.writeUInt32BE(seq, HEADER_BYTES + index * 4));
  return frame;
}

/** Reassembles frames from a socket's chunks. */
export class SeqReader {
  private buffered: Buffer = Buffer.alloc(0);

  push(chunk: Buffer, onFrame: (seqs: number[]) => void): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    while (this.buffered.length >= HEADER_BYTES) {
      const length = this.buffered.readUInt32BE(0);
      if (this.buffered.length < length) return;
      const count = this.buffered.readUInt32BE(4);
      const seqs = Array.from({ length: count }, (_, index) => this.buffered.readUInt32BE(HEADER_BYTES + index * 4));
      this.buffered = this.buffered.subarray(length);
      onFrame(seqs);
    }
  }
}
