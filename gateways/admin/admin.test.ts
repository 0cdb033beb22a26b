import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cryptoReady, generateIdentityPem } from '../../crypto/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GraphView, LinkCounters } from '../../router/index.js';
import { createdDraft, messageDraft, newChat } from '../../test/support/devices.js';
import { freePort, TestPair, waitFor } from '../../test/support/federation.js';
import { runCli, runCliCaptured } from '../cli/index.js';
import { EXIT_CONFIG, EXIT_UNAVAILABLE, EXIT_USAGE } from '../cli/exit-codes.js';
import { adminClient, AdminClientError, AdminError, startAdminServer, type AdminServer } from './index.js';

const run = (...argv: string[]) => runCliCaptured(argv);

/** A command that must succeed; its output (the error text in the failure message if not). */
async function ok(...argv: string[]): Promise<string> {
  const result = await run(...argv);
  expect(result.code, `trellis ${argv.join(' ')}: ${result.err}`).toBe(0);
  return result.out;
}

describe('the admin service and the commands that use it', () => {
  let pair: TestPair;
  let admin: AdminServer;
  let at: string[];

  const graph = async (): Promise<GraphView> => JSON.parse(await ok('graph', ...at, '--json')) as GraphView;
  const linkToB = async (): Promise<LinkCounters | undefined> =>
    (JSON.parse(await ok('links', ...at, '--json')) as { links: LinkCounters[] }).links.find((link) => link.peerId === pair.b.id);
  const bothUp = () => pair.a.link(pair.b.id) !== undefined && pair.b.link(pair.a.id) !== undefined;
  /** No reply may carry a token, whatever the command. */
  const expectNoToken = (text: string) => {
    for (const token of Object.values(pair.tokens)) expect(text).not.toContain(token);
  };

  beforeAll(async () => {
    pair = await TestPair.start();
    admin = await startAdminServer(pair.a, `127.0.0.1:${await freePort()}`);
    at = ['--admin', admin.address];
    await waitFor('the link between A and B', bothUp);
  });
  afterAll(async () => {
    await admin?.stop();
    await pair?.stop();
  });

  it('shows the graph with B green, as text, JSON and Graphviz', async () => {
    const text = await ok('graph', ...at);
    expect(text).toMatch(/^cts-a \(CTS [0-9a-f]{8}\): 2 server\(s\) known, 1 trust\(s\)/);
    expect(text).toMatch(new RegExp(`CTS\\s+cts-b\\s+${pair.b.id.slice(0, 8)}\\s+green`));
    expect(text).toMatch(/cts-b\s+partner\s+green/);

    const json = await graph();
    expect(json.self).toMatchObject({ id: pair.a.id, name: 'cts-a', kind: 'CTS' });
    expect(json.servers.find((server) => server.id === pair.b.id)).toMatchObject({ name: 'cts-b', kind: 'CTS', status: 'green' });
    expect(json.links).toEqual([expect.objectContaining({ peerId: pair.b.id, role: 'partner', status: 'green', endpoint: pair.aConfig.trusts[0]!.endpoint })]);

    const dot = await ok('graph', ...at, '--dot');
    expect(dot).toMatch(/^digraph trellis \{/);
    expect(dot).toContain(`"${pair.a.id}" -> "${pair.b.id}" [color=green, label="partner"]`);
    expect(dot).toMatch(new RegExp(`"${pair.b.id}" \\[label="cts-b\\\\nCTS [^"]*", fillcolor=blue\\]`));
    expectNoToken(text + JSON.stringify(json) + dot);
  });

  it("explains a chat's route: the direct trust to B, taken", async () => {
    const chat = newChat([`alice@${pair.a.id}`, `bob@${pair.b.id}`]);
    await pair.a.post(createdDraft(chat, `alice@${pair.a.id}`));
    await pair.a.post(messageDraft(chat, `alice@${pair.a.id}`, 'hello'));

    const text = await ok('route', ...at, '--chat', chat.id);
    expect(text).toContain(`chat ${chat.id}: policy default; lives on`);
    expect(text).toContain(`to cts-b (${pair.b.id.slice(0, 8)}): cts-a → cts-b`);
    expect(text).toMatch(/taken\s+direct\s+via cts-b\s+cts-a → cts-b\s+direct trust, link up/);

    const json = JSON.parse(await ok('route', ...at, '--chat', chat.id, '--json'));
    expect(json).toMatchObject({ chatId: chat.id, known: true, policy: 'default' });
    expect(json.destinations).toEqual([expect.objectContaining({ serverId: pair.b.id, via: pair.b.id, path: [pair.a.id, pair.b.id] })]);
    expect(json.destinations[0].candidates[0]).toMatchObject({ via: pair.b.id, class: 'direct', taken: true });

    const unknown = await ok('route', ...at, '--chat', 'no-such-chat');
    expect(unknown).toContain('chat no-such-chat: this node holds no event of it');
  });

  it('counts what the link to B carried, and its queue drains to 0', async () => {
    await waitFor('A to have sent both events to B', async () => ((await linkToB())?.stats?.eventsSent ?? 0) >= 2);
    await waitFor('the queue for B to drain', async () => (await linkToB())?.queues.find((queue) => queue.serverId === pair.b.id)?.depth === 0);
    const link = (await linkToB())!;
    expect(link.status).toBe('green');
    expect(link.stats!.framesSent).toBeGreaterThan(0);
    expect(link.stats!.bodyBytesSent).toBeGreaterThan(0);

    const text = await ok('links', ...at);
    expect(text).toContain(`cts-b (${pair.b.id.slice(0, 8)}): green`);
    expect(text).toMatch(/events\s+sent [2-9]\d*/);
    expect(text).toMatch(/frames\s+sent \d+\s+received \d+/);
    expect(text).toMatch(new RegExp(`cts-b\\s+${pair.b.id.slice(0, 8)}\\s+depth 0`));
  });

  it('refuses bad input with an error that names the field, and keeps serving', async () => {
    const empty = await run('route', ...at, '--chat', '');
    expect(empty.code).toBe(EXIT_USAGE);
    expect(empty.err).toContain(`the node at ${admin.address} refused: chat_id: is required`);
    expect(empty.err).not.toContain('    at ');

    const long = await run('route', ...at, '--chat', 'c'.repeat(300));
    expect(long.code).toBe(EXIT_USAGE);
    expect(long.err).toContain('chat_id: is 300 characters long, at most 256');

    const shortToken = 'too-short';
    const weak = await run('trust', 'set', ...at, '--server-id', pair.b.id, '--name', 'cts-b', '--tokens', `${shortToken}:${'c'.repeat(24)}`);
    expect(weak.code).toBe(EXIT_USAGE);
    expect(weak.err).toContain('token_for_accepting: must be at least 16 characters');
    expect(weak.err).not.toContain(shortToken);

    const self = await run('trust', 'set', ...at, '--server-id', pair.a.id, '--name', 'me', '--tokens', `${'a'.repeat(16)}:${'b'.repeat(16)}`);
    expect(self.code).toBe(EXIT_USAGE);
    expect(self.err).toContain('server_id: is this server itself');

    const stranger = await run('trust', 'block', ...at, '--server', '0b7e4d3c-8a21-4f6e-b5c9-7d2e1f0a9b82');
    expect(stranger.code).not.toBe(0);
    expect(stranger.err).toContain('server_id: this node holds no trust with 0b7e4d3c-8a21-4f6e-b5c9-7d2e1f0a9b82');

    const nowhere = `127.0.0.1:${await freePort()}`;
    const absent = await run('graph', '--admin', nowhere);
    expect(absent.code).toBe(EXIT_UNAVAILABLE);
    expect(absent.err).toContain(`no Trellis admin service answers at ${nowhere}`);
    expect(absent.err).not.toContain('    at ');

    const trustPort = await run('graph', '--admin', pair.aConfig.listen);
    expect(trustPort.code).toBe(EXIT_UNAVAILABLE);
    expect(trustPort.err).toContain(`${pair.aConfig.listen} is not a Trellis admin service`);

    const noAdmin = join(pair.dir, 'no-admin.yaml');
    writeFileSync(noAdmin, `server: { id: ${pair.a.id}, name: cts-a, kind: CTS }\nlisten: 127.0.0.1:5001\nidentity_key_file: a.key\nstore: { memory: true }\n`);
    const unconfigured = await run('links', '--config', noAdmin);
    expect(unconfigured.code).toBe(EXIT_CONFIG);
    expect(unconfigured.err).toContain(`${noAdmin} sets no admin.listen`);

    const neither = await run('links');
    expect(neither.code).toBe(EXIT_USAGE);
    expect(neither.err).toContain('--admin host:port');

    expect((await graph()).links[0]?.status).toBe('green');
  });

  it('finds the node from its config, and refuses to listen beyond loopback', async () => {
    const withAdmin = join(pair.dir, 'with-admin.yaml');
    writeFileSync(withAdmin, `server: { id: ${pair.a.id}, name: cts-a, kind: CTS }\nlisten: 127.0.0.1:5001\nidentity_key_file: a.key\nstore: { memory: true }\nadmin: { listen: '${admin.address}' }\n`);
    expect(await ok('graph', '--config', withAdmin)).toContain('cts-b');
    await expect(startAdminServer(pair.a, '0.0.0.0:0')).rejects.toThrow(new AdminError('not-loopback', 'admin.listen 0.0.0.0:0: must be a loopback address (127.0.0.1, ::1 or localhost): the admin service has no authentication'));
    await expect(startAdminServer(pair.a, 'localhost')).rejects.toMatchObject({ code: 'bad-address' });
  });

  it('blocks, enables, removes and adds back the trust with B, journalled, never showing a token', async () => {
    const blocked = await ok('trust', 'block', ...at, '--server', pair.b.id);
    expect(blocked).toContain(`trust ${pair.b.id} blocked`);
    expect((await graph()).links[0]).toMatchObject({ peerId: pair.b.id, status: 'purple' });
    expect(await ok('graph', ...at, '--dot')).toContain(`"${pair.a.id}" -> "${pair.b.id}" [color=purple`);

    await ok('trust', 'enable', ...at, '--server', pair.b.id);
    await waitFor('B green again', async () => (await graph()).links[0]?.status === 'green');

    expect(await ok('trust', 'remove', ...at, '--server', pair.b.id)).toContain(`trust ${pair.b.id} removed`);
    const removed = await graph();
    expect(removed.links).toEqual([]);
    expect(removed.servers.find((server) => server.id === pair.b.id)?.status ?? '').toBe('');
    expect(await ok('graph', ...at)).toMatch(/links:\n\s+none/);

    const endpoint = pair.aConfig.trusts[0]!.endpoint!;
    const back = await ok('trust', 'set', ...at, '--server-id', pair.b.id, '--name', 'cts-b', '--endpoint', endpoint, '--tokens', `${pair.tokens.aAccepts}:${pair.tokens.bAccepts}`);
    expect(back).toBe(`trust added: cts-b (${pair.b.id}), CTS partner, enabled, dials ${endpoint}`);
    await waitFor('B green after it is added back', async () => (await graph()).links[0]?.status === 'green');

    const journal = (await pair.a.store.auditLog()).filter((entry) => entry.peer === pair.b.id).map((entry) => entry.kind);
    expect(journal).toEqual(expect.arrayContaining(['trust-changed', 'trust-removed', 'trust-added']));
    expectNoToken(back + JSON.stringify(await pair.a.store.auditLog()) + pair.logs.text);
  });

  it('keeps --help useful for every admin command', async () => {
    const top = await ok('--help');
    for (const command of ['graph', 'route', 'links', 'trust']) expect(top).toContain(command);
    for (const argv of [['graph'], ['route'], ['links'], ['trust'], ['trust', 'set'], ['trust', 'block'], ['trust', 'enable'], ['trust', 'remove']]) {
      const help = await ok(...argv, '--help');
      expect(help).toContain(`Usage: trellis ${argv.join(' ')}`);
      if (argv.length > 1 || argv[0] !== 'trust') expect(help, argv.join(' ')).toContain('--admin <host:port>');
    }
    const both = await run('graph', ...at, '--json', '--dot');
    expect(both.code).toBe(EXIT_USAGE);
    expect(both.err).toContain("option '--json' cannot be used with option '--dot'");
    const pair = await run('trust', 'set', ...at, '--server-id', randomUUID(), '--name', 'x', '--tokens', 'no-colon-here');
    expect(pair.code).toBe(EXIT_USAGE);
    expect(pair.err).toContain("'<token_for_accepting>:<token_for_connecting>'");
  });

  it('answers the typed client: a write-only token, NOT_FOUND for an unknown trust', async () => {
    const client = adminClient(admin.address);
    try {
      const token = randomBytes(24).toString('base64url');
      const { added, trust } = await client.setTrust({ server_id: '0b7e4d3c-8a21-4f6e-b5c9-7d2e1f0a9b82', name: 'cts-c', token_for_accepting: token, token_for_connecting: token, status: 'disabled' });
      expect(added).toBe(true);
      expect(trust).toEqual({ server_id: '0b7e4d3c-8a21-4f6e-b5c9-7d2e1f0a9b82', name: 'cts-c', kind: 'CTS', role: 'partner', status: 'disabled', allow_trust_search: false });
      expect((await client.graph()).links.find((link) => link.name === 'cts-c')?.status).toBe('purple');
      await client.removeTrust('0b7e4d3c-8a21-4f6e-b5c9-7d2e1f0a9b82');
      const missing = await client.removeTrust('0b7e4d3c-8a21-4f6e-b5c9-7d2e1f0a9b82').catch((error: unknown) => error);
      expect(missing).toBeInstanceOf(AdminClientError);
      expect(missing).toMatchObject({ code: 'not-found' });
      await expect(client.setTrustStatus('not-a-uuid', 'enabled')).rejects.toMatchObject({ code: 'invalid-argument', message: 'server_id: must be a server id, a UUID' });
    } finally {
      client.close();
    }
  });
});

describe('trellis start with admin.listen', () => {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-admin-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('serves the admin service beside the node, found through the same config, until stopped', async () => {
    await cryptoReady();
    writeFileSync(join(dir, 'solo.key'), generateIdentityPem(), { mode: 0o600 });
    const id = randomUUID();
    const config = join(dir, 'solo.yaml');
    const adminAt = `127.0.0.1:${await freePort()}`;
    writeFileSync(config, `server: { id: ${id}, name: cts-solo, kind: CTS }\nlisten: 127.0.0.1:${await freePort()}\nidentity_key_file: solo.key\nstore: { memory: true }\nlog_level: silent\nadmin: { listen: '${adminAt}' }\n`);

    const signals = () => new Set([...process.listeners('SIGINT'), ...process.listeners('SIGTERM')]);
    const before = signals();
    const out: string[] = [];
    const started = runCli(['start', '--config', config], { out: (line) => out.push(line), err: () => undefined });
    await waitFor('the admin service to be announced', () => out.some((line) => line.startsWith('admin service on')));
    expect(out).toContain(`admin service on ${adminAt} (loopback only): trellis graph --admin ${adminAt}`);

    const graph = await ok('graph', '--config', config);
    expect(graph).toMatch(new RegExp(`^cts-solo \\(CTS ${id.slice(0, 8)}\\): 1 server\\(s\\) known, 0 trust\\(s\\)`));
    expect(graph).toMatch(/links:\n\s+none/);

    // What SIGINT would do, without signalling the test runner: call the listener start added.
    const stop = [...signals()].filter((listener) => !before.has(listener));
    for (const listener of stop) {
      process.removeListener('SIGINT', listener);
      process.removeListener('SIGTERM', listener);
    }
    expect(stop.length).toBeGreaterThan(0);
    (stop[0] as () => void)();
    expect(await started).toBe(0);
    expect((await run('graph', '--admin', adminAt)).code).toBe(EXIT_UNAVAILABLE);
  });
});
