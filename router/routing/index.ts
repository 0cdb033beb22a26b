export { chooseRoute, policyName, type Neighbour, type NeighbourState, type PathClass, type RouteCandidate, type RouteChoice, type ServerKind } from './route-choice.js';
export { ReachabilityTable, PATHS_PER_FRAME_MAX, PATH_SERVERS_MAX, type ReachOutcome } from './reachability.js';
export { ServerDirectory, DIRECTORY_RECORDS_MAX, RECORDS_PER_FRAME_MAX, type ServerEntry, type OwnRecord, type DirectoryDeps } from './directory.js';
export { Routing, type RouteChange, type RoutingDeps } from './routing.js';
