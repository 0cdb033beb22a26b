import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cryptoReady, generateIdentityPem } from '../crypto/index.js';
import type { Event } from '../proto/gen/trellis/v1/event.js';
import { createLogger, parseConfig, TrellisNode } from '../router/index.js';
import { openPglite, SqlEventStore, type SqlDriver } from '../store/index.js';
import { newChat, type TestChat } from './support/devices.js';
import { FAST_LINK, freePort, LogCapture, waitFor } from './support/federation.js';
import { RoguePeer, type RogueLink } from './support/rogue-peer.js';

const RESENDS = 50;
/** Made-up server ids a resend names beside the real ones: each resend its own. */
const MADE_UP_PER_RESEND = 20;

/**
 * An ETS (E) with one of its CTS (D, a real node) below it, and two neighbours that speak
 * the wire contract directly: a rogue CTS that shares a chat with D and resends its events
 * naming destinations it may not hand over, and an outsider CTS, linked to E but in no chat.
 */
class Transit {
  readonly dir = mkdtempSync(join(tmpdir(), 'trellis-transit-'));
  readonly logs = new LogCapture();
  e!: TrellisNode;
  d!: TrellisNode;
  driver!: SqlDriver;

  async start(): Promise<void> {
    await cryptoReady();
    const [eId, dId, ePort] = [randomUUID(), randomUUID(), await freePort()];
    const tokens = { eAccepts: randomBytes(24).toString('base64url'), dAccepts: randomBytes(24).toString('base64url') };
    const key = (name: string) => {
      const file = join(this.dir, `${name}.key`);
      writeFileSync(file, generateIdentityPem(), { mode: 0o600 });
      return file;
    };
    this.driver = await openPglite();
    this.e = await TrellisNode.start(
      parseConfig({
        server: { id: eId, name: 'ets', kind: 'ETS' }, listen: `127.0.0.1:${ePort}`, identity_key_file: key('ets'), store: { memory: true }, link: FAST_LINK,
        trusts: [{ server_id: dId, name: 'cts-d', kind: 'CTS', token_for_accepting: tokens.eAccepts, token_for_connecting: tokens.dAccepts }],
      }),
      { store: new SqlEventStore(this.driver), logger: createLogger('info', this.logs) },
    );
    this.d = await TrellisNode.start(
      parseConfig({
        server: { id: dId, name: 'cts-d', kind: 'CTS' }, listen: `127.0.0.1:${await freePort()}`, identity_key_file: key('cts-d'), store: { memory: true }, link: FAST_LINK,
        ets_id: eId, ets_name: 'ets', ets_host: `127.0.0.1:${ePort}`, ets_token: `${tokens.dAccepts}:${tokens.eAccepts}`, trusts: [],
      }),
      { logger: createLogger('info', this.logs) },
    );
    await waitFor('E routing to D', () => this.e.routing.nextHop(dId, 0) === dId);
  }

  /** What E stores per event of a chat: its destinations, and the row version (xmin changes with every UPDATE). */
  async stored(chatId: string): Promise<Array<{ seq: number; forwardTo: string[]; version: string }>> {
    const rows = await this.driver.query<{ seq: number; forward_to: string[]; version: string }>(
      'select seq, forward_to, xmin::text as version from events where chat_id = $1 order by origin, seq',
      [chatId],
    );
    return rows.map((row) => ({ seq: Number(row.seq), forwardTo: row.forward_to, version: row.version }));
  }

  async held(chatId: string): Promise<Array<{ seq: number; forwardTo: string[] }>> {
    const rows = await this.driver.query<{ seq: number; forward_to: string[] }>('select seq, forward_to from pending_events where chat_id = $1 order by seq', [chatId]);
    return rows.map((row) => ({ seq: Number(row.seq), forwardTo: [...row.forward_to].sort() }));
  }

  /** The bytes E's log and held events take on disk, dead row versions included. */
  async bytesStored(): Promise<number> {
    const [row] = await this.driver.query<{ bytes: string }>("select (pg_total_relation_size('events') + pg_total_relation_size('pending_events'))::text as bytes");
    return Number(row!.bytes);
  }

