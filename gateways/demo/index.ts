export { REFERENCE_CHATS, type ReferenceChat } from './reference-chats.js';
export { runDemo, type DemoOptions, DEMO_LINK_WAIT_MS, DEMO_DELIVERY_WAIT_MS } from './federation-demo.js';
export { percentile, sharedNowMs } from './latency.js';
