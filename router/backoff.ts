/**
 * Reconnect delay: exponential with "full jitter" (AWS architecture blog), so nodes
 * that lost a peer together do not redial in lockstep. Written here because the
 * reconnect loop is not a retried call with an end (what p-retry and friends model):
 * it runs for the node's life and resets after each good link.
 */
export function reconnectDelayMs(attempt: number, minMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
  return Math.round(minMs + random() * (ceiling - minMs));
}