  async stop(): Promise<void> {
    await Promise.allSettled([this.e?.stop(), this.d?.stop()]);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

describe('a transit passes events on only to destinations the sender may hand over to it', () => {
  let transit: Transit;
  let rogue: RoguePeer;
  let link: RogueLink;
  let outsiderLink: RogueLink;
  let outsider: RoguePeer;
  let chat: TestChat;

  beforeEach(async () => {
    transit = new Transit();
    await transit.start();
    [rogue, outsider] = [await RoguePeer.attach(transit.e), await RoguePeer.attach(transit.e)];
    [link, outsiderLink] = [await rogue.connect(), await outsider.connect()];
    await waitFor('E routing to the outsider', () => transit.e.routing.nextHop(outsider.id, 0) === outsider.id);
    chat = newChat([`mallory@${rogue.id}`, `dave@${transit.d.id}`]);
  });
  afterEach(async () => {
    link?.close();
    outsiderLink?.close();
    await transit?.stop();
  });

  /**
   * Every event of the batch named for D (the one legitimate destination) and for what the
   * rogue may not hand over: itself (sender and origin), E itself, a real server outside the
   * chat, and made-up ids, new ones each time.
   */
  function namingAll(): string[] {
    const madeUp = Array.from({ length: MADE_UP_PER_RESEND }, () => randomUUID());
    return [transit.d.id, rogue.id, transit.e.id, outsider.id, ...madeUp];
  }

  async function send(events: Event[]): Promise<void> {
    expect(await link.exchange(events, 10_000, [{ first: 0, count: events.length, destinations: namingAll() }])).toEqual([]);
  }

  it(`keeps the stored forward sets to the chat's servers through ${RESENDS} resends naming made-up ones, and writes nothing for them`, async () => {
    const events = rogue.events(chat, 20);
    await send(events);
    const first = await transit.stored(chat.id);
    expect(first.map((event) => event.forwardTo)).toEqual(events.map(() => [transit.d.id]));
    const [bytesBefore, rewindsBefore] = [await transit.bytesStored(), transit.e.link(transit.d.id)!.stats.rewinds];

    for (let resend = 0; resend < RESENDS; resend++) await send(events);

    // The same sets, the same row versions (no UPDATE), the same bytes, and no link looked back for them.
    expect(await transit.stored(chat.id)).toEqual(first);
    expect(await transit.bytesStored()).toBe(bytesBefore);
    expect(transit.e.link(transit.d.id)!.stats.rewinds).toBe(rewindsBefore);
    expect(transit.e.link(rogue.id)!.stats.eventsDuplicate).toBe(RESENDS * events.length);
    // Refused, and journalled under the rogue: coalesced, not one entry per resend.
    await waitFor('forward-refused journalled for the rogue', async () =>
      (await transit.e.store.auditLog()).some((entry) => entry.kind === 'forward-refused' && entry.code === 'forward-refused' && entry.peer === rogue.id),
    );
    const entries = (await transit.e.store.auditLog()).filter((entry) => entry.kind === 'forward-refused');
    expect(entries.length).toBeLessThan(RESENDS);
    // D, the chat's other server, gets every event all the same.
    await waitFor('D holding every event E passed on', async () => (await transit.d.store.countEvents()) + (await transit.d.store.heldSummary()).reduce((n, share) => n + share.events, 0) === events.length);
  });

  it('holds events of a chat it does not know yet with known servers only, and keeps the chat\'s servers once it is created', async () => {
    const events = rogue.events(chat, 6);
    const beyond = events.slice(1);
    await send(beyond);
    // Held (the chat's creation has not come): the ids E knows stay, bounded; made-up ones, E, the rogue and the origin do not.
    const expectedHeld = beyond.map((event) => ({ seq: event.seq, forwardTo: [transit.d.id, outsider.id].sort() }));
    expect(await transit.held(chat.id)).toEqual(expectedHeld);
    const bytesHeld = await transit.bytesStored();
    for (let resend = 0; resend < RESENDS; resend++) await send(beyond);
    expect(await transit.held(chat.id)).toEqual(expectedHeld);
    expect(await transit.bytesStored()).toBe(bytesHeld);

    // The creation arrives: the held events are placed and judged again, on the chat's members.
    await send(rogue.signedRun(events.slice(0, 1)));
    await waitFor('the chat placed at E', async () => (await transit.stored(chat.id)).length === events.length);
    expect((await transit.stored(chat.id)).map((event) => event.forwardTo)).toEqual(events.map(() => [transit.d.id]));
    expect(await transit.held(chat.id)).toEqual([]);
  });
});
