import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from './errors.js';
import { loadConfig, parseConfig, parseTrust, upstreamOf, type NodeConfig, type TrustConfig } from './config.js';

const SELF = '6f1c2a9e-3b7d-4e52-9a4f-0c8d1e2f3a41';
const PEER = '0b7e4d3c-8a21-4f6e-b5c9-7d2e1f0a9b82';
const UPSTREAM = '9c4e1b2a-7d3f-4a6b-8e5c-1f2a3b4c5d6e';
const OTHER = 'e1d2c3b4-a596-4786-9a5b-4c3d2e1f0a9b';
/** Two distinct halves, so a swapped split shows. */
const ACCEPT = 'upstream-presents-this-to-us';
const CONNECT = 'we-present-this-to-upstream';
/** A 32-byte Ed25519 public key in base64 (the bytes do not matter to the config). */
const KEY = Buffer.alloc(32, 7).toString('base64');
const OTHER_KEY = Buffer.alloc(32, 9).toString('base64');

function valid(): Record<string, any> {
  return {
    server: { id: SELF, name: 'cts-a', kind: 'CTS' },
    listen: '127.0.0.1:5001',
    identity_key_file: 'a.key',
    store: { memory: true },
    trusts: [{ server_id: PEER, name: 'cts-b', endpoint: '127.0.0.2:5001', token_for_accepting: 'a'.repeat(16), token_for_connecting: 'b'.repeat(16) }],
  };
}

/** The problems a config is refused with, one line each, or [] if it is accepted. */
function problemsOf(document: unknown): string[] {
  try {
    parseConfig(document);
    return [];
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return error.problems;
  }
}

describe('node configuration', () => {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('accepts a minimal pair config and fills the defaults', () => {
    const config = parseConfig(valid());
    expect(config.trusts[0]!.status).toBe('enabled');
    expect(config.link.window_frames).toBe(8);
    expect(config.allow_plaintext).toBe(false);
  });

  it.each([
    ['a server id that is no UUID', (c: any) => (c.server.id = 'cts-a'), 'server.id: must be this server id, a UUID'],
    ['a typo in a key', (c: any) => (c.trusts[0].token_for_acepting = 'x'), 'trusts[0]'],
    ['a short token', (c: any) => (c.trusts[0].token_for_connecting = 'short'), 'trusts[0].token_for_connecting: must be at least 16 characters'],
    ['an endpoint without a port', (c: any) => (c.trusts[0].endpoint = 'cts2.example.com'), 'trusts[0].endpoint: must be host:port'],
    ['a port past 65535', (c: any) => (c.listen = '127.0.0.1:70000'), 'listen: port must be at most 65535'],
    ['a trust with itself', (c: any) => (c.trusts[0].server_id = SELF), 'trusts[0].server_id: is this server itself'],
    ['both store kinds', (c: any) => (c.store = { memory: true, data_dir: 'x' }), 'store: set exactly one of data_dir, memory: true or url'],
    ['a public address without TLS', (c: any) => (c.listen = '0.0.0.0:5001'), 'listen: is not a loopback address: configure tls, or set allow_plaintext: true'],
    ['a backoff ceiling below its floor', (c: any) => (c.link = { reconnect_min_ms: 5000, reconnect_max_ms: 1000 }), 'link.reconnect_max_ms: must be at least reconnect_min_ms'],
  ])('refuses %s, naming the key', (_what, spoil, expected) => {
    const config = valid();
    spoil(config);
    expect(problemsOf(config).join('\n')).toContain(expected);
  });

  it('refuses two trusts with the same server', () => {
    const config = valid();
    config.trusts.push({ ...config.trusts[0], name: 'again' });
    expect(problemsOf(config)).toEqual(['trusts[1].server_id: appears in two trusts']);
  });

  it('lets plaintext off loopback through only when asked, and never leaks a token in its errors', () => {
    const config = { ...valid(), listen: '10.1.2.3:5001', allow_plaintext: true };
    expect(problemsOf(config)).toEqual([]);
    const spoiled = valid();
    spoiled.trusts[0].token_for_accepting = 'secret-but-short';
    spoiled.trusts[0].endpoint = 'bad endpoint';
    expect(problemsOf(spoiled).join('\n')).not.toContain('secret-but-short');
  });

  it('takes an optional kafka section and names what is wrong in it', () => {
    expect(parseConfig(valid()).kafka).toBeUndefined();
    const kafka = { brokers: ['127.0.0.1:9092', 'kafka2.example.com:9092'], topic_prefix: 'trellis.cts-a', client_id: 'cts-a' };
    expect(parseConfig({ ...valid(), kafka }).kafka).toEqual(kafka);
    expect(problemsOf({ ...valid(), kafka: { brokers: ['kafka'] } })).toContain('kafka.brokers[0]: must be host:port, e.g. cts2.example.com:5001');
    expect(problemsOf({ ...valid(), kafka: { brokers: [] } }).join('\n')).toContain('kafka.brokers:');
    expect(problemsOf({ ...valid(), kafka: { brokers: ['127.0.0.1:9092'], topic_prefix: 'has space' } }).join('\n')).toContain('kafka.topic_prefix: must be 1 to 200 of the characters');
    expect(problemsOf({ ...valid(), kafka: { brokers: ['127.0.0.1:9092'], topics: 'x' } }).join('\n')).toContain('kafka');
  });

  it('refuses a trust with a short identity key', () => {
    const config = valid();
    config.trusts[0].identity_key = Buffer.alloc(16).toString('base64');
    expect(problemsOf(config).join('\n')).toContain('trusts[0].identity_key: must be a 32-byte Ed25519 public key');
  });

  it('reads a file, resolving paths from its folder, and names the file when it is not YAML', () => {
    const file = join(dir, 'node.yaml');
    writeFileSync(file, JSON.stringify({ ...valid(), store: { data_dir: 'data/a' } }));
    const config = loadConfig(file);
    expect(config.identity_key_file).toBe(join(dir, 'a.key'));
    expect(config.store.data_dir).toBe(join(dir, 'data/a'));
    writeFileSync(file, 'server: [unclosed');
    expect(() => loadConfig(file)).toThrow(/node\.yaml: invalid configuration\n {2}- not valid YAML/);
    expect(() => loadConfig(join(dir, 'missing.yaml'))).toThrow(/cannot read the file: ENOENT/);
  });
});

