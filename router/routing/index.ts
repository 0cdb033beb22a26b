export { chooseRoute, policyName, type Neighbour, type NeighbourState, type PathClass, type RouteCandidate, type RouteChoice, type ServerKind } from './route-choice.js';
export { ReachabilityTable, PATHS_PER_FRAME_MAX, PATH_SERVERS_MAX, PATHS_PER_NEIGHBOUR_MAX, PATHS_MAX, UNVOUCHED_PATHS_PER_NEIGHBOUR_MAX, type ReachOutcome, type PathRefusals, type PathJudge } from './reachability.js';
export {
  ServerDirectory,
  RecordRefused,
  DIRECTORY_RECORDS_MAX,
  RECORDS_PER_FRAME_MAX,
  RECORDS_PER_ATTESTER_MAX,
  PENDING_RECORDS_MAX,
  PENDING_RECORDS_PER_PEER_MAX,
  ATTESTATIONS_PER_RECORD_MAX,
  ATTESTATION_CHAIN_MAX,
  type ServerEntry,
  type OwnRecord,
  type DirectoryDeps,
  type RecordRefusalCode,
} from './directory.js';
export { authorityOver, judgePath, trustMismatch, type Authority, type PathVerdict, type PathRefusalCode, type Vouchable } from './authority.js';
export { Routing, type RouteChange, type RoutingDeps } from './routing.js';
