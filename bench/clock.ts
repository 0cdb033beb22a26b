/** The demo and the bench measure latency the same way. */
export { percentile, sharedNowMs } from '../gateways/demo/latency.js';
