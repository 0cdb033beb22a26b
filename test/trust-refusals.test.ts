import { afterEach, describe, expect, it } from 'vitest';
import { TrustError } from '../crypto/index.js';
import { LinkFailure } from '../router/index.js';
import { AUDIT_VERBATIM_PER_WINDOW } from '../router/audit.js';
import { RoguePeer } from './support/rogue-peer.js';
import { TestPair, waitFor } from './support/federation.js';

/** Collects the typed errors a node reports for its own dials. */
function dialErrors(pair: TestPair, side: 'a' | 'b'): Array<TrustError | LinkFailure> {
  const errors: Array<TrustError | LinkFailure> = [];
  pair[side].on('link-error', (_peer: string, error: TrustError | LinkFailure) => errors.push(error));
  return errors;
}

async function auditKinds(pair: TestPair, side: 'a' | 'b'): Promise<Array<{ kind: string; code?: string }>> {
  return (await pair[side].store.auditLog()).map(({ kind, code }) => ({ kind, ...(code ? { code } : {}) }));
}

describe('only paired servers talk', () => {
  let pair: TestPair | undefined;
  afterEach(async () => {
    await pair?.stop();
    pair = undefined;
  });

  it('refuses a dialler that presents the wrong token, audits it on both sides, and never logs a token', async () => {
    const wrongToken = 'wrong-token-' + 'x'.repeat(24);
    pair = await TestPair.start({ bConnectToken: wrongToken, aOnlyAccepts: true });
    const errors = dialErrors(pair, 'b');
    // A dial that reaches A before it listens fails otherwise first; the refusal is what counts.
    await waitFor('B told it was refused', () => errors.some((error) => error.code === 'bad-proof'));
    expect(errors.find((error) => error.code === 'bad-proof')).toBeInstanceOf(TrustError);
    await waitFor('refusals journalled on both sides', async () =>
      (await auditKinds(pair!, 'a')).some((e) => e.kind === 'link-refused' && e.code === 'bad-proof') &&
      (await auditKinds(pair!, 'b')).some((e) => e.kind === 'link-refused-by-peer' && e.code === 'bad-proof'),
    );
    expect(pair.a.link(pair.b.id)).toBeUndefined();
    expect(pair.b.link(pair.a.id)).toBeUndefined();
    expect(pair.a.linkStatus()[0]!.status).toBe('red');

    const logs = pair.logs.text;
    expect(logs).toContain('bad-proof');
    for (const token of [wrongToken, pair.tokens.aAccepts, pair.tokens.bAccepts]) expect(logs).not.toContain(token);
    const journal = JSON.stringify([...(await pair.a.store.auditLog()), ...(await pair.b.store.auditLog())]);
    for (const token of [wrongToken, pair.tokens.aAccepts, pair.tokens.bAccepts]) expect(journal).not.toContain(token);
  });

  it('refuses a peer that cannot prove the token the dialler accepts', async () => {
    // B accepts a token A does not present: A dials, B proves itself fine, A's proof fails at B.
    pair = await TestPair.start({ bOnlyAccepts: true, link: { reconnect_min_ms: 1000, reconnect_max_ms: 2000 } });
    await waitFor('first link', () => pair!.a.link(pair!.b.id) !== undefined && pair!.b.link(pair!.a.id) !== undefined);
    await pair.b.setTrust({ ...pair.bConfig.trusts[0]!, token_for_accepting: 'another-token-b-accepts-now' });
    const errors = dialErrors(pair, 'a');
    await waitFor('A refused on redial', () => errors.some((e) => e.code === 'bad-proof'), 30_000, async () => pair!.logs.lines.slice(-12).join('\n'));
    expect(pair.a.link(pair.b.id)).toBeUndefined();
  });

  it('rate-limits a source after repeated failed proofs, journals that once, and coalesces the repeats', async () => {
    pair = await TestPair.start({ aOnlyAccepts: true, bOnlyAccepts: true });
    const rogue = await RoguePeer.attach(pair.a);
    const codes: string[] = [];
    for (let attempt = 0; attempt < 8; attempt++) {
      const failure = await rogue.connect('not-the-token-at-all-000000').then(
        (link) => (link.close(), undefined),
        (error: TrustError | LinkFailure) => error,
      );
      codes.push(failure?.code ?? 'linked');
    }
    expect(codes.slice(0, 5)).toEqual(Array(5).fill('bad-proof'));
    expect(codes.slice(5)).toEqual(Array(3).fill('rate-limited'));
    // Even the right token is refused while the source is limited: no oracle for guessing.
    await expect(rogue.connect()).rejects.toMatchObject({ code: 'rate-limited' });
    const journal = await auditKinds(pair, 'a');
    expect(journal.filter((e) => e.kind === 'link-rate-limited')).toHaveLength(1);
    // The first refusals of a minute from one address are journalled as they come; the rest are counted for one summary.
    expect(journal.filter((e) => e.kind === 'link-refused' && e.code === 'bad-proof')).toHaveLength(AUDIT_VERBATIM_PER_WINDOW);
  });

  it('drops the link and refuses redials when a trust is blocked, and shows it purple', async () => {
    pair = await TestPair.start();
    await waitFor('linked', () => pair!.a.link(pair!.b.id) !== undefined && pair!.b.link(pair!.a.id) !== undefined);
    const errors = dialErrors(pair, 'b');
    await pair.a.setTrust({ ...pair.aConfig.trusts[0]!, status: 'disabled' });
    expect(pair.a.linkStatus()[0]!.status).toBe('purple');
    await waitFor('B refused as blocked', () => errors.some((e) => e.code === 'trust-blocked'));
    expect(pair.b.link(pair.a.id)).toBeUndefined();
    expect(pair.b.linkStatus()[0]!.status).toBe('red');
    expect((await auditKinds(pair, 'a')).some((e) => e.kind === 'trust-changed')).toBe(true);
  });
});
