export { startAdminServer, type AdminExtras, AdminError, type AdminErrorCode, type AdminServer, CHAT_ID_CHARS_MAX, ADMIN_MESSAGE_BYTES_MAX } from './server.js';
export { adminClient, AdminClientError, ADMIN_CALL_TIMEOUT_MS, ADMIN_FETCH_ENTRIES_MAX, type AdminClient, type AdminClientErrorCode, type FetchOptions, type FetchProgress, type LinksReport } from './client.js';
export { ADMIN_PAGE_BYTES_MAX, ADMIN_PAGE_SIZE_DEFAULT, ADMIN_PAGE_SIZE_MAX, PAGE_TOKEN_CHARS_MAX, PageRequestError, type PageRequestErrorCode } from './paging.js';
export { WireMismatch, type TrustInput, type TrustView } from './views.js';
