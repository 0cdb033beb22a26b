import { randomUUID } from 'node:crypto';
import { newChatKey, sealBody, type EventDraft } from '../../crypto/index.js';
import { EventKind } from '../../proto/gen/trellis/v1/event.js';

/** A chat as its member devices see it: the id, the members and the key handed out of band. */
export interface TestChat {
  id: string;
  key: Uint8Array;
  members: string[];
}

export function newChat(members: string[]): TestChat {
  return { id: randomUUID(), key: newChatKey(), members };
}

export function createdDraft(chat: TestChat, sender: string): EventDraft {
  return {
    chatId: chat.id,
    senderUser: sender,
    senderDevice: 'laptop',
    kind: EventKind.EVENT_KIND_CHAT_CREATED,
    members: chat.members,
    body: sealBody(chat.key, { content: { $case: 'chatCreated', value: { title: 'test chat' } } }),
  };
}

export function messageDraft(chat: TestChat, sender: string, text: string): EventDraft {
  return {
    chatId: chat.id,
    senderUser: sender,
    senderDevice: 'laptop',
    kind: EventKind.EVENT_KIND_MESSAGE_POSTED,
    body: sealBody(chat.key, { content: { $case: 'messagePosted', value: { text } } }),
  };
}

export function membersAddedDraft(chat: TestChat, sender: string, added: string[]): EventDraft {
  chat.members = [...chat.members, ...added];
  return {
    chatId: chat.id,
    senderUser: sender,
    senderDevice: 'laptop',
    kind: EventKind.EVENT_KIND_MEMBERS_ADDED,
    members: chat.members,
    body: sealBody(chat.key, { content: { $case: 'membersChanged', value: { added, removed: [] } } }),
  };
}
