import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from './errors.js';
import { loadConfig, parseConfig } from './config.js';

const SELF = '6f1c2a9e-3b7d-4e52-9a4f-0c8d1e2f3a41';
const PEER = '0b7e4d3c-8a21-4f6e-b5c9-7d2e1f0a9b82';

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
    ['both store kinds', (c: any) => (c.store = { memory: true, data_dir: 'x' }), 'store: set exactly one of data_dir or memory: true'],
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
