import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EventKind, type Event } from '../proto/gen/trellis/v1/event.js';
import { AUDIT_VERBATIM_PER_WINDOW } from '../router/audit.js';
import { PEER_MESSAGE_CHARS_MAX } from '../router/errors.js';
import { openPglite, SqlEventStore, type AuditRecord, type SqlDriver } from '../store/index.js';
import { createdDraft, membersAddedDraft, messageDraft, newChat, type TestChat } from './support/devices.js';
import { TestPair, waitFor } from './support/federation.js';
import { RoguePeer, type RogueLink } from './support/rogue-peer.js';

/**
 * A peer with a valid trust that sends validly signed hostile events (issue: a trusted
 * peer that misbehaves). After each case: the event is refused with its code and
 * journalled, the link is up, a good event sent next is stored, the node still posts,
 * and the chat it shares with its second, honest peer carries on.
 */
/** The real store, whose appends a test can hold at a gate: a store that is slow without blocking the thread. */
class GatedStore extends SqlEventStore {
  private gate: Promise<void> | undefined;
  private reached: (() => void) | undefined;

  /** The next append with events waits until `open` is called; resolves when one reaches the gate. */
  closeGate(): { reached: Promise<void>; open: () => void } {
    let open!: () => void;
    this.gate = new Promise((resolve) => (open = resolve));
    const reached = new Promise<void>((resolve) => (this.reached = resolve));
    return { reached, open: () => ((this.gate = undefined), open()) };
  }

  override async append(request: Parameters<SqlEventStore['append']>[0]): ReturnType<SqlEventStore['append']> {
    if (this.gate && request.events.length > 0) {
      this.reached?.();
      await this.gate;
    }
    return super.append(request);
  }
}

const HELD_BOUNDS = { held_events_per_chain: 8, held_events_per_peer: 15 };

