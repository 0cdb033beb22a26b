import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { ConfigError } from './errors.js';

/**
 * One YAML file per node, parsed once at the edge into typed values. Keys follow the
 * trust fields of domain.md; unknown keys are errors, so a typo never silently
 * disables a setting. Relative paths are taken from the config file's folder.
 */
export const TOKEN_CHARS_MIN = 16;
export const TRUST_PORT = 5001;

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'must be host:port, e.g. cts2.example.com:5001')
  .refine((value) => Number(value.slice(value.lastIndexOf(':') + 1)) <= 65535, 'port must be at most 65535');

const serverKind = z.enum(['CTS', 'ETS', 'RTS']);
const token = z.string().min(TOKEN_CHARS_MIN, `must be at least ${TOKEN_CHARS_MIN} characters (make one with \`trellis token\`)`);

const trustSchema = z
  .object({
    server_id: z.uuid('must be the remote server id, a UUID'),
    name: z.string().min(1).max(64),
    kind: z.enum(['CTS', 'ETS', 'RTS', 'TTS']).default('CTS'),
    endpoint: hostPort.optional().describe('absent: we only accept, the remote dials us'),
    token_for_accepting: token,
    token_for_connecting: token,
    status: z.enum(['enabled', 'disabled']).default('enabled'),
    allow_trust_search: z.boolean().default(false),
    identity_key: z.base64().optional().describe("the remote's Ed25519 public key, to pin before the first link"),
  })
  .strict();

const linkSchema = z
  .object({
    heartbeat_interval_ms: z.int().min(100).max(60_000).default(5_000),
    dead_after_heartbeats: z.int().min(2).max(10).default(3),
    reconnect_min_ms: z.int().min(10).max(60_000).default(250),
    reconnect_max_ms: z.int().min(100).max(600_000).default(30_000),
    handshake_timeout_ms: z.int().min(100).max(60_000).default(10_000),
    window_frames: z.int().min(1).max(64).default(8),
    batch_events: z.int().min(1).max(1024).default(512),
    /** An event stamped further ahead of our clock than this is refused (clock-skew). */
    max_clock_skew_ms: z.int().min(1_000).max(86_400_000).default(300_000),
    /** Events held beyond a gap (or before their chat's creation), per (chat, origin) chain and per peer. */
    held_events_per_chain: z.int().min(1).max(1_000_000).default(10_000),
    held_bytes_per_chain: z.int().min(1_024).max(1024 ** 3).default(64 * 1024 ** 2),
    held_events_per_peer: z.int().min(1).max(10_000_000).default(100_000),
    held_bytes_per_peer: z.int().min(1_024).max(16 * 1024 ** 3).default(256 * 1024 ** 2),
  })
  .strict();

const configSchema = z
  .object({
    server: z.object({ id: z.uuid('must be this server id, a UUID'), name: z.string().min(1).max(64), kind: serverKind }).strict(),
    listen: hostPort,
    identity_key_file: z.string().min(1),
    store: z
      .object({ data_dir: z.string().min(1).optional(), memory: z.literal(true).optional() })
      .strict()
      .refine((s) => Boolean(s.data_dir) !== Boolean(s.memory), 'set exactly one of data_dir or memory: true'),
    tls: z.object({ cert_file: z.string(), key_file: z.string(), ca_file: z.string(), server_name: z.string().optional() }).strict().optional(),
    allow_plaintext: z.boolean().default(false),
    log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    link: linkSchema.default(linkSchema.parse({})),
    trusts: z.array(trustSchema).max(10_000).default([]),
  })
  .strict()
  .superRefine((config, ctx) => {
    const seen = new Set<string>();
    config.trusts.forEach((trust, index) => {
      if (trust.server_id === config.server.id) ctx.addIssue({ code: 'custom', path: ['trusts', index, 'server_id'], message: 'is this server itself' });
      if (seen.has(trust.server_id)) ctx.addIssue({ code: 'custom', path: ['trusts', index, 'server_id'], message: 'appears in two trusts' });
      seen.add(trust.server_id);
    });
    if (config.link.reconnect_max_ms < config.link.reconnect_min_ms)
      ctx.addIssue({ code: 'custom', path: ['link', 'reconnect_max_ms'], message: 'must be at least reconnect_min_ms' });
    if (!config.tls && !config.allow_plaintext) {
      if (!isLoopback(config.listen))
        ctx.addIssue({ code: 'custom', path: ['listen'], message: 'is not a loopback address: configure tls, or set allow_plaintext: true' });
      config.trusts.forEach((trust, index) => {
        if (trust.endpoint && !isLoopback(trust.endpoint))
          ctx.addIssue({ code: 'custom', path: ['trusts', index, 'endpoint'], message: 'is not a loopback address: configure tls, or set allow_plaintext: true' });
      });
    }
  });

export type NodeConfig = z.infer<typeof configSchema>;
export type TrustConfig = z.infer<typeof trustSchema>;
export type LinkTuning = z.infer<typeof linkSchema>;

export function hostOf(address: string): string {
  return address.slice(0, address.lastIndexOf(':')).replace(/^\[|\]$/g, '');
}

export function isLoopback(address: string): boolean {
  const host = hostOf(address);
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function describePath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((out, key) => (typeof key === 'number' ? `${out}[${key}]` : out ? `${out}.${String(key)}` : String(key)), '') || '(top level)';
}

/** Validates an already-parsed document. Paths stay as written; see loadConfig for files. */
export function parseConfig(document: unknown, source = 'config'): NodeConfig {
  const result = configSchema.safeParse(document);
  if (!result.success) throw new ConfigError(source, result.error.issues.map((i) => `${describePath(i.path)}: ${i.message}`));
  return result.data;
}

function resolvePaths(config: NodeConfig, baseDir: string): NodeConfig {
  const at = (path: string) => (isAbsolute(path) ? path : resolve(baseDir, path));
  return {
    ...config,
    identity_key_file: at(config.identity_key_file),
    store: config.store.data_dir ? { data_dir: at(config.store.data_dir) } : config.store,
    ...(config.tls
      ? { tls: { ...config.tls, cert_file: at(config.tls.cert_file), key_file: at(config.tls.key_file), ca_file: at(config.tls.ca_file) } }
      : {}),
  };
}

export function loadConfig(file: string): NodeConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(file, [`cannot read the file: ${(error as NodeJS.ErrnoException).code ?? String(error)}`]);
  }
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    if (error instanceof YAMLParseError) throw new ConfigError(file, [`not valid YAML: ${error.message.split('\n')[0]}`]);
    throw error;
  }
  return resolvePaths(parseConfig(document, file), dirname(resolve(file)));
}
