import { MEMBERSHIP_KINDS } from '../../crypto/index.js';
import type { EventStore, StoredEvent } from '../../store/index.js';

/** Chats whose member servers are kept in memory; past it the oldest is read again when needed. */
export const DESTINATION_CHATS_MAX = 10_000;

/**
 * The servers each chat has members on (store: chat_servers), as a chat-event record
 * names them. Read once per chat and kept; a membership event in a batch reads its chat
 * again (the store projected it when it was appended, before the batch was read).
 */
export class ChatDestinations {
  private readonly servers = new Map<string, string[]>();

  constructor(private readonly store: Pick<EventStore, 'chatServersOf'>) {}

  async of(events: readonly StoredEvent[]): Promise<Map<string, readonly string[]>> {
    for (const event of events) if (MEMBERSHIP_KINDS.has(event.kind)) this.servers.delete(event.chatId);
    const chats = new Set(events.map((event) => event.chatId));
    const missing = [...chats].filter((chatId) => !this.servers.has(chatId));
    if (missing.length > 0) {
      const read = await this.store.chatServersOf(missing);
      // A chat whose creation has not reached us yet has none: not kept, so it is read again.
      for (const [chatId, servers] of read) this.servers.set(chatId, servers);
      while (this.servers.size > DESTINATION_CHATS_MAX) this.servers.delete(this.servers.keys().next().value!);
    }
    return new Map([...chats].map((chatId) => [chatId, this.servers.get(chatId) ?? []]));
  }
}
