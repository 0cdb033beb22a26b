import { describe, expect, it } from 'vitest';
import { authorityOver, judgePath, trustMismatch, type Vouchable } from './authority.js';

// The reference federation's shape: rts above ets and globex, ets above msk and spb.
const servers: Record<string, Vouchable> = {
  rts: { id: 'rts', kind: 'RTS', upstream: '' },
  ets: { id: 'ets', kind: 'ETS', upstream: 'rts' },
  msk: { id: 'msk', kind: 'CTS', upstream: 'ets' },
  spb: { id: 'spb', kind: 'CTS', upstream: 'ets' },
  globex: { id: 'globex', kind: 'CTS', upstream: 'rts' },
};
const believed = (id: string) => servers[id];

describe('who may vouch for a record', () => {
  it('lets an upstream vouch for what it registered and an ETS for its RTS, and nobody else', () => {
    expect(authorityOver(servers.ets!, servers.msk!)).toBe('registered');
    expect(authorityOver(servers.rts!, servers.ets!)).toBe('registered');
    expect(authorityOver(servers.rts!, servers.globex!)).toBe('registered');
    expect(authorityOver(servers.ets!, servers.rts!)).toBe('upstream');
    // A CTS vouches for nobody; an upstream only for what names it.
    expect(authorityOver(servers.msk!, servers.spb!)).toBeUndefined();
    expect(authorityOver(servers.globex!, { id: 'x', kind: 'CTS', upstream: 'globex' })).toBeUndefined();
    expect(authorityOver(servers.ets!, servers.globex!)).toBeUndefined();
    expect(authorityOver(servers.rts!, servers.msk!)).toBeUndefined();
    // An ETS registers no ETS or RTS below it.
    expect(authorityOver(servers.ets!, { id: 'e2', kind: 'ETS', upstream: 'ets' })).toBeUndefined();
  });

  it('holds a trust to the kind it names, and a server below us to naming us its upstream', () => {
    expect(trustMismatch({ kind: 'CTS', role: 'downstream' }, 'ets', servers.msk!)).toBeUndefined();
    expect(trustMismatch({ kind: 'CTS', role: 'downstream' }, 'rts', servers.msk!)).toMatch(/another upstream/);
    expect(trustMismatch({ kind: 'ETS', role: 'partner' }, 'x', servers.msk!)).toMatch(/says CTS/);
  });
});

describe('who may announce a path', () => {
  it('takes the paths the attested records support', () => {
    expect(judgePath('ETS', ['ets', 'msk'], believed)).toEqual({ ok: true });
    expect(judgePath('ETS', ['ets', 'rts', 'globex'], believed)).toEqual({ ok: true });
    expect(judgePath('RTS', ['rts', 'ets', 'spb'], believed)).toEqual({ ok: true });
    expect(judgePath('CTS', ['msk'], believed)).toEqual({ ok: true });
  });

  it('refuses a CTS as a transit, a step no record supports, and waits on an unknown server', () => {
    expect(judgePath('CTS', ['msk', 'globex'], believed)).toMatchObject({ ok: false, code: 'not-transit' });
    expect(judgePath('RTS', ['rts', 'globex', 'msk'], believed)).toMatchObject({ ok: false, code: 'not-transit' });
    expect(judgePath('ETS', ['ets', 'globex'], believed)).toMatchObject({ ok: false, code: 'no-authority' });
    expect(judgePath('RTS', ['rts', 'msk'], believed)).toMatchObject({ ok: false, code: 'no-authority' });
    expect(judgePath('ETS', ['ets', 'invented'], believed)).toMatchObject({ ok: false, code: 'unknown-server' });
  });
});