/** A CTS with an RTS upstream (rts_*), the partner trust of valid() beside it. */
function withUpstream(kind: 'CTS' | 'ETS' | 'RTS' = 'CTS', prefix: 'rts' | 'ets' = 'rts'): Record<string, any> {
  const config = valid();
  config.server.kind = kind;
  if (kind !== 'CTS') config.trusts = [];
  config[`${prefix}_id`] = UPSTREAM;
  config[`${prefix}_host`] = '127.0.0.9:5001';
  config[`${prefix}_token`] = `${ACCEPT}:${CONNECT}`;
  return config;
}

describe('the topology: upstream and trusts by server kind', () => {
  it('turns rts_* into an upstream trust, tokens split in order, beside the partner trust', () => {
    const config = withUpstream();
    config.rts_identity_key = KEY;
    const parsed = parseConfig(config);
    const upstream = upstreamOf(parsed);
    expect(upstream).toEqual({
      server_id: UPSTREAM,
      name: 'rts',
      kind: 'RTS',
      endpoint: '127.0.0.9:5001',
      token_for_accepting: ACCEPT,
      token_for_connecting: CONNECT,
      status: 'enabled',
      allow_trust_search: false,
      identity_key: KEY,
      role: 'upstream',
    } satisfies TrustConfig);
    expect(parsed.trusts.map((t) => [t.server_id, t.role])).toEqual([
      [PEER, 'partner'],
      [UPSTREAM, 'upstream'],
    ]);
    expect(Object.keys(parsed).filter((key) => key.startsWith('rts_') || key.startsWith('ets_'))).toEqual([]);
  });

  it('takes an ETS upstream for a CTS under its own name, and a bare host as port 5001', () => {
    const config = withUpstream('CTS', 'ets');
    config.ets_host = 'ets.acme.example';
    config.ets_name = 'ets-acme';
    config.allow_plaintext = true;
    const upstream = upstreamOf(parseConfig(config))!;
    expect([upstream.kind, upstream.name, upstream.endpoint, upstream.identity_key]).toEqual(['ETS', 'ets-acme', 'ets.acme.example:5001', undefined]);
    expect(upstreamOf(parseConfig({ ...config, ets_host: '[::1]' }))!.endpoint).toBe('[::1]:5001');
    expect(upstreamOf(parseConfig({ ...config, ets_host: 'ets.acme.example:6001' }))!.endpoint).toBe('ets.acme.example:6001');
    expect(upstreamOf(parseConfig(valid()))).toBeUndefined();
  });

  it('derives each trust\'s role from the two kinds', () => {
    const roles = (config: Record<string, any>) => parseConfig(config).trusts.map((t) => `${t.kind}:${t.role}`);
    const trust = (id: string, kind: string) => ({ server_id: id, name: kind, kind, token_for_accepting: ACCEPT, token_for_connecting: CONNECT });
    const cts = { ...valid(), trusts: [trust(PEER, 'CTS'), trust(OTHER, 'TTS')] };
    expect(roles(cts)).toEqual(['CTS:partner', 'TTS:transit']);
    const ets = { ...withUpstream('ETS'), trusts: [trust(PEER, 'CTS'), trust(OTHER, 'TTS')] };
    expect(roles(ets)).toEqual(['CTS:downstream', 'TTS:transit', 'RTS:upstream']);
    const rts = { ...valid(), server: { id: SELF, name: 'rts', kind: 'RTS' }, trusts: [trust(PEER, 'ETS'), trust(OTHER, 'CTS'), trust(UPSTREAM, 'TTS')] };
    expect(roles(rts)).toEqual(['ETS:downstream', 'CTS:downstream', 'TTS:transit']);
  });

  it.each([
    ['a CTS with both upstreams', () => ({ ...withUpstream(), ets_id: OTHER, ets_host: '127.0.0.8', ets_token: `${ACCEPT}:${CONNECT}` }), 'rts_id: a CTS has one upstream: set rts_* or ets_*, not both'],
    ['an ETS with an ETS upstream', () => withUpstream('ETS', 'ets'), "ets_id: an ETS's upstream is an RTS (rts_*)"],
    ['an RTS with an upstream', () => withUpstream('RTS'), 'rts_id: an RTS has no upstream'],
    ['an RTS with an ETS upstream', () => withUpstream('RTS', 'ets'), 'ets_id: an RTS has no upstream'],
    ['rts_id without rts_token', () => ({ ...withUpstream(), rts_token: undefined }), 'rts_token: is required with rts_id'],
    ['ets_token without ets_id and ets_host', () => ({ ...withUpstream('CTS', 'ets'), ets_id: undefined, ets_host: undefined }), 'ets_id: is required with ets_token'],
    ['only rts_name', () => ({ ...valid(), rts_name: 'rts-ru' }), 'rts_host: is required with rts_name'],
    ['a token pair with no colon', () => ({ ...withUpstream(), rts_token: `${ACCEPT}${CONNECT}` }), "rts_token: must be '<token_for_accepting>:<token_for_connecting>'"],
    ['a token pair in three', () => ({ ...withUpstream(), rts_token: `${ACCEPT}:${CONNECT}:${ACCEPT}` }), "rts_token: must be '<token_for_accepting>:<token_for_connecting>'"],
    ['a short accepting half', () => ({ ...withUpstream(), rts_token: `short:${CONNECT}` }), "rts_token: the token for accepting (before ':') must be at least 16 characters"],
    ['a short connecting half', () => ({ ...withUpstream(), rts_token: `${ACCEPT}:` }), "rts_token: the token for connecting (after ':') must be at least 16 characters"],
    ['an upstream id that is no UUID', () => ({ ...withUpstream(), rts_id: 'rts-ru' }), 'rts_id: must be the upstream server id, a UUID'],
    ['an upstream that is this server', () => ({ ...withUpstream(), rts_id: SELF }), 'rts_id: is this server itself'],
    ['an upstream that is also a trust', () => ({ ...withUpstream(), rts_id: PEER }), 'rts_id: is also trusts[0].server_id'],
    ['an upstream host that is no host', () => ({ ...withUpstream(), rts_host: 'rts ru' }), 'rts_host: must be host:port or a bare host'],
    ['an upstream port past 65535', () => ({ ...withUpstream(), rts_host: '127.0.0.9:70000' }), 'rts_host: port must be at most 65535'],
    ['a public upstream without TLS', () => ({ ...withUpstream(), rts_host: 'rts.example.com' }), 'rts_host: is not a loopback address'],
    ['an upstream key that is not 32 bytes', () => ({ ...withUpstream(), rts_identity_key: 'AAAA' }), 'rts_identity_key: must be a 32-byte Ed25519 public key'],
    ['an unknown upstream key', () => ({ ...withUpstream(), rts_tokens: 'x' }), 'rts_tokens'],
    ['an RTS trust on a CTS', () => ({ ...valid(), trusts: [{ ...valid().trusts[0], kind: 'RTS' }] }), 'trusts[0].kind: a CTS trusts partner CTS or TTS servers; its RTS is its upstream: the upstream goes in rts_* / ets_*'],
    ['an ETS trust on a CTS', () => ({ ...valid(), trusts: [{ ...valid().trusts[0], kind: 'ETS' }] }), 'trusts[0].kind: a CTS trusts partner CTS or TTS servers; its ETS is its upstream: the upstream goes in rts_* / ets_*'],
    ['an RTS trust on an ETS', () => ({ ...withUpstream('ETS'), trusts: [{ ...valid().trusts[0], kind: 'RTS' }] }), 'trusts[0].kind: an ETS trusts its CTS or TTS servers; its RTS is its upstream: the upstream goes in rts_*'],
    ['an ETS trust on an ETS', () => ({ ...withUpstream('ETS'), trusts: [{ ...valid().trusts[0], kind: 'ETS' }] }), 'trusts[0].kind: an ETS trusts its CTS or TTS servers, not another ETS'],
    ['an RTS trust on an RTS', () => ({ ...valid(), server: { id: SELF, name: 'rts', kind: 'RTS' }, trusts: [{ ...valid().trusts[0], kind: 'RTS' }] }), 'trusts[0].kind: an RTS trusts ETS, CTS or TTS servers, not another RTS'],
    ['an admin address off loopback', () => ({ ...valid(), admin: { listen: '0.0.0.0:7001' }, allow_plaintext: true }), 'admin.listen: must be a loopback address (the admin service has no authentication)'],
    ['an admin address that is the trust port', () => ({ ...valid(), admin: { listen: '127.0.0.1:5001' } }), 'admin.listen: must differ from listen'],
    ['an admin address without a port', () => ({ ...valid(), admin: { listen: '127.0.0.1' } }), 'admin.listen: must be host:port'],
    ['a pinned server that is no UUID', () => ({ ...valid(), pinned_servers: [{ server_id: 'x', identity_key: KEY }] }), 'pinned_servers[0].server_id: must be a server id, a UUID'],
    ['a pinned key that is not 32 bytes', () => ({ ...valid(), pinned_servers: [{ server_id: OTHER, identity_key: Buffer.alloc(33).toString('base64') }] }), 'pinned_servers[0].identity_key: must be a 32-byte Ed25519 public key'],
    ['a pinned key that is not base64', () => ({ ...valid(), pinned_servers: [{ server_id: OTHER, identity_key: 'not base64!' }] }), 'pinned_servers[0].identity_key: must be base64'],
    ['a pinned key of this server', () => ({ ...valid(), pinned_servers: [{ server_id: SELF, identity_key: KEY }] }), 'pinned_servers[0].server_id: is this server itself'],
    ['a server pinned twice', () => ({ ...valid(), pinned_servers: [{ server_id: OTHER, identity_key: KEY }, { server_id: OTHER, identity_key: KEY }] }), 'pinned_servers[1].server_id: appears twice in pinned_servers'],
    ['a pinned key unlike the trust\'s', () => ({ ...valid(), trusts: [{ ...valid().trusts[0], identity_key: KEY }], pinned_servers: [{ server_id: PEER, identity_key: OTHER_KEY }] }), 'pinned_servers[0].identity_key: differs from trusts[0].identity_key'],
    ['a pinned key unlike the upstream\'s', () => ({ ...withUpstream(), rts_identity_key: KEY, pinned_servers: [{ server_id: UPSTREAM, identity_key: OTHER_KEY }] }), 'pinned_servers[0].identity_key: differs from rts_identity_key'],
  ])('refuses %s, naming the key', (_what, make, expected) => {
    expect(problemsOf(make()).join('\n')).toContain(expected);
  });

  it('accepts what those refusals spoil, and never leaks a token of the pair in its errors', () => {
    expect(problemsOf(withUpstream())).toEqual([]);
    expect(problemsOf(withUpstream('CTS', 'ets'))).toEqual([]);
    expect(problemsOf(withUpstream('ETS'))).toEqual([]);
    const admin = parseConfig({ ...valid(), admin: { listen: '127.0.0.1:7001' }, pinned_servers: [{ server_id: OTHER, identity_key: KEY }] });
    expect(admin.admin).toEqual({ listen: '127.0.0.1:7001' });
    expect(admin.pinned_servers).toEqual([{ server_id: OTHER, identity_key: KEY }]);
    expect(parseConfig(valid()).pinned_servers).toEqual([]);
    const spoiled = { ...withUpstream(), rts_token: `${ACCEPT}:short-secret`, rts_host: 'bad host' };
    const problems = problemsOf(spoiled).join('\n');
    expect(problems).toContain('rts_token');
    expect(problems).not.toContain('short-secret');
    expect(problems).not.toContain(ACCEPT);
  });
});

