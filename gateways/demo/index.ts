export { REFERENCE_CHATS, type ReferenceChat } from './reference-chats.js';
export { runDemo, loadFederation, type DemoOptions, DEMO_LINK_WAIT_MS, DEMO_DELIVERY_WAIT_MS } from './federation-demo.js';
export { processNode, type ProcessNode, type DemoNode } from './demo-node.js';
export { percentile, sharedNowMs } from './latency.js';
