import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cryptoReady, identityFromSeed, signAttestation, signServerRecord, verifyAttestation, type Identity } from '../../crypto/index.js';
import { prng } from '../../gateways/faults/index.js';
import { AttestationBody, ServerRecordBody, type Attestation, type ServerRecord } from '../../proto/gen/trellis/v1/link.js';
import { openPglite, SqlEventStore, type EventStore } from '../../store/index.js';
import type { TrustConfig } from '../config.js';
import { authorityOver, judgePath } from './authority.js';
import { ATTESTATION_CHAIN_MAX, DIRECTORY_RECORDS_MAX, ServerDirectory, VOUCHED_BY_TRUST } from './directory.js';
import { PATHS_MAX } from './reachability.js';
import { Routing } from './routing.js';
import type { ServerKind } from './route-choice.js';

/**
 * The directory and the reachability table under seeded batches of hostile claims from
 * neighbours with valid trusts: records signed by real and made-up keys, attestations by
 * servers with and without the authority (or by nobody known), forged kinds and upstreams,
 * and announcements of paths through anyone. After every batch, everything believed has a
 * chain of authority that ends at one of our trusts, and every usable path is one its
 * neighbour may announce.
 */
const SEED = 0x5eed_2025;
const BATCHES = 400;
const SERVERS = 24;
const KINDS: readonly ServerKind[] = ['CTS', 'CTS', 'CTS', 'ETS', 'RTS', 'TTS'];

interface Server {
  id: string;
  identity: Identity;
  kind: ServerKind;
  upstream: string;
}