describe('the reference federation (fixtures/federation)', () => {
  const folder = join(import.meta.dirname, '../fixtures/federation');
  const configs: NodeConfig[] = readdirSync(folder)
    .filter((file) => file.endsWith('.yaml'))
    .sort()
    .map((file) => loadConfig(join(folder, file)));
  const byId = new Map(configs.map((config) => [config.server.id, config]));
  const byName = (name: string) => configs.find((config) => config.server.name === name)!;

  it('has its six servers, each with its own address, admin port, key and store', () => {
    expect(configs.map((c) => `${c.server.kind} ${c.server.name}`).sort()).toEqual(
      ['RTS rts-ru', 'ETS ets-acme', 'CTS cts-acme-msk', 'CTS cts-acme-spb', 'CTS cts-globex', 'CTS cts-solo'].sort(),
    );
    expect(byId.size).toBe(configs.length);
    for (const values of [configs.map((c) => c.listen), configs.map((c) => c.identity_key_file), configs.map((c) => c.store.data_dir)])
      expect(new Set(values).size).toBe(configs.length);
    for (const config of configs) {
      expect(config.listen).toMatch(/^127\.0\.0\.2[1-6]:5001$/);
      expect(config.admin?.listen).toBe(config.listen.replace(/:5001$/, ':7001'));
      expect(config.identity_key_file).toBe(join(folder, '../../data/federation', `${config.server.name}.key`));
      expect(config.store.data_dir).toBe(join(folder, '../../data/federation', config.server.name));
    }
  });

  it('has the topology of the design: who is whose upstream, and the one partner trust', () => {
    const upstreamName = (name: string) => upstreamOf(byName(name))?.name;
    expect(configs.map((c) => [c.server.name, upstreamName(c.server.name) ?? null]).sort()).toEqual(
      [['rts-ru', null], ['ets-acme', 'rts-ru'], ['cts-acme-msk', 'ets-acme'], ['cts-acme-spb', 'ets-acme'], ['cts-globex', 'rts-ru'], ['cts-solo', 'rts-ru']].sort(),
    );
    const partners = configs.flatMap((c) => c.trusts.filter((t) => t.role === 'partner').map((t) => `${c.server.name}->${t.name}`));
    expect(partners.sort()).toEqual(['cts-acme-msk->cts-globex', 'cts-globex->cts-acme-msk']);
  });

  it('pairs every trust: the other side trusts us back, with the tokens swapped', () => {
    const counterpart: Record<TrustConfig['role'], TrustConfig['role']> = { upstream: 'downstream', downstream: 'upstream', partner: 'partner', transit: 'transit' };
    for (const config of configs) {
      for (const trust of config.trusts) {
        const link = `${config.server.name} -> ${trust.name}`;
        const remote = byId.get(trust.server_id);
        expect(remote, `${link}: no fixture has server id ${trust.server_id}`).toBeDefined();
        expect([remote!.server.name, remote!.server.kind], link).toEqual([trust.name, trust.kind]);
        const back = remote!.trusts.find((t) => t.server_id === config.server.id);
        expect(back, `${link}: ${remote!.server.name} has no trust back`).toBeDefined();
        expect(back!.token_for_accepting, `${link}: its token_for_connecting is not the remote's token_for_accepting`).toBe(trust.token_for_connecting);
        expect(back!.token_for_connecting, `${link}: its token_for_accepting is not the remote's token_for_connecting`).toBe(trust.token_for_accepting);
        expect(back!.role, link).toBe(counterpart[trust.role]);
        if (trust.endpoint) expect(trust.endpoint, `${link}: endpoint`).toBe(remote!.listen);
        expect(trust.endpoint ?? back!.endpoint, `${link}: neither side dials`).toBeDefined();
        if (trust.role === 'downstream') expect(trust.endpoint, `${link}: a downstream server dials up`).toBeUndefined();
        expect(trust.status, link).toBe('enabled');
      }
    }
  });
});

