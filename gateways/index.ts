export { runCli, CliError, exitCodeOf, type CliIo } from './cli/index.js';
export { newChat, createdDraft, messageDraft, membersAddedDraft, readMessage, type DeviceChat } from './devices/index.js';
