export { REFERENCE_CHATS, type ReferenceChat } from './reference-chats.js';