describe('a trusted peer that misbehaves is refused, and the link carries on', () => {
  let pair: TestPair;
  let driver: SqlDriver;
  let store: GatedStore;
  let rogue: RoguePeer;
  let link: RogueLink;
  let honest: TestChat;

  beforeEach(async () => {
    driver = await openPglite();
    store = new GatedStore(driver);
    pair = await TestPair.start({ aStore: store, link: HELD_BOUNDS });
    await waitFor('A and B linked', () => pair.a.link(pair.b.id) !== undefined);
    honest = newChat([`alice@${pair.a.id}`, `bob@${pair.b.id}`]);
    await pair.a.post(createdDraft(honest, `alice@${pair.a.id}`));
    rogue = await RoguePeer.attach(pair.a);
    link = await rogue.connect();
  });
  afterEach(async () => {
    link?.close();
    await pair?.stop();
  });

  /** The rogue's next events of `chat` start again from what A has stored. */
  async function rewind(chat: TestChat): Promise<void> {
    rogue.rewind(chat, await pair.a.store.head(chat.id, rogue.id));
  }

  async function journalled(code: string): Promise<void> {
    await waitFor(`${code} journalled`, async () => (await pair.a.store.auditLog()).some((e) => e.kind === 'event-refused' && e.code === code && e.peer === rogue.id));
  }

  /** The acceptance tail of every case: link up, a good event stored, A posts, B's chat carries on. */
  async function stillServing(chat: TestChat): Promise<void> {
    await rewind(chat);
    const good = rogue.events(chat, 1);
    expect(await link.exchange(good)).toEqual([]);
    expect((await pair.a.store.head(chat.id, rogue.id))?.seq).toBe(good[0]!.seq);
    expect(pair.a.link(rogue.id)).toBeDefined();
    const posted = await pair.a.post(messageDraft(honest, `alice@${pair.a.id}`, 'still posting'));
    await waitFor('B holds what A posted, with equal logs', async () => {
      const [inA, inB] = [await pair.a.store.chatSummary(honest.id), await pair.b.store.chatSummary(honest.id)];
      return (await pair.b.store.head(honest.id, pair.a.id))?.seq === posted.seq && inA.digest.equals(inB.digest);
    });
  }

  it('1. a value the store cannot hold refuses its run only; the cursor moves on and the link stays up', async () => {
    const chat = rogue.newChat();
    expect(await link.exchange(rogue.events(chat, 1))).toEqual([]);
    // The case: a uint32 clock counter past 2^31 used to fail the insert and stall the link for good.
    const wide = rogue.forge(chat, [{ hlcCounter: 3_000_000_000 }]);
    expect(await link.exchange(wide)).toEqual([]);
    expect((await pair.a.store.chatLog(chat.id)).at(-1)?.hlcCounter).toBe(3_000_000_000);

    // Any other value the store refuses (here a trigger raising SQLSTATE 22003) costs its run, not the batch.
    await driver.query(`create function refuse_poison() returns trigger language plpgsql as $$
      begin if new.sender_device = 'poison' then raise exception 'value out of range' using errcode = '22003'; end if; return new; end $$`);
    await driver.query('create trigger refuse_poison before insert on events for each row execute function refuse_poison()');
    const other = rogue.newChat();
    const batch = [...rogue.forge(chat, [{ senderDevice: 'poison' }]), ...rogue.events(other, 2)];
    expect(await link.exchange(batch)).toEqual(['store-refused']);
    expect(await pair.a.store.chatLog(other.id)).toHaveLength(2);
    await journalled('store-refused');
    // The refused run's link position is stored all the same: a new link resends nothing of it.
    link.close();
    link = await rogue.connect();
    expect(link.opening.peerStoredLinkSeq).toBe(3);
    await stillServing(chat);
  });

  it('2. an event stamped beyond the clock skew bound is refused and moves no clock', async () => {
    const chat = rogue.newChat();
    expect(await link.exchange(rogue.events(chat, 1))).toEqual([]);
    expect(await link.exchange(rogue.forge(chat, [{ hlcMs: Date.now() + 10 * 60_000 }]))).toEqual(['clock-skew']);
    await journalled('clock-skew');
    expect((await pair.a.post(messageDraft(honest, `alice@${pair.a.id}`, 'now'))).hlcMs).toBeLessThan(Date.now() + 60_000);

    // Within the bound, a counter at its maximum is taken and the local clock rolls over to the next ms.
    await rewind(chat);
    const ahead = Date.now() + 60_000;
    expect(await link.exchange(rogue.forge(chat, [{ hlcMs: ahead, hlcCounter: 0xffff_ffff }]))).toEqual([]);
    const after = await pair.a.post(messageDraft(honest, `alice@${pair.a.id}`, 'after'));
    expect([after.hlcMs, after.hlcCounter]).toEqual([ahead + 1, 0]);
    await stillServing(chat);
  });

  it('3. a server outside a chat cannot add itself, remove others, recreate the chat or read its backfill', async () => {
    const asRogue: TestChat = { ...honest, members: [...honest.members] };

    const cases: Array<[string, Partial<Event>, string]> = [
      ['adds itself', { kind: EventKind.EVENT_KIND_MEMBERS_ADDED, members: [...honest.members, `mallory@${rogue.id}`] }, 'not-a-member'],
      ['removes a member', { kind: EventKind.EVENT_KIND_MEMBERS_REMOVED, members: [`alice@${pair.a.id}`] }, 'not-a-member'],
      ['recreates the chat', { kind: EventKind.EVENT_KIND_CHAT_CREATED, members: [`alice@${pair.a.id}`, `mallory@${rogue.id}`] }, 'chat-exists'],
    ];
    for (const [what, edit, code] of cases) {
      rogue.rewind(asRogue, undefined);
      expect(await link.exchange(rogue.forge(asRogue, [edit])), what).toEqual([code]);
      await journalled(code);
    }
    expect(await pair.a.store.chatServers(honest.id)).toEqual([pair.a.id, pair.b.id].sort());
    for (const origin of [pair.a.id, '']) {
      await link.send({ kind: { $case: 'backfillRequest', value: { chatId: honest.id, origin, fromSeq: 1 } } });
      expect((await link.until('error')).code).toBe('backfill-refused');
    }

    // An honest invitation: B, a member, adds a user of the rogue's server, and A takes it.
    await pair.b.post(membersAddedDraft(honest, `bob@${pair.b.id}`, [`carol@${rogue.id}`]));
    await waitFor('A sees the rogue server in the chat', async () => (await pair.a.store.chatServers(honest.id)).includes(rogue.id));
    await stillServing(rogue.newChat());
  });

  it('4. events beyond a gap are held within bounds per chain and per peer; past them they are refused', async () => {
    const chats = [rogue.newChat(), rogue.newChat(), rogue.newChat()];
    const chains = chats.map((chat) => rogue.events(chat, 30));
    // Seq 3..20 of the first chat: 3..8 held (at most 8 past the head), the rest refused in one entry.
    expect(await link.exchange(rogue.signedRun(chains[0]!.slice(2, 20)))).toEqual(['too-far-ahead']);
    await journalled('too-far-ahead');
    expect(link.backfillRequests).toContainEqual({ chatId: chats[0]!.id, origin: rogue.id, fromSeq: 1 });
    // Far past the head: refused outright.
    expect(await link.exchange(rogue.signedRun(chains[1]!.slice(29)))).toEqual(['too-far-ahead']);
    // The peer bound (15): 6 + 6 held, so the third chat gets 3 of its 6.
    expect(await link.exchange(rogue.signedRun(chains[1]!.slice(2, 8)))).toEqual([]);
    expect(await link.exchange(rogue.signedRun(chains[2]!.slice(2, 8)))).toEqual(['too-far-ahead']);
    const held = await pair.a.store.heldSummary();
    expect(held.reduce((sum, share) => sum + share.events, 0)).toBe(HELD_BOUNDS.held_events_per_peer);
    expect(held.map((share) => share.events).sort()).toEqual([3, 6, 6]);

    // Closing the first gap releases what was held there, and only that.
    expect(await link.exchange(rogue.signedRun(chains[0]!.slice(0, 2)))).toEqual([]);
    expect((await pair.a.store.head(chats[0]!.id, rogue.id))?.seq).toBe(8);
    expect((await pair.a.store.heldSummary()).reduce((sum, share) => sum + share.events, 0)).toBe(9);
    await stillServing(chats[0]!);
  });

  it('5. a peer\'s unknown codes and long messages are cut down, and refusals under a flood are coalesced', async () => {
    await link.send({ kind: { $case: 'error', value: { code: 'x'.repeat(500), message: 'y'.repeat(10_000), fatal: false } } });
    // The rogue's entry: A and B dial each other at the start, and the link that loses may journal B's duplicate-link refusal too.
    const ours = (e: AuditRecord) => e.kind === 'refused-by-peer' && e.peer === rogue.id;
    await waitFor('the peer error journalled', async () => (await pair.a.store.auditLog()).some(ours));
    const entry = (await pair.a.store.auditLog()).find(ours)!;
    expect(entry.code).toBe('unknown');
    expect(entry.detail.length).toBeLessThanOrEqual(PEER_MESSAGE_CHARS_MAX + 1);

    const chat = rogue.newChat();
    const good = rogue.events(chat, 1);
    for (let i = 0; i < 40; i++) {
      expect(await link.exchange([{ ...good[0]!, signature: Buffer.alloc(64, i + 1) }])).toEqual(['bad-signature']);
    }
    const journal = (await pair.a.store.auditLog()).filter((e) => e.kind === 'event-refused');
    expect(journal).toHaveLength(AUDIT_VERBATIM_PER_WINDOW);
    expect(pair.a.link(rogue.id)?.stats.eventsRefused).toBe(40);
    await link.exchange(good);
    await stillServing(chat);
  });

  it('6. a gap found while a link runs is asked for again on the next link, until it is closed', async () => {
    const chat = rogue.newChat();
    const chain = rogue.events(chat, 4);
    expect(await link.exchange(rogue.signedRun(chain.slice(2)))).toEqual([]);
    expect(link.backfillRequests).toEqual([{ chatId: chat.id, origin: rogue.id, fromSeq: 1 }]);
    link.close();
    link = await rogue.connect();
    await waitFor('asked again on the new link', async () => {
      await link.exchange([]).catch(() => undefined);
      return link.backfillRequests.some((request) => request.chatId === chat.id && request.fromSeq === 1);
    });
    expect(await link.exchange(rogue.signedRun(chain.slice(0, 2)))).toEqual([]);
    expect((await pair.a.store.chatLog(chat.id)).map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    expect(await pair.a.store.heldSummary()).toEqual([]);
    await stillServing(chat);
  });

  it('7. a link is not declared dead while its frames are being stored, and resumes exactly after', async () => {
    // A trigger that blocks the store (PGlite runs on the node's thread) for longer than the dead-link bound.
    await driver.query(`create function slow_insert() returns trigger language plpgsql as $$
      begin if new.sender_device = 'slow' then perform pg_sleep(5); end if; return new; end $$`);
    await driver.query('create trigger slow_insert before insert on events for each row execute function slow_insert()');
    await waitFor('A adopted the rogue link', () => pair.a.link(rogue.id) !== undefined);
    const session = pair.a.link(rogue.id)!;
    const chat = rogue.newChat();
    expect(await link.exchange(rogue.events(chat, 1))).toEqual([]);
    const downs: string[] = [];
    pair.a.on('link-down', (ended: typeof session, end: { code: string }) => ended === session && downs.push(end.code));
    expect(await link.exchange(rogue.forge(chat, [{ senderDevice: 'slow' }]))).toEqual([]);
    // Storing took longer than the dead-link bound (8 × 500 ms): had storing counted as silence, the link would be dead.
    await new Promise((resolve) => setTimeout(resolve, 2 * pair.aConfig.link.heartbeat_interval_ms));
    expect(downs).toEqual([]);
    expect(session.isOpen).toBe(true);

    // A link that ends while its frame is being stored (its trust changed): the next link's Welcome covers that frame.
    const gate = store.closeGate();
    const stuckSeq = await link.sendBatch(rogue.events(chat, 1));
    await gate.reached;
    await pair.a.setTrust({ ...rogue.trustFor(pair.a), name: 'renamed' });
    const redial = rogue.connect();
    await new Promise((resolve) => setTimeout(resolve, 200));
    gate.open();
    link.close();
    link = await redial;
    expect(link.opening.peerStoredLinkSeq).toBe(stuckSeq);
    await stillServing(chat);
  }, 60_000);
});

describe('a server added to a chat converges to its whole log', () => {
  let pair: TestPair;
  let rogue: RoguePeer;
  let link: RogueLink;
  afterEach(async () => {
    link?.close();
    await pair?.stop();
  });

  it('gets every origin\'s chain, page after page, from the server that added it', async () => {
    pair = await TestPair.start();
    await waitFor('A and B linked', () => pair.a.link(pair.b.id) !== undefined);
    rogue = await RoguePeer.attach(pair.a);
    // B knows the third server's key (pinned by its administrator) but holds no link with it.
    await pair.b.setTrust({ ...rogue.trustFor(pair.b), identity_key: Buffer.from(rogue.identity.publicKey).toString('base64') });
    link = await rogue.connect();

    // The third server created the chat with A and wrote 700 events in runs of 100: more than a backfill page.
    const chat = rogue.newChat();
    for (let sent = 0; sent < 700; sent += 100) expect(await link.exchange(rogue.events(chat, 100))).toEqual([]);
    for (let i = 0; i < 3; i++) await pair.a.post(messageDraft(chat, `victor@${pair.a.id}`, `before B joined ${i}`));
    await pair.a.post(membersAddedDraft(chat, `victor@${pair.a.id}`, [`bob@${pair.b.id}`]));

    await waitFor('B holds the whole chat, equal to A', async () => {
      const [inA, inB] = [await pair.a.store.chatSummary(chat.id), await pair.b.store.chatSummary(chat.id)];
      return inA.events === 704 && inB.events === 704 && inA.digest.equals(inB.digest);
    }, 60_000);
    expect(await pair.b.store.heldSummary()).toEqual([]);
  });
});
