import { randomBytes, randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { identityFromSeed, type Identity } from '../../crypto/index.js';
import { AdminServiceClient, ChatRouteResponse, GraphResponse, LinksResponse, type GraphView as WireGraphView } from '../../proto/gen/trellis/v1/admin.js';
import type { GraphView, TrellisNode } from '../../router/index.js';
import { createdDraft, newChat } from '../../test/support/devices.js';
import { freePort, TestPair, waitFor } from '../../test/support/federation.js';
import { RoguePeer, type RogueLink } from '../../test/support/rogue-peer.js';
import { runCliCaptured } from '../cli/index.js';
import { adminClient, ADMIN_MESSAGE_BYTES_MAX, ADMIN_PAGE_BYTES_MAX, ADMIN_PAGE_SIZE_MAX, startAdminServer, type AdminServer } from './index.js';

/**
 * A node whose neighbours announce thousands of made-up servers through real links (the
 * reachability flood) answers the admin service in pages: each within the byte bound,
 * together the whole answer, keeping their place when the table changes between them.
 * Several neighbours of a few thousand paths each, so that a bound per neighbour on
 * reachability still leaves an answer of many pages.
 */
const NEIGHBOURS = 4;
const PATHS_PER_NEIGHBOUR = 2_000;

/** The RTS above the flooding neighbours: their records name it their upstream. */
const rts: { id: string; identity: Identity } = { id: randomUUID(), identity: identityFromSeed(randomBytes(32)) };

/**
 * A neighbour trusted as an ETS above the node, whose link is up: it registers (attests)
 * the servers it announces, so the node believes them and takes its paths.
 */
async function floodingNeighbour(node: TrellisNode): Promise<{ rogue: RoguePeer; link: RogueLink; sync(): Promise<void>; register(count: number): Promise<string[]> }> {
  const rogue = await RoguePeer.attach(node, { kind: 'ETS', role: 'upstream' });
  const link = await rogue.connect();
  const rtsRecord = rogue.record({ serverId: rts.id, kind: 'RTS', name: 'rts', upstream: '' }, rts.identity);
  await link.sendRecords([rogue.record({ upstream: rts.id }), { ...rtsRecord, attestations: [rogue.attest(rtsRecord)] }]);
  const chat = rogue.newChat();
  // The node handles a link's frames in order: once it has acknowledged a batch sent after an announcement, it has taken the announcement.
  const sync = async () => expect(await link.exchange(rogue.events(chat, 1))).toEqual([]);
  const register = async (count: number) => {
    const ids = Array.from({ length: count }, () => randomUUID());
    const records = ids.map((id) => {
      const record = rogue.record({ serverId: id, kind: 'CTS', name: 'flood', upstream: rogue.id }, identityFromSeed(randomBytes(32)));
      return { ...record, attestations: [rogue.attest(record)] };
    });
    await link.sendRecords(records);
    return ids;
  };
  return { rogue, link, sync, register };
}

function announce(link: RogueLink, from: string, ids: readonly string[], change: { update?: boolean; withdrawn?: string[] } = {}): Promise<void> {
  return link.send({ kind: { $case: 'reachability', value: { paths: ids.map((id) => ({ servers: [from, id] })), withdrawn: change.withdrawn ?? [], update: change.update ?? false } } });
}

/** The entries of a graph as the service counts them: every server, link, and id a link reaches or carries. */
const graphEntries = (graph: GraphView | WireGraphView): number => graph.servers.length + graph.links.reduce((sum, link) => sum + 1 + link.reachable.length + link.carries.length, 0);

type Call<Req, Res> = (request: Req, callback: (error: grpc.ServiceError | null, response: Res) => void) => grpc.ClientUnaryCall;

/** The admin service as any gRPC client sees it: one page a call, its bytes as they travel. */
function wireClient(address: string) {
  const client = new AdminServiceClient(address, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': ADMIN_MESSAGE_BYTES_MAX });
  const unary = <Req, Res>(method: Call<Req, Res>, request: Req) => new Promise<Res>((resolve, reject) => method.call(client, request, (error, response) => (error ? reject(error) : resolve(response))));
  return {
    graph: (pageSize: number, pageToken = '') => unary<{ pageSize: number; pageToken: string }, GraphResponse>(client.graph, { pageSize, pageToken }),
    links: (pageSize: number, pageToken = '') => unary<{ pageSize: number; pageToken: string }, LinksResponse>(client.links, { pageSize, pageToken }),
    chatRoute: (chatId: string, pageSize: number, pageToken = '') => unary<{ chatId: string; pageSize: number; pageToken: string }, ChatRouteResponse>(client.chatRoute, { chatId, pageSize, pageToken }),
    close: () => client.close(),
  };
}

const run = (...argv: string[]) => runCliCaptured(argv);

describe('a node flooded with announced servers answers the admin service in pages', () => {
  let pair: TestPair;
  let admin: AdminServer;
  let wire: ReturnType<typeof wireClient>;
  let neighbours: Array<Awaited<ReturnType<typeof floodingNeighbour>>>;
  /** A made-up server two neighbours both announce: a destination with two candidates. */
  const shared = randomUUID();

  beforeAll(async () => {
    pair = await TestPair.start();
    admin = await startAdminServer(pair.a, `127.0.0.1:${await freePort()}`);
    wire = wireClient(admin.address);
    // Every neighbour linked before any floods: a handshake never waits behind thousands of records being checked.
    neighbours = [];
    for (let i = 0; i < NEIGHBOURS; i++) neighbours.push(await floodingNeighbour(pair.a));
    for (const neighbour of neighbours) {
      const ids = await neighbour.register(PATHS_PER_NEIGHBOUR - 1);
      await announce(neighbour.link, neighbour.rogue.id, ids);
      // One flood at a time: the node has checked this one's records before the next arrive.
      await neighbour.sync();
    }
    // The shared server is registered below the first neighbour; the second reaches it through their RTS.
    const [first, second] = [neighbours[0]!, neighbours[1]!];
    const sharedRecord = first.rogue.record({ serverId: shared, kind: 'CTS', name: 'shared', upstream: first.rogue.id }, identityFromSeed(randomBytes(32)));
    await first.link.sendRecords([{ ...sharedRecord, attestations: [first.rogue.attest(sharedRecord)] }]);
    await first.link.announce([[first.rogue.id, shared]], { update: true });
    await second.link.announce([[second.rogue.id, rts.id, first.rogue.id, shared]], { update: true });
    for (const neighbour of neighbours) await neighbour.sync();
    // (Sets, not arrays: a test that holds the event loop for seconds would starve the links' heartbeats.)
    const routed = (link: GraphView['links'][number]) => {
      const carried = new Set([...link.carries, shared]);
      return link.reachable.every((id) => carried.has(id));
    };
    await waitFor('routes through every neighbour', async () => (await pair.a.inspect.graph()).links.every(routed));
  }, 120_000);
  afterAll(async () => {
    wire?.close();
    for (const { link } of neighbours ?? []) link.close();
    await admin?.stop();
    await pair?.stop();
  });

  it('answers Graph in pages each within the byte bound, which together are the whole graph', async () => {
    const whole = await pair.a.inspect.graph();
    const entries = graphEntries(whole);
    const pages: GraphResponse[] = [];
    for (let token = ''; pages.length === 0 || token !== ''; token = pages.at(-1)!.nextPageToken) pages.push(await wire.graph(ADMIN_PAGE_SIZE_MAX, token));
    for (const page of pages) expect(GraphResponse.encode(page).finish().length).toBeLessThanOrEqual(ADMIN_PAGE_BYTES_MAX);
    // More pages than the count alone would cut: the byte bound cut them.
    expect(pages.length).toBeGreaterThan(Math.ceil(entries / ADMIN_PAGE_SIZE_MAX));
    const served = pages.flatMap((page) => page.graph!.links.flatMap((link) => link.reachable.map((id) => `${link.peerId}/${id}`)));
    expect(new Set(served).size).toBe(served.length);
    expect(served.length).toBe(whole.links.reduce((sum, link) => sum + link.reachable.length, 0));

    const client = adminClient(admin.address);
    try {
      expect(await client.graph()).toEqual(whole);
      const progress: number[] = [];
      expect(await client.graph({ pageSize: 500, onPage: ({ entries }) => progress.push(entries) })).toEqual(whole);
      expect(progress.length).toBeGreaterThanOrEqual(Math.ceil(entries / 500));
      expect(progress.at(-1)).toBe(entries);
      // Never more than asked: each page brought at most 500 entries.
      progress.forEach((count, index) => expect(count - (progress[index - 1] ?? 0)).toBeLessThanOrEqual(500));
    } finally {
      client.close();
    }
  });

  it('keeps its place by key when the table changes between two pages', async () => {
    /** Every (link, id) a graph lists as reachable or carried. */
    const pairsOf = (graph: GraphView | WireGraphView) => graph.links.flatMap((link) => [...link.reachable.map((id) => `${link.peerId} reaches ${id}`), ...link.carries.map((id) => `${link.peerId} carries ${id}`)]);
    const before = new Set(pairsOf(await pair.a.inspect.graph()));
    // Page on to the first page that lists what a link reaches (the servers come first).
    const served: string[] = [];
    let page = await wire.graph(ADMIN_PAGE_SIZE_MAX);
    served.push(...pairsOf(page.graph!));
    while (!page.graph!.links.some((view) => view.reachable.length > 0)) {
      page = await wire.graph(ADMIN_PAGE_SIZE_MAX, page.nextPageToken);
      served.push(...pairsOf(page.graph!));
    }
    // The neighbour that page ends in: withdraw what the page already sent of it, and add as many new servers, sorting anywhere.
    const inFirst = page.graph!.links.filter((view) => view.reachable.length > 0).at(-1)!;
    const { rogue, link, sync, register } = neighbours.find((neighbour) => neighbour.rogue.id === inFirst.peerId)!;
    const withdrawn = inFirst.reachable.slice(0, 100);
    await announce(link, rogue.id, await register(withdrawn.length), { update: true, withdrawn });
    await sync();
    for (let token = page.nextPageToken; token !== ''; ) {
      const next = await wire.graph(ADMIN_PAGE_SIZE_MAX, token);
      served.push(...pairsOf(next.graph!));
      token = next.nextPageToken;
    }
    const after = new Set(pairsOf(await pair.a.inspect.graph()));
    // Offset pages would now skip as many entries as were withdrawn before the cut: key-ordered ones skip none and send none twice.
    expect(new Set(served).size).toBe(served.length);
    const throughout = [...before].filter((entry) => after.has(entry));
    expect(throughout.length).toBeGreaterThan(0);
    expect(served.filter((entry) => !before.has(entry) && !after.has(entry))).toEqual([]);
    const servedOnce = new Set(served);
    const missing = throughout.filter((entry) => !servedOnce.has(entry));
    expect(missing).toEqual([]);
  });

  it('refuses a bad page size or page token with a message that names the field, and keeps serving', async () => {
    const refusal = (call: Promise<unknown>) => call.then(() => undefined, (error: grpc.ServiceError) => ({ code: error.code, details: error.details }));
    expect(await refusal(wire.graph(ADMIN_PAGE_SIZE_MAX + 1))).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: `page_size: is ${ADMIN_PAGE_SIZE_MAX + 1}, at most ${ADMIN_PAGE_SIZE_MAX} (0 for the default, 1000)` });
    expect(await refusal(wire.graph(10, 'not a token!'))).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/^page_token: is not a page token of this service \(not base64url\)/) });
    expect(await refusal(wire.graph(10, Buffer.from('{"a":"Graph"}').toString('base64url')))).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/^page_token: is not a page token of this service;/) });
    expect(await refusal(wire.graph(10, 'A'.repeat(5_000)))).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/^page_token: is 5000 characters long, at most 4096/) });

    const linksToken = (await wire.links(1)).nextPageToken;
    expect(linksToken).not.toBe('');
    expect(await refusal(wire.graph(10, linksToken))).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/^page_token: is a token of Links, not of Graph/) });

    const chat = newChat([`alice@${pair.a.id}`, `bob@${pair.b.id}`, `carol@${shared}`]);
    await pair.a.post(createdDraft(chat, `alice@${pair.a.id}`));
    const routeToken = (await wire.chatRoute(chat.id, 1)).nextPageToken;
    expect(routeToken).not.toBe('');
    expect(await refusal(wire.chatRoute('another-chat', 1, routeToken))).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/^page_token: was given by ChatRoute for another chat_id/) });
    expect(await refusal(wire.chatRoute('', 1, routeToken))).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'chat_id: is required' });

    expect((await wire.graph(1)).graph!.servers).toHaveLength(1);
    const cli = await run('graph', '--admin', admin.address, '--limit', '0');
    expect(cli.code).toBe(64);
    expect(cli.err).toContain('must be a whole number from 1 to 1000000');
  });

  it("pages a chat's route one entry at a time, a destination's candidates continued across pages", async () => {
    const chat = newChat([`alice@${pair.a.id}`, `bob@${pair.b.id}`, `carol@${shared}`, ...neighbours.map(({ rogue }) => `n@${rogue.id}`)]);
    await pair.a.post(createdDraft(chat, `alice@${pair.a.id}`));
    const whole = await pair.a.inspect.chatRoute(chat.id);
    expect(whole.destinations.find((route) => route.serverId === shared)?.candidates).toHaveLength(2);
    const pages: ChatRouteResponse[] = [];
    for (let token = ''; pages.length === 0 || token !== ''; token = pages.at(-1)!.nextPageToken) pages.push(await wire.chatRoute(chat.id, 1, token));
    const count = whole.servers.length + whole.destinations.reduce((sum, route) => sum + 1 + route.candidates.length, 0);
    expect(pages).toHaveLength(count);
    // The shared destination's second candidate starts a page: the page names the destination again.
    const continued = pages.filter((page) => page.route!.destinations[0]?.serverId === shared && page.route!.destinations[0].candidates.length === 1);
    expect(continued).toHaveLength(2);

    const client = adminClient(admin.address);
    try {
      expect(await client.chatRoute(chat.id, { pageSize: 1 })).toEqual(whole);
    } finally {
      client.close();
    }
  });

  it('pages Links: every link by peer id, with a queue per destination it carries', async () => {
    const client = adminClient(admin.address);
    try {
      const report = await client.links({ pageSize: ADMIN_PAGE_SIZE_MAX });
      const whole = await pair.a.inspect.graph();
      expect(report.links.map((link) => link.peerId)).toEqual(whole.links.map((link) => link.peerId));
      for (const link of report.links) expect(link.queues.map((queue) => queue.serverId)).toEqual(whole.links.find((view) => view.peerId === link.peerId)!.carries);
      // Thousands of queue reads on the embedded store took no link down (each page gives the event loop turns).
      expect((await pair.a.store.auditLog()).filter((entry) => entry.kind === 'link-down').map((entry) => `${entry.peer} ${entry.code} ${entry.detail}`)).toEqual([]);
    } finally {
      client.close();
    }
  }, 120_000);

  it('prints the whole graph from the CLI, with a progress line, or stops at --limit', async () => {
    const whole = await pair.a.inspect.graph();
    const json = await run('graph', '--admin', admin.address, '--json');
    expect(json.code, json.err).toBe(0);
    expect(JSON.parse(json.out)).toEqual(whole);
    expect(json.err).toMatch(/^graph: \d+ entries in \d+ pages so far\.\.\.$/m);

    const text = await run('graph', '--admin', admin.address);
    expect(text.out).toContain(`: ${whole.servers.length} server(s) known, ${whole.links.length} trust(s)`);
    for (const link of whole.links) expect(text.out).toMatch(new RegExp(`${link.name}\\s+${link.role}\\s+${link.status}\\s+${link.reachable.length}\\s`));

    const limited = await run('graph', '--admin', admin.address, '--limit', '100', '--json');
    expect(limited.code).toBe(0);
    expect(graphEntries(JSON.parse(limited.out) as GraphView)).toBe(100);
    expect(limited.err).toContain('graph: stopped at --limit 100; the node has more');
    for (const command of ['graph', 'route', 'links']) expect((await run(command, '--help')).out, command).toContain('--limit <entries>');
  });
});
