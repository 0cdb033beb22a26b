import type { Event } from '../../proto/gen/trellis/v1/event.js';
import type { Forward } from '../../proto/gen/trellis/v1/link.js';
import type { CarriedEvent } from '../../store/index.js';
import { LinkFailure } from '../errors.js';

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

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((id, index) => id === b[index]);
}
