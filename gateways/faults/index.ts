export { FaultError, type FaultErrorCode } from './errors.js';
export { makeStoreTemplate, FaultFederation, FAULT_LINK, NODE_START_WAIT_MS } from './federation.js';
export { runFaults, printSchedule, type FaultRunOptions, type FaultRunResult, LINK_WAIT_MS, CONVERGE_WAIT_MS } from './run.js';
export { makeSchedule, describeFault, type Schedule, type Step, type Fault, type LinkName } from './schedule.js';
export { TcpProxy, PROXY_HELD_BYTES_MAX, type PartitionKind, type ProxyTarget } from './tcp-proxy.js';
export { prng, pick, between, type Random } from './prng.js';
export { main as faultsMain, RUN_MS_DEFAULT, KILLS_DEFAULT } from './faults.js';
