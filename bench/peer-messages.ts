import type { AppendTime } from './store-timer.js';

/** What the bench parent and its peer process say to each other over the fork IPC channel. */

/**
 * Parent → peer: the node config document (parseConfig input) and whether to report its
 * appends (the destination does, a transit does not), questions for its CPU time so far and its
 * resident memory now, then a stop.
 */
export type ToPeer = { type: 'start'; config: unknown; report: boolean } | { type: 'cpu' } | { type: 'stop' };

/**
 * One durable append at the peer: when, and every event of the origin's it stored, by chat
 * and chain seq (within one chat a seq names one event of the origin, and numbers are far
 * cheaper to send than 32-byte ids).
 */
export interface AppendReport {
  atMs: number;
  chats: Array<{ chatId: string; seqs: number[] }>;
}

/**
 * Peer → parent. Appends are reported in batches (see link-peer.ts): each carries its own
 * time, so batching delays only the parent's reading, never a measured latency.
 */
export type FromPeer =
  | { type: 'ready'; port: number }
  | { type: 'appended'; reports: AppendReport[] }
  | { type: 'cpu'; cpuMs: number; rssBytes: number; store: AppendTime }
  | { type: 'failed'; message: string };
