import type { Event } from '../../proto/gen/trellis/v1/event.js';
import type { Forward } from '../../proto/gen/trellis/v1/link.js';
import { FORWARD_SET_MAX, serverOfMember, type CarriedEvent } from '../../store/index.js';
import { LinkFailure } from '../errors.js';

export { FORWARD_SET_MAX };

/** Destinations one range may name, and the longest server id in it. */
export const FORWARD_DESTINATIONS_MAX = 1024;
const SERVER_ID_CHARS_MAX = 64;

/** The ranges of a frame: consecutive events that are passed on to the same servers share one. */
export function encodeForwards(destinations: ReadonlyArray<readonly string[]>): Forward[] {
  const ranges: Forward[] = [];
  destinations.forEach((servers, index) => {
    if (servers.length === 0) return;
    const last = ranges.at(-1);
    if (last && last.first + last.count === index && sameSet(last.destinations, servers)) last.count += 1;
    else ranges.push({ first: index, count: 1, destinations: [...servers] });
  });
  return ranges;
}

/** The frame's events, each with what the receiver passes it on to; throws on ranges no honest sender makes. */
export function withForwards(events: readonly Event[], forwards: readonly Forward[]): CarriedEvent[] {
  if (forwards.length === 0) return events as Event[];
  const carried: CarriedEvent[] = [...events];
  let covered = 0;
  for (const { first, count, destinations } of forwards) {
    if (first < covered || count < 1 || first + count > events.length) throw new LinkFailure('unexpected-frame', `forward range ${first}+${count} is out of order or past the frame's ${events.length} events`);
    if (destinations.length === 0 || destinations.length > FORWARD_DESTINATIONS_MAX || !destinations.every((id) => id.length > 0 && id.length <= SERVER_ID_CHARS_MAX)) {
      throw new LinkFailure('unexpected-frame', `forward range ${first}+${count} names no destination, too many, or a malformed id`);
    }
    for (let index = first; index < first + count; index++) carried[index] = { ...events[index]!, forwardTo: destinations };
    covered = first + count;
  }
  return carried;
}

/** How a transit sees its routes when it judges what a neighbour hands over (router/routing/routing.ts). */
export interface ForwardRoutes {
  readonly selfId: string;
  /** Whether our route to `destination` runs back through `peerId`: a path we do not announce to it (split horizon). */
  runsThrough(destination: string, peerId: string): boolean;
  /** Whether `serverId` is a server this node knows (its directory, or a trust). */
  knows(serverId: string): boolean;
}

/** Events with what a judgement kept of their destinations, and how many named destinations it refused. */
export interface Narrowed<E extends CarriedEvent> {
  events: E[];
  refused: number;
}

/**
 * What a transit keeps of the destinations `sender` names for each event: neither the
 * sender, nor us, nor the event's origin, nor a server our route to runs back through the
 * sender. A server we have no route to now is kept: the event waits for one (store and
 * forward), and our announcement may not have reached the sender yet. Whether a server
 * belongs to the chat is judged where the chat's members are known (inChat).
 */
export function handedOver<E extends CarriedEvent>(events: readonly E[], sender: string, routes: ForwardRoutes): Narrowed<E> {
  return narrow(events, (event) => event.origin, (event, server) => server !== sender && server !== routes.selfId && server !== event.origin && !routes.runsThrough(server, sender));
}

/**
 * What an event keeps of its destinations once its chat is judged: servers of the chat
 * (`servers`, its members before the event), and for a membership event also those it
 * names (a server added, or created with, is told). `servers` undefined: the chat is not
 * known yet (the event is held) and only servers this node knows stay; it is judged
 * again when it is placed.
 */
export function inChat<E extends CarriedEvent>(events: readonly E[], servers: (chatId: string) => ReadonlySet<string> | undefined, isMembership: (event: E) => boolean, routes: ForwardRoutes): Narrowed<E> {
  return narrow(
    events,
    (event) => (isMembership(event) ? `${event.chatId}\u0000${event.origin}\u0000${event.seq}` : event.chatId),
    (event, server) => {
      const ofChat = servers(event.chatId);
      // A membership event lists the chat's members after it: the servers it spans, and those it leaves.
      if (isMembership(event)) return ofChat?.has(server) === true || event.members.some((member) => serverOfMember(member) === server);
      return ofChat ? ofChat.has(server) : routes.knows(server);
    },
  );
}

/**
 * Each event's destinations that `keeps` admits, at most FORWARD_SET_MAX. Consecutive
 * events of one frame range share one array (withForwards): while the array and `scope`
 * (what else the verdict depends on) stay the same, the verdict is reused, so the check
 * costs per range, not per event, and an event whose set is kept whole is not copied.
 */
function narrow<E extends CarriedEvent>(events: readonly E[], scope: (event: E) => string, keeps: (event: E, server: string) => boolean): Narrowed<E> {
  let last: { named: readonly string[]; scope: string; kept: readonly string[] } | undefined;
  let refused = 0;
  const narrowed = events.map((event) => {
    const named = event.forwardTo;
    if (!named || named.length === 0) return event;
    const key = scope(event);
    if (last?.named !== named || last.scope !== key) last = { named, scope: key, kept: [...new Set(named.filter((server) => keeps(event, server)))].slice(0, FORWARD_SET_MAX) };
    refused += named.length - last.kept.length;
    return last.kept.length === named.length ? event : { ...event, forwardTo: last.kept };
  });
  return { events: narrowed, refused };
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((id, index) => id === b[index]);
}
