/** A batch may hold at most this many events; more is a protocol violation that closes the link. A signature thus covers at most this many. */
export const BATCH_EVENTS_MAX = 1024;
