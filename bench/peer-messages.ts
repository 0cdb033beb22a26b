/** What the bench parent and its peer process say to each other over the fork IPC channel. */

/**
 * Parent → peer: the node config document (parseConfig input) and whether to report its
 * appends (the destination does, a transit does not), questions for its CPU time so far and its
 * resident memory now, then a stop.
 */
export type ToPeer = { type: 'start'; config: unknown; report: boolean } | { type: 'cpu' } | { type: 'stop' };

/**
 * Peer → parent. An 'appended' report names every event of the origin's that one
 * durable append stored, by chat and chain seq: within one chat a seq names one event
 * of the origin, and numbers are far cheaper to send than 32-byte ids.
 */
export type FromPeer =
  | { type: 'ready'; port: number }
  | { type: 'appended'; atMs: number; chats: Array<{ chatId: string; seqs: number[] }> }
  | { type: 'cpu'; cpuMs: number; rssBytes: number }
  | { type: 'failed'; message: string };
