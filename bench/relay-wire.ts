/**
 * What the store-relay bound's processes say to each other: its IPC messages, and the
 * frames between stages, each a run of sequence numbers followed by as many body-sized
 * fillers, so a stage's socket carries about the bytes a link frame does.
 */

export interface RelayStageTask {
  dataDir: string;
  bodyBytes: number;
  /** Messages of the run (its sample chat has one more event: the creation). */
  events: number;
  /** A transit of the chain: with cutThrough it passes what it receives on at once and commits beside it, instead of after its commit. */
  forwardOnReceipt: boolean;
  /** The least time between the starts of two commits, as a node spaces its own (router/serial.ts). */
  commitSpacingMs: number;
}

export type ToRelayStage =
  | { type: 'prepare'; task: RelayStageTask }
  /** The next stage's port; absent for the last stage, which reports to the parent instead. */
  | { type: 'connect'; port?: number }
  | { type: 'go' }
  | { type: 'finish' };

export type RelayReport =
  | { type: 'listening'; port: number }
  | { type: 'connected' }
  /** The last stage: [seq, when its commit returned] for each event since the last report. */
  | { type: 'durable'; seqs: Array<[number, number]> }
  | { type: 'finished'; cpuMs: number; commits: number }
  | { type: 'error'; message: string };

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
