export { startAdminServer, type AdminExtras, AdminError, type AdminErrorCode, type AdminServer, CHAT_ID_CHARS_MAX, ADMIN_MESSAGE_BYTES_MAX } from './server.js';
export { adminClient, AdminClientError, ADMIN_CALL_TIMEOUT_MS, type AdminClient, type AdminClientErrorCode, type LinksReport } from './client.js';
export { WireMismatch, type TrustInput, type TrustView } from './views.js';
