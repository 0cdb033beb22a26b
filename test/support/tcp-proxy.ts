/** The fault suite's proxy serves the tests too: one loopback TCP proxy that freezes, cuts, partitions, delays and trickles. */
export { TcpProxy } from '../../gateways/faults/tcp-proxy.js';
