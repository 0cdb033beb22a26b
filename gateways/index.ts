export { runCli, CliError, exitCodeOf, type CliIo } from './cli/index.js';
export { newChat, createdDraft, messageDraft, membersAddedDraft, membersRemovedDraft, readMessage, type DeviceChat } from './devices/index.js';
export { startAdminServer, adminClient, AdminError, AdminClientError, type AdminServer, type AdminClient, type TrustInput, type TrustView } from './admin/index.js';
