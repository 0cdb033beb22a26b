import { rmSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { LinkFailure } from '../router/index.js';
import { makeCertificates, type TestCertificates } from './support/certificates.js';
import { createdDraft, newChat } from './support/devices.js';
import { postMessages, TestPair, waitFor, waitForConvergence } from './support/federation.js';

describe('trust links over TLS', () => {
  let certs: TestCertificates;
  let pair: TestPair | undefined;
  beforeAll(() => {
    certs = makeCertificates();
  });
  afterAll(() => rmSync(certs.dir, { recursive: true, force: true }));
  afterEach(async () => {
    await pair?.stop();
    pair = undefined;
  });

  it('links and exchanges events when both sides trust the certificate', async () => {
    const tls = { cert_file: certs.certFile, key_file: certs.keyFile, ca_file: certs.caFile };
    pair = await TestPair.start({ tls });
    const chat = newChat([`alice@${pair.a.id}`, `bob@${pair.b.id}`]);
    await pair.a.post(createdDraft(chat, `alice@${pair.a.id}`));
    await Promise.all([postMessages(pair.a, chat, `alice@${pair.a.id}`, 300), postMessages(pair.b, chat, `bob@${pair.b.id}`, 300)]);
    await waitForConvergence(pair, chat.id, 601);
    expect(pair.logs.text).not.toContain('trust links run without TLS');
  });

  it('gives no link to a dialler that does not trust the certificate', async () => {
    const tls = { cert_file: certs.certFile, key_file: certs.keyFile, ca_file: certs.caFile };
    const distrustful = { ...tls, ca_file: certs.strangerCaFile };
    // Only B dials, and B trusts a CA that did not sign A's certificate.
    pair = await TestPair.start({ tls, bTls: distrustful, aOnlyAccepts: true });
    const errors: LinkFailure[] = [];
    pair.b.on('link-error', (_peer: string, error: LinkFailure) => errors.push(error));
    await waitFor('B to fail a few dials', () => errors.filter((error) => error.code === 'unreachable').length >= 3);
    // Never a token proof: the dials fail in TLS (or, while A starts, time out before any frame).
    expect(errors.every((error) => error.code === 'unreachable' || error.code === 'handshake-timeout')).toBe(true);
    expect(pair.b.link(pair.a.id)).toBeUndefined();
    expect(pair.a.link(pair.b.id)).toBeUndefined();
    // A never saw a handshake: the TLS layer refused before any frame.
    expect((await pair.a.store.auditLog()).filter((e) => e.kind.startsWith('link-'))).toEqual([]);
  });
});
