import { describe, expect, it } from 'vitest';
import { RoutingPolicy } from '../../proto/gen/trellis/v1/event.js';
import { chooseRoute, type Neighbour } from './route-choice.js';

// cts-msk's view: a partner (globex), its ETS (which has spb behind it and reaches globex and solo through the RTS).
const globex: Neighbour = { id: 'globex', name: 'cts-globex', kind: 'CTS', state: 'up', reach: new Map() };
const ets: Neighbour = {
  id: 'ets',
  name: 'ets-acme',
  kind: 'ETS',
  state: 'up',
  reach: new Map([
    ['spb', ['ets', 'spb']],
    ['rts', ['ets', 'rts']],
    ['globex', ['ets', 'rts', 'globex']],
    ['solo', ['ets', 'rts', 'solo']],
  ]),
};
const DEFAULT = RoutingPolicy.ROUTING_POLICY_UNSPECIFIED;
const CORPORATE = RoutingPolicy.ROUTING_POLICY_CORPORATE;

describe('route choice', () => {
  it('takes the direct trust while it is up, and says why the others were not taken', () => {
    const choice = chooseRoute('globex', DEFAULT, [ets, globex]);
    expect(choice.via).toBe('globex');
    expect(choice.candidates.map((c) => [c.via, c.class, c.taken])).toEqual([
      ['globex', 'direct', true],
      ['ets', 'enterprise', false],
    ]);
    expect(choice.candidates[1]!.why).toContain('a more trusted path is up (via cts-globex)');
    expect(choice.candidates[1]!.path).toEqual(['ets', 'rts', 'globex']);
  });

  it('fails over to the enterprise server when the direct trust is down; a corporate chat waits instead', () => {
    const down = { ...globex, state: 'down' as const };
    const failover = chooseRoute('globex', DEFAULT, [down, ets]);
    expect(failover.via).toBe('ets');
    expect(failover.candidates.find((c) => c.via === 'globex')!.why).toBe('the link is down');

    const corporate = chooseRoute('globex', CORPORATE, [down, ets]);
    expect(corporate.via).toBeUndefined();
    expect(corporate.policy).toBe('corporate');
    expect(corporate.candidates.find((c) => c.via === 'ets')!.why).toContain('corporate');
    expect(chooseRoute('globex', CORPORATE, [globex, ets]).via).toBe('globex');
  });

  it('prefers an ETS to an RTS, then the shorter path, then the lower id', () => {
    const rts: Neighbour = { id: 'rts', name: 'rts-ru', kind: 'RTS', state: 'up', reach: new Map([['spb', ['rts', 'ets', 'spb']]]) };
    expect(chooseRoute('spb', DEFAULT, [rts, ets]).via).toBe('ets');
    const longer: Neighbour = { ...ets, id: 'ets-b', name: 'ets-b', reach: new Map([['spb', ['ets-b', 'x', 'spb']]]) };
    expect(chooseRoute('spb', DEFAULT, [longer, ets]).via).toBe('ets');
    const twin: Neighbour = { ...ets, id: 'a-ets', name: 'a-ets' };
    expect(chooseRoute('spb', DEFAULT, [ets, twin]).via).toBe('a-ets');
  });

  it('finds no route to a server no neighbour reaches, and none through a blocked trust', () => {
    expect(chooseRoute('nowhere', DEFAULT, [ets, globex])).toMatchObject({ via: undefined, candidates: [] });
    const blocked = chooseRoute('globex', CORPORATE, [{ ...globex, state: 'blocked' }]);
    expect(blocked.via).toBeUndefined();
    expect(blocked.candidates[0]!.why).toBe('the trust is blocked');
  });

  it('holds an unknown policy (a newer server\'s) to the strictest known one', () => {
    expect(chooseRoute('globex', 7, [{ ...globex, state: 'down' }, ets]).via).toBeUndefined();
  });
});
