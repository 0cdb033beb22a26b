/**
 * What the checks against a hostile neighbour cost a transit per event, beside an Ed25519
 * verify in the same run: the forward destinations a frame names, narrowed to those the
 * sender may hand over (router/queues/forwards.ts, handedOver) and to the chat's servers
 * (inChat), and the origin's standing at the event's place in its chat (router/inbound.ts:
 * in the common case, after the chat's last membership change and a member, no store read).
 * Timed over frames of honest events as a link decodes them (a forward range shares one
 * destination array), through a real Routing.
 */
import { randomUUID } from 'node:crypto';
import { chainEvent, type ChainPosition } from '../crypto/index.js';
import { EventKind, type Event } from '../proto/gen/trellis/v1/event.js';
import { handedOver, inChat, Routing, withForwards, type ForwardRoutes, type TrustConfig } from '../router/index.js';
import { compareLogPlace, serverOfMember, type LogPlace } from '../store/index.js';
import { sharedNowMs } from './clock.js';

/** Events a frame carries (a link's default batch), the chats they fall in, and how long the loop runs. */
const FRAME_EVENTS = 512;
const CHATS = 4;
const SAMPLE_MS = 1_000;

export function measureTransitChecksUs(): number {
  const self = randomUUID();
  const sender = randomUUID();
  const below = [randomUUID(), randomUUID(), randomUUID()];
  // An ETS: the sender and the three destinations are CTS below it, each its own next hop.
  const trusts: TrustConfig[] = [sender, ...below].map((id) => ({ server_id: id, name: id.slice(0, 8), kind: 'CTS', token_for_accepting: 'x'.repeat(32), token_for_connecting: 'y'.repeat(32), status: 'enabled', allow_trust_search: false, role: 'downstream' }));
  const routing = new Routing({ selfId: self, transit: true, trusts: () => trusts, trustOf: (id) => trusts.find((trust) => trust.server_id === id), isUp: () => true, believed: () => undefined });
  routing.recompute();
  const routes: ForwardRoutes = { selfId: self, runsThrough: (destination, peerId) => routing.runsThrough(destination, peerId), knows: () => true };
  const members = [`s@${sender}`, ...below.map((id) => `m@${id}`)];
  const servers = new Set(members.map(serverOfMember));
  const frame = honestFrame(sender, members, below);
  const at: LogPlace = { hlcMs: 0, hlcCounter: 0, origin: sender, seq: 0 };
  let events = 0;
  let standing = 0;
  const start = sharedNowMs();
  while (sharedNowMs() - start < SAMPLE_MS) {
    const carried = withForwards(frame.events, frame.forwards);
    const kept = inChat(handedOver(carried, sender, routes).events, () => servers, (event) => event.kind !== EventKind.EVENT_KIND_MESSAGE_POSTED, routes).events;
    for (const event of kept) if (compareLogPlace(event, at) > 0 && servers.has(event.origin)) standing += 1;
    events += frame.events.length;
  }
  if (standing !== events) throw new Error('transit checks sample: an honest event did not stand');
  return ((sharedNowMs() - start) * 1000) / events;
}

/** A frame of the sender's messages in CHATS chats, each chat's run one forward range naming the three destinations. */
function honestFrame(sender: string, members: string[], destinations: string[]): { events: Event[]; forwards: Array<{ first: number; count: number; destinations: string[] }> } {
  const events: Event[] = [];
  const forwards: Array<{ first: number; count: number; destinations: string[] }> = [];
  const perChat = FRAME_EVENTS / CHATS;
  for (let chat = 0; chat < CHATS; chat++) {
    const chatId = randomUUID();
    let head: ChainPosition | undefined;
    forwards.push({ first: events.length, count: perChat, destinations });
    for (let i = 0; i < perChat; i++) {
      const event = chainEvent(sender, head, { chatId, senderUser: `s@${sender}`, senderDevice: 'd', kind: EventKind.EVENT_KIND_MESSAGE_POSTED, members: i === 0 ? members : [], body: Buffer.alloc(256) }, { ms: 1_000 + i, counter: 0 });
      head = { seq: event.seq, id: event.id };
      events.push(event);
    }
  }
  return { events, forwards };
}
