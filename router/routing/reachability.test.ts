import { describe, expect, it } from 'vitest';
import { PATH_SERVERS_MAX, ReachabilityTable } from './reachability.js';

const paths = (...list: string[][]) => list.map((servers) => ({ servers }));

describe('reachability announcements', () => {
  it('keeps the shortest path per server, refuses loops and malformed paths, and says when anything changed', () => {
    const table = new ReachabilityTable('self');
    const outcome = table.accept('ets', paths(
      ['ets'],
      ['ets', 'spb'],
      ['ets', 'rts', 'x', 'globex'],
      ['ets', 'rts', 'globex'],
      ['ets', 'self', 'msk'], // through us: a loop
      ['rts', 'solo'], // does not start at the announcer
      ['ets', 'a', 'a'], // a server twice
      Array.from({ length: PATH_SERVERS_MAX + 1 }, (_, i) => (i === 0 ? 'ets' : `s${i}`)),
    ));
    expect(outcome).toEqual({ kept: 2, loops: 1, malformed: 3, changed: true });
    expect(table.reachOf('ets').get('globex')).toEqual(['ets', 'rts', 'globex']);
    expect([...table.reachOf('ets').keys()].sort()).toEqual(['globex', 'spb']);
    expect(table.accept('ets', paths(['ets', 'spb'], ['ets', 'rts', 'globex'])).changed).toBe(false);
    expect(table.accept('ets', paths(['ets', 'spb'])).changed).toBe(true);
    table.forget('ets');
    expect(table.reachOf('ets').size).toBe(0);
  });
});
