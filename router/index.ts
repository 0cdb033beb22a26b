export { TrellisNode, PostError, type LinkStatus, type NodeOptions, LOCAL_BATCH_EVENTS_MAX, REPLICA_POLL_MS, COMMIT_SPACING_MS } from './node.js';
export { CommitPacer } from './serial.js';
export { type LinkLeases, askAgainMs, renewEveryMs } from './replicas.js';
export { AppendTail, TAIL_EVENTS_MAX, TAIL_BODY_BYTES_MAX } from './queues/append-tail.js';
export {
  NodeInspector,
  type LinkColour,
  type GraphView,
  type ServerView,
  type LinkView,
  type ChatRouteView,
  type DestinationRoute,
  type LinkCounters,
  type DestinationQueue,
  type Listing,
  type GraphEntry,
  type ChatRouteEntry,
  type LinksEntry,
  type LinkHeader,
  type LinkCountersHeader,
  type DestinationHeader,
  sections,
  level,
} from './inspect.js';
export { type RouteCandidate, type PathClass, type ServerKind } from './routing/index.js';
export { loadConfig, parseConfig, storeLocation, replicationOf, parseTrust, type ParsedTrust, isLoopback, upstreamOf, type NodeConfig, type TrustConfig, type TrustRole, type LinkTuning, TRUST_PORT, TRUST_ROLES, TOKEN_CHARS_MIN } from './config.js';
export { ConfigError, LinkFailure, type LinkErrorCode } from './errors.js';
export { LinkSession, type LinkStats, type LinkEnd, BATCH_EVENTS_MAX } from './link.js';
export { dialHandshake, acceptHandshake, storelessDialContext, PROTOCOL_VERSION, type HandshakeContext, type LinkOpening, type LinkClaim } from './handshake.js';
export { FrameChannel } from './frame-channel.js';
export { Transport, GRPC_MESSAGE_BYTES_MAX } from './transport.js';
export { FailureRateLimiter, HANDSHAKE_FAILURES_MAX } from './rate-limit.js';
export { createLogger, type Logger } from './logger.js';
export { HybridClock, type Now } from './clock.js';
export { Routing, type RoutingDeps } from './routing/index.js';
export { withForwards, handedOver, inChat, type ForwardRoutes } from './queues/forwards.js';
