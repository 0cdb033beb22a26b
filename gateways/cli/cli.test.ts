import { readFileSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { identityFromPem } from '../../crypto/index.js';
import { runCliCaptured } from './index.js';
import { EXIT_CANT_CREATE, EXIT_CONFIG, EXIT_UNAVAILABLE, EXIT_USAGE } from './exit-codes.js';

const run = (...argv: string[]) => runCliCaptured(argv);

describe('trellis CLI', () => {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('answers --help for the program and for every command', async () => {
    const top = await run('--help');
    expect(top.code).toBe(0);
    for (const command of ['start', 'check', 'keygen', 'token', 'demo', 'graph', 'route', 'links', 'trust']) expect(top.out).toContain(command);
    expect(top.out).toContain('Exit codes');
    for (const command of ['start', 'check', 'keygen', 'token', 'demo']) {
      const help = await run(command, '--help');
      expect(help.code, command).toBe(0);
      expect(help.out, command).toContain(`Usage: trellis ${command}`);
    }
  });

  it('refuses an unknown command or a missing option with a usage error', async () => {
    const unknown = await run('launch');
    expect(unknown.code).toBe(EXIT_USAGE);
    expect(unknown.err).toContain("unknown command 'launch'");
    const missing = await run('start');
    expect(missing.code).toBe(EXIT_USAGE);
    expect(missing.err).toContain('--config');
    const badCount = await run('demo', '--messages', 'lots');
    expect(badCount.code).toBe(EXIT_USAGE);
    expect(badCount.err).toContain('must be a whole number');
  });

  it('writes an identity key once, prints its public key, and will not overwrite it unasked', async () => {
    const keyFile = join(dir, 'keys', 'identity.key');
    const made = await run('keygen', '--out', keyFile);
    expect(made.code).toBe(0);
    const publicKey = Buffer.from(identityFromPem(readFileSync(keyFile, 'utf8')).publicKey).toString('base64');
    expect(made.out).toContain(publicKey);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    const again = await run('keygen', '--out', keyFile);
    expect(again.code).toBe(EXIT_CANT_CREATE);
    expect(again.err).toContain('--force');
  });

  it('prints fresh tokens long enough for a trust', async () => {
    const [first, second] = [await run('token'), await run('token')];
    expect(first.out).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(first.out).not.toBe(second.out);
  });

  it('checks a configuration: the committed fixtures pass, a broken one names its key', async () => {
    for (const fixture of ['cts-a', 'cts-b']) {
      const checked = await run('check', '--config', `fixtures/pair/${fixture}.yaml`);
      expect(checked.code, checked.err).toBe(0);
      expect(checked.out).toContain('valid');
    }
    const broken = join(dir, 'broken.yaml');
    writeFileSync(broken, 'server: { id: nope, name: x, kind: CTS }\nlisten: 127.0.0.1:5001\nidentity_key_file: k\nstore: { memory: true }\n');
    const refused = await run('check', '--config', broken);
    expect(refused.code).toBe(EXIT_CONFIG);
    expect(refused.err).toContain('server.id: must be this server id, a UUID');
    expect(refused.err).not.toContain('    at ');
  });

  it('tells how to make a missing identity key instead of failing with a stack', async () => {
    const config = join(dir, 'nokey.yaml');
    writeFileSync(config, `server: { id: 6f1c2a9e-3b7d-4e52-9a4f-0c8d1e2f3a41, name: a, kind: CTS }\nlisten: 127.0.0.1:0\nidentity_key_file: absent.key\nstore: { memory: true }\n`);
    const started = await run('start', '--config', config);
    expect(started.code).not.toBe(0);
    expect(started.err).toContain('trellis keygen --out');
    expect(started.err).not.toContain('    at ');
  });

  it('names an unreachable store in one line and exits 69, without a stack or the password', async () => {
    const keyFile = join(dir, 'store-check.key');
    expect((await run('keygen', '--out', keyFile)).code).toBe(0);
    const config = join(dir, 'unreachable-store.yaml');
    writeFileSync(config, `server: { id: 6f1c2a9e-3b7d-4e52-9a4f-0c8d1e2f3a41, name: a, kind: CTS }\nlisten: 127.0.0.1:0\nidentity_key_file: ${keyFile}\nstore: { url: 'postgres://trellis:s3cret@127.0.0.1:1/trellis' }\n`);
    const started = await run('start', '--config', config);
    expect(started.code).toBe(EXIT_UNAVAILABLE);
    expect(started.err).toContain('PostgreSQL at postgres://trellis:***@127.0.0.1:1/trellis: connection refused');
    expect(started.err.trim().split('\n')).toHaveLength(1);
    expect(started.err).not.toContain('s3cret');
  });

  it('refuses replicas on the embedded store, and names an unreachable Redis in one line', async () => {
    const keyFile = join(dir, 'replicas.key');
    expect((await run('keygen', '--out', keyFile)).code).toBe(0);
    const write = (name: string, store: string, redis: string) => {
      const file = join(dir, name);
      writeFileSync(file, `server: { id: 6f1c2a9e-3b7d-4e52-9a4f-0c8d1e2f3a41, name: a, kind: CTS }\nlisten: 127.0.0.1:0\nidentity_key_file: ${keyFile}\nstore: ${store}\nreplicas: { redis_url: '${redis}' }\n`);
      return file;
    };
    const embedded = await run('start', '--config', write('replicas-embedded.yaml', '{ memory: true }', 'redis://127.0.0.1:6379'));
    expect(embedded.code).toBe(EXIT_CONFIG);
    expect(embedded.err).toContain('replicas of one server share one PostgreSQL store');
    const noRedis = await run('start', '--config', write('replicas-no-redis.yaml', "{ url: 'postgres://postgres@127.0.0.1:5432/test' }", 'redis://:pw@127.0.0.1:1'));
    expect(noRedis.code).toBe(EXIT_UNAVAILABLE);
    expect(noRedis.err.trim()).toBe('trellis: Redis at redis://:***@127.0.0.1:1: connection refused; check that Redis runs there and the host and port are right');
  });
});