describe('the directory and reachability under hostile claims', () => {
  let store: EventStore;
  const random = prng(SEED);
  const pick = <T>(values: readonly T[]): T => values[Math.floor(random() * values.length)]!;
  const self: Server = { id: randomUUID(), identity: identityFromSeed(Buffer.alloc(32, 1)), kind: 'ETS', upstream: '' };
  // A world of servers, each with its true key, kind and upstream; some of them our trusts.
  const world: Server[] = Array.from({ length: SERVERS }, (_, i) => ({ id: randomUUID(), identity: identityFromSeed(Buffer.alloc(32, i + 2)), kind: pick(KINDS), upstream: '' }));
  for (const server of world) server.upstream = server.kind === 'RTS' ? '' : pick([...world.filter((other) => other.kind !== 'CTS').map((other) => other.id), self.id]);
  self.upstream = world.find((server) => server.kind === 'RTS')?.id ?? '';
  const trusts: TrustConfig[] = world.slice(0, 4).map((server) => ({
    server_id: server.id,
    name: server.id.slice(0, 8),
    kind: server.kind,
    token_for_accepting: 'a'.repeat(32),
    token_for_connecting: 'c'.repeat(32),
    status: 'enabled',
    allow_trust_search: false,
    role: server.id === self.upstream ? 'upstream' : server.upstream === self.id ? 'downstream' : 'partner',
    identity_key: Buffer.from(server.identity.publicKey).toString('base64'),
  }));
  const trustOf = (id: string) => trusts.find((trust) => trust.server_id === id);

  beforeAll(async () => {
    await cryptoReady();
    store = new SqlEventStore(await openPglite());
  });
  afterAll(() => store?.close());

  /** A record of a server as someone claims it: mostly true, sometimes with a made-up key, kind or upstream. */
  function claim(subject: Server): { record: ServerRecord; fields: ServerRecordBody } {
    const signer = random() < 0.2 ? identityFromSeed(Buffer.from(Array.from({ length: 32 }, () => Math.floor(random() * 256)))) : subject.identity;
    const fields: ServerRecordBody = {
      serverId: random() < 0.1 ? randomUUID() : subject.id,
      kind: random() < 0.1 ? pick(KINDS) : subject.kind,
      name: 'claimed',
      identityKey: Buffer.from(signer.publicKey),
      upstream: random() < 0.15 ? pick([...world.map((server) => server.id), self.id, '']) : subject.upstream,
      issuedAtMs: Date.now(),
    };
    const bytes = Buffer.from(ServerRecordBody.encode(fields).finish());
    return { record: { record: bytes, signature: signServerRecord(signer, bytes), attestations: [] }, fields };
  }

  /** An attestation of the claimed fields by anyone in the world (the right upstream or not), or by a made-up server. */
  function attestation(fields: ServerRecordBody): Attestation {
    const attester = random() < 0.1 ? { id: randomUUID(), identity: identityFromSeed(Buffer.alloc(32, 200)) } : pick(world);
    const statement = Buffer.from(AttestationBody.encode({ attester: attester.id, serverId: fields.serverId, identityKey: fields.identityKey, kind: fields.kind, upstream: fields.upstream, issuedAtMs: Date.now() }).finish());
    return { statement, signature: signAttestation(attester.identity, statement) };
  }

  it(`believes and routes only what someone with the authority vouches for, through ${BATCHES} batches (seed ${SEED})`, async () => {
    const directory = new ServerDirectory(self.identity, { id: self.id, kind: self.kind, name: 'self', upstream: self.upstream }, Date.now(), {
      store,
      trustedKey: (id) => (trustOf(id)?.identity_key ? Buffer.from(trustOf(id)!.identity_key!, 'base64') : undefined),
      trustOf,
      audit: async () => undefined,
      now: Date.now,
    });
    const routing = new Routing({ selfId: self.id, transit: true, trusts: () => trusts, trustOf, isUp: () => true, believed: (id) => directory.get(id) });
    let believedOnce = 0;
    let usableOnce = 0;
    for (let batch = 0; batch < BATCHES; batch++) {
      const neighbour = pick(trusts).server_id;
      const records = Array.from({ length: 1 + Math.floor(random() * 6) }, () => {
        const { record, fields } = claim(pick(world));
        const attestations = Array.from({ length: Math.floor(random() * 3) }, () => attestation(fields));
        return { ...record, attestations };
      });
      await directory.offer(neighbour, records);
      routing.rejudge();
      const paths = Array.from({ length: 1 + Math.floor(random() * 8) }, () => [neighbour, ...Array.from({ length: Math.floor(random() * 4) }, () => pick(world).id)]);
      routing.accept(neighbour, { paths: paths.map((servers) => ({ servers: [...new Set(servers)] })), withdrawn: [], update: random() < 0.5 });

      // Everything believed stands on a chain of authority that ends at a trust of ours.
      for (const entry of directory.list()) {
        if (entry.id === self.id) continue;
        const trust = trustOf(entry.id);
        if (entry.vouchedBy === VOUCHED_BY_TRUST) {
          expect(entry.identityKey.toString('base64')).toBe(trust!.identity_key);
          expect(entry.kind).toBe(trust!.kind);
          continue;
        }
        expect(trust).toBeUndefined();
        const attester = directory.get(entry.vouchedBy)!;
        expect(attester).toBeDefined();
        expect(authorityOver(attester, entry)).toBeDefined();
        expect(entry.depth).toBe(attester.depth + 1);
        expect(entry.depth).toBeLessThanOrEqual(ATTESTATION_CHAIN_MAX);
        const vouching = entry.signed.attestations.find((a) => AttestationBody.decode(a.statement).attester === attester.id)!;
        expect(verifyAttestation(attester.identityKey, vouching.statement, vouching.signature)).toBe(true);
        believedOnce += 1;
      }
      expect(directory.list().length).toBeLessThanOrEqual(DIRECTORY_RECORDS_MAX);
      // Every usable path is one its neighbour may announce, judged by what is believed now.
      for (const trust of trusts) {
        for (const path of routing.reach.reachOf(trust.server_id).values()) {
          expect(judgePath(trust.kind, path, (id) => directory.get(id))).toEqual({ ok: true });
          usableOnce += 1;
        }
      }
      expect(routing.reach.size).toBeLessThanOrEqual(PATHS_MAX);
    }
    // The batches reached both sides: attested beliefs and usable paths beyond a neighbour.
    expect(believedOnce).toBeGreaterThan(100);
    expect(usableOnce).toBeGreaterThan(10);
  }, 300_000);
});
