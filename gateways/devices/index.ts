import { randomUUID } from 'node:crypto';
import { newChatKey, openBody, sealBody, type EventDraft } from '../../crypto/index.js';
import { EventKind, RoutingPolicy, type EventBody } from '../../proto/gen/trellis/v1/event.js';

/**
 * What a member device does before its server sees anything: it holds the chat key
 * (handed out of band until key epochs arrive) and seals every body with it. The demo
 * and the tests post through these; client sync will use the same drafts.
 */
export interface DeviceChat {
  id: string;
  key: Uint8Array;
  /** user@server-id of every member; the servers after the @ are where the chat lives. */
  members: string[];
  /** How its events may travel, set once in its chat-created event (default: fail over). */
  policy: RoutingPolicy;
}

export const DEFAULT_DEVICE = 'laptop';

export function newChat(members: string[], policy = RoutingPolicy.ROUTING_POLICY_UNSPECIFIED): DeviceChat {
  return { id: randomUUID(), key: newChatKey(), members: [...members], policy };
}

function draft(chat: DeviceChat, sender: string, kind: EventKind, body: EventBody, members?: string[]): EventDraft {
  return {
    chatId: chat.id,
    senderUser: sender,
    senderDevice: DEFAULT_DEVICE,
    kind,
    ...(members ? { members } : {}),
    body: sealBody(chat.key, body),
  };
}

export function createdDraft(chat: DeviceChat, sender: string, title = 'chat'): EventDraft {
  const created = draft(chat, sender, EventKind.EVENT_KIND_CHAT_CREATED, { content: { $case: 'chatCreated', value: { title } } }, chat.members);
  return chat.policy ? { ...created, routingPolicy: chat.policy } : created;
}

export function messageDraft(chat: DeviceChat, sender: string, text: string): EventDraft {
  return draft(chat, sender, EventKind.EVENT_KIND_MESSAGE_POSTED, { content: { $case: 'messagePosted', value: { text } } });
}

export function membersAddedDraft(chat: DeviceChat, sender: string, added: string[]): EventDraft {
  chat.members = [...chat.members, ...added];
  return draft(chat, sender, EventKind.EVENT_KIND_MEMBERS_ADDED, { content: { $case: 'membersChanged', value: { added, removed: [] } } }, chat.members);
}

export function membersRemovedDraft(chat: DeviceChat, sender: string, removed: string[]): EventDraft {
  chat.members = chat.members.filter((member) => !removed.includes(member));
  return draft(chat, sender, EventKind.EVENT_KIND_MEMBERS_REMOVED, { content: { $case: 'membersChanged', value: { added: [], removed } } }, chat.members);
}

/** The text of a posted message as a member device reads it; throws if the key does not open it. */
export function readMessage(chat: DeviceChat, sealed: Uint8Array): string {
  const body = openBody(chat.key, sealed);
  if (body.content?.$case !== 'messagePosted') throw new Error(`body holds ${body.content?.$case ?? 'nothing'}, not a message`);
  return body.content.value.text;
}
