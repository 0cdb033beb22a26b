import { RoutingPolicy } from '../../proto/gen/trellis/v1/event.js';

/**
 * The chats of the reference federation (fixtures/federation), one per contour a chat
 * can live in (domain.md: corporate, enterprise, public, mixed) plus a partner chat
 * across the direct trust. Members are named by user and server name; the demo and the
 * tests turn names into ids.
 */
export interface ReferenceChat {
  name: string;
  members: Array<{ user: string; server: string }>;
  policy: RoutingPolicy;
  /** Why this chat is in the set: what its route shows. */
  shows: string;
}

export const REFERENCE_CHATS: readonly ReferenceChat[] = [
  {
    name: 'corporate',
    members: [{ user: 'anna', server: 'cts-acme-msk' }, { user: 'boris', server: 'cts-acme-msk' }, { user: 'gale', server: 'cts-globex' }],
    policy: RoutingPolicy.ROUTING_POLICY_CORPORATE,
    shows: 'only the direct trust; waits while it is down',
  },
  {
    name: 'enterprise',
    members: [{ user: 'anna', server: 'cts-acme-msk' }, { user: 'sergei', server: 'cts-acme-spb' }],
    policy: RoutingPolicy.ROUTING_POLICY_UNSPECIFIED,
    shows: 'stays inside the enterprise, through ets-acme',
  },
  {
    name: 'partner',
    members: [{ user: 'anna', server: 'cts-acme-msk' }, { user: 'gale', server: 'cts-globex' }],
    policy: RoutingPolicy.ROUTING_POLICY_UNSPECIFIED,
    shows: 'the direct trust; fails over through the RTS while it is down',
  },
  {
    name: 'public',
    members: [{ user: 'sergei', server: 'cts-acme-spb' }, { user: 'olga', server: 'cts-solo' }],
    policy: RoutingPolicy.ROUTING_POLICY_UNSPECIFIED,
    shows: 'leaves the enterprise through ets-acme and rts-ru',
  },
  {
    name: 'mixed',
    members: [
      { user: 'anna', server: 'cts-acme-msk' },
      { user: 'gale', server: 'cts-globex' },
      { user: 'olga', server: 'cts-solo' },
      { user: 'sergei', server: 'cts-acme-spb' },
    ],
    policy: RoutingPolicy.ROUTING_POLICY_UNSPECIFIED,
    shows: 'every contour at once: each destination by its own path',
  },
];
