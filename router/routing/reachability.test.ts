import { describe, expect, it } from 'vitest';
import type { PathVerdict } from './authority.js';
import { PATH_SERVERS_MAX, PATHS_PER_NEIGHBOUR_MAX, ReachabilityTable, UNVOUCHED_PATHS_PER_NEIGHBOUR_MAX, type PathJudge } from './reachability.js';

const whole = (...list: string[][]) => ({ paths: list.map((servers) => ({ servers })), withdrawn: [], update: false });
const anyPath: PathJudge = () => ({ ok: true });
const counts = (refused: Map<string, { count: number }>) => Object.fromEntries([...refused].map(([code, { count }]) => [code, count]));

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
    ), anyPath);
    expect({ kept: outcome.kept, refused: counts(outcome.refused), changed: outcome.changed }).toEqual({ kept: 2, refused: { loop: 1, malformed: 3 }, changed: ['spb', 'globex'] });
    expect(table.reachOf('ets').get('globex')).toEqual(['ets', 'rts', 'globex']);
    expect([...table.reachOf('ets').keys()].sort()).toEqual(['globex', 'spb']);
    expect(table.accept('ets', whole(['ets', 'spb'], ['ets', 'rts', 'globex']), anyPath).changed).toEqual([]);
    expect(table.accept('ets', whole(['ets', 'spb']), anyPath).changed).toEqual(['globex']);
    // An update changes entries: a new path, a path withdrawn; the rest stays.
    const update = table.accept('ets', { paths: [{ servers: ['ets', 'rts', 'solo'] }], withdrawn: ['spb'], update: true }, anyPath);
    expect(update.changed.sort()).toEqual(['solo', 'spb']);
    expect([...table.reachOf('ets').keys()]).toEqual(['solo']);
    expect(counts(table.accept('ets', { paths: [{ servers: ['ets', 'msk', 'self'] }], withdrawn: [], update: true }, anyPath).refused)).toEqual({ loop: 1 });
    expect(table.forget('ets')).toEqual(['solo']);
    expect(table.reachOf('ets').size).toBe(0);
    expect(table.size).toBe(0);
  });

  it('refuses what the judge refuses, keeps unvouched paths unused, and uses them once a rejudge vouches for them', () => {
    const vouched = new Set(['spb']);
    const judge: PathJudge = (_, path): PathVerdict => {
      if (path.includes('forged')) return { ok: false, code: 'no-authority', why: 'nobody vouches' };
      return path.every((id) => id === 'ets' || vouched.has(id)) ? { ok: true } : { ok: false, code: 'unknown-server', why: 'not yet' };
    };
    const table = new ReachabilityTable('self');
    const outcome = table.accept('ets', whole(['ets', 'spb'], ['ets', 'forged'], ['ets', 'later']), judge);
    expect({ kept: outcome.kept, refused: counts(outcome.refused), changed: outcome.changed }).toEqual({ kept: 2, refused: { 'no-authority': 1 }, changed: ['spb'] });
    expect([...table.reachOf('ets').keys()]).toEqual(['spb']);
    vouched.add('later');
    expect(table.rejudge(judge).changed).toEqual(['later']);
    expect([...table.reachOf('ets').keys()].sort()).toEqual(['later', 'spb']);
    // A belief a path stood on goes: the path goes with it.
    vouched.delete('spb');
    expect(table.rejudge(judge).changed).toEqual(['spb']);
    expect([...table.reachOf('ets').keys()]).toEqual(['later']);
  });

  it('bounds what one neighbour may keep, usable and waiting, and refuses the rest as table-full', () => {
    const table = new ReachabilityTable('self');
    const flood = (neighbour: string, count: number) => whole(...Array.from({ length: count }, (_, i) => [neighbour, `${neighbour}-s${i}`]));
    const usable = table.accept('rts', flood('rts', PATHS_PER_NEIGHBOUR_MAX + 10), anyPath);
    expect(usable.kept).toBe(PATHS_PER_NEIGHBOUR_MAX);
    expect(counts(usable.refused)).toEqual({ 'table-full': 10 });
    expect(table.reachOf('rts').size).toBe(PATHS_PER_NEIGHBOUR_MAX);
    const waiting = table.accept('ets', flood('ets', UNVOUCHED_PATHS_PER_NEIGHBOUR_MAX + 5), () => ({ ok: false, code: 'unknown-server', why: 'not yet' }));
    expect(waiting.kept).toBe(UNVOUCHED_PATHS_PER_NEIGHBOUR_MAX);
    expect(counts(waiting.refused)).toEqual({ 'table-full': 5 });
    expect(table.size).toBe(PATHS_PER_NEIGHBOUR_MAX + UNVOUCHED_PATHS_PER_NEIGHBOUR_MAX);
  });
});