describe('a trust given while the node runs (parseTrust)', () => {
  const cts = parseConfig(valid());
  const trust = { server_id: OTHER, name: 'cts-c', endpoint: '127.0.0.3:5001', token_for_accepting: ACCEPT, token_for_connecting: CONNECT };

  it('takes what a trust in the config takes, with its defaults and derived role', () => {
    const parsed = parseTrust(cts, trust);
    expect(parsed).toEqual({ ok: true, trust: { ...trust, kind: 'CTS', status: 'enabled', allow_trust_search: false, role: 'partner' } });
    const rts = parseConfig({ ...valid(), server: { id: SELF, name: 'rts', kind: 'RTS' } });
    expect(parseTrust(rts, { ...trust, kind: 'ETS' })).toMatchObject({ ok: true, trust: { role: 'downstream' } });
    expect(parseTrust(cts, { ...trust, kind: 'TTS' })).toMatchObject({ ok: true, trust: { role: 'transit' } });
  });

  it('names each field that is wrong, as the config would', () => {
    const refused = (raw: unknown) => {
      const parsed = parseTrust(cts, raw);
      return parsed.ok ? [] : parsed.problems;
    };
    expect(refused({ ...trust, token_for_accepting: 'short' })).toEqual([expect.stringMatching(/^token_for_accepting: must be at least 16 characters/)]);
    expect(refused({ ...trust, server_id: 'nope' })).toEqual(['server_id: must be the remote server id, a UUID']);
    expect(refused({ ...trust, server_id: SELF })).toEqual(['server_id: is this server itself']);
    expect(refused({ ...trust, kind: 'RTS' })).toEqual([expect.stringMatching(/^kind: a CTS trusts partner CTS or TTS servers/)]);
    expect(refused({ ...trust, endpoint: 'cts-c.example.com:5001' })).toEqual([expect.stringMatching(/^endpoint: is not a loopback address/)]);
    expect(parseTrust({ ...cts, allow_plaintext: true }, { ...trust, endpoint: 'cts-c.example.com:5001' }).ok).toBe(true);
    expect(refused({ ...trust, identity_key: 'AAAA' })).toEqual([expect.stringMatching(/^identity_key: must be a 32-byte Ed25519 public key/)]);
  });
});
