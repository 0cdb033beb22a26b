import { describe, expect, it } from 'vitest';
import { PATH_SERVERS_MAX, ReachabilityTable } from './reachability.js';

const whole = (...list: string[][]) => ({ paths: list.map((servers) => ({ servers })), withdrawn: [], update: false });

describe('reachability announcements', () => {
  it('keeps the shortest path per server, refuses loops and malformed paths, and says when anything changed', () => {
    const table = new ReachabilityTable('self');
    const outcome = table.accept('ets', whole(
      ['ets'],
      ['ets', 'spb'],
      ['ets', 'rts', 'x', 'globex'],
      ['ets', 'rts', 'globex'],
      ['ets', 'self', 'msk'], // through us: a loop
      ['rts', 'solo'], // does not start at the announcer
      ['ets', 'a', 'a'], // a server twice
      Array.from({ length: PATH_SERVERS_MAX + 1 }, (_, i) => (i === 0 ? 'ets' : `s${i}`)),
    ));
    expect(outcome).toEqual({ kept: 2, loops: 1, malformed: 3, changed: ['spb', 'globex'] });
    expect(table.reachOf('ets').get('globex')).toEqual(['ets', 'rts', 'globex']);
    expect([...table.reachOf('ets').keys()].sort()).toEqual(['globex', 'spb']);
    expect(table.accept('ets', whole(['ets', 'spb'], ['ets', 'rts', 'globex'])).changed).toEqual([]);
    expect(table.accept('ets', whole(['ets', 'spb'])).changed).toEqual(['globex']);
    // An update changes entries: a new path, a path withdrawn; the rest stays.
    const update = table.accept('ets', { paths: [{ servers: ['ets', 'rts', 'solo'] }], withdrawn: ['spb'], update: true });
    expect(update.changed.sort()).toEqual(['solo', 'spb']);
    expect([...table.reachOf('ets').keys()]).toEqual(['solo']);
    expect(table.accept('ets', { paths: [{ servers: ['ets', 'msk', 'self'] }], withdrawn: [], update: true })).toMatchObject({ loops: 1, changed: [] });
    expect(table.forget('ets')).toEqual(['solo']);
    expect(table.reachOf('ets').size).toBe(0);
  });
});
