import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { ConfigError } from './errors.js';
import type { StoreLocation } from '../store/index.js';

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
const ED25519_PUBLIC_KEY_BYTES = 32;
const identityKey = z
  .base64('must be base64, as `trellis keygen` prints it')
  .refine((value) => Buffer.from(value, 'base64').length === ED25519_PUBLIC_KEY_BYTES, 'must be a 32-byte Ed25519 public key, as `trellis keygen` prints it');

/** What a trust is to this server: its one upstream (RTS or ETS), a partner CTS, a server below it, or a transit TTS. */
export const TRUST_ROLES = ['upstream', 'partner', 'downstream', 'transit'] as const;
export type TrustRole = (typeof TRUST_ROLES)[number];

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
    identity_key: identityKey.optional().describe("the remote's Ed25519 public key, to pin before the first link"),
  })
  .strict();

/** A trust as the node holds it: what the YAML says, and its role, derived from the two servers' kinds. */
const trustConfigSchema = trustSchema.extend({ role: z.enum(TRUST_ROLES) });

/**
 * The upstream is written as domain.md shows it: `rts_id`, `rts_host`, `rts_token` (or
 * `ets_*` for a CTS under an ETS), the token pair in one string,
 * '<token_for_accepting>:<token_for_connecting>'. It becomes an ordinary trust.
 */
const UPSTREAM_KINDS = { rts: 'RTS', ets: 'ETS' } as const;
type UpstreamPrefix = keyof typeof UPSTREAM_KINDS;
const UPSTREAM_KEYS = ['id', 'host', 'token', 'name', 'identity_key'] as const;
const UPSTREAM_KEYS_REQUIRED = ['id', 'host', 'token'] as const;

const upstreamHost = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/, `must be host:port or a bare host (then port ${TRUST_PORT}), e.g. rts.example.com`)
  .transform((value) => (value.endsWith(']') || !value.includes(':') ? `${value}:${TRUST_PORT}` : value))
  .pipe(hostPort);

const TOKEN_PAIR_SHAPE = "must be '<token_for_accepting>:<token_for_connecting>', two tokens joined by one ':'";
const tokenPair = z
  .string()
  .superRefine((value, ctx) => {
    const halves = value.split(':');
    if (halves.length !== 2) return void ctx.addIssue({ code: 'custom', message: TOKEN_PAIR_SHAPE });
    halves.forEach((half, index) => {
      if (half.length < TOKEN_CHARS_MIN)
        ctx.addIssue({
          code: 'custom',
          message: `the token for ${index === 0 ? "accepting (before ':')" : "connecting (after ':')"} must be at least ${TOKEN_CHARS_MIN} characters (make one with \`trellis token\`)`,
        });
    });
  })
  .transform((value) => {
    const [accepting, connecting] = value.split(':') as [string, string];
    return { token_for_accepting: accepting, token_for_connecting: connecting };
  });

const upstreamName = z.string().min(1).max(64);
const upstreamId = z.uuid('must be the upstream server id, a UUID');

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

const adminSchema = z
  .object({ listen: hostPort.describe('where the admin service listens; loopback only, it has no authentication') })
  .strict();

const pinnedServerSchema = z
  .object({ server_id: z.uuid('must be a server id, a UUID'), identity_key: identityKey })
  .strict()
  .describe("a server's identity key, pinned ahead of first contact");

const kafkaSchema = z
  .object({
    brokers: z.array(hostPort).min(1).max(100).describe('bootstrap brokers; KAFKA_BROKERS in the environment takes their place'),
    topic_prefix: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,200}$/, 'must be 1 to 200 of the characters A-Z a-z 0-9 . _ - (a Kafka topic name)')
      .optional()
      .describe('the prefix of <prefix>.chat-events and <prefix>.routing; default trellis.<server name>'),
    client_id: z.string().min(1).max(200).optional(),
  })
  .strict()
  .describe('publish the projections to Kafka (gateways/kafka)');

/** How long a replica's lease on a link lasts unless renewed: the longest a link waits for another replica after its owner dies. */
export const LEASE_MS_DEFAULT = 5_000;

const replicasSchema = z
  .object({
    redis_url: z.string().regex(/^rediss?:\/\/\S+$/, 'must be a Redis URL, redis://host:6379').optional().describe('REDIS_URL in the environment takes its place'),
    lease_ms: z.number().int().min(1_000).max(600_000).default(LEASE_MS_DEFAULT),
    replica_id: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'must be 1 to 64 of A-Z a-z 0-9 . _ -').optional().describe('default: host name and process id'),
  })
  .strict()
  .describe('several processes of this server on one PostgreSQL, sharing its links through leases in Redis');

const NOT_LOOPBACK = 'is not a loopback address: configure tls, or set allow_plaintext: true';

const rawConfigSchema = z
  .object({
    server: z.object({ id: z.uuid('must be this server id, a UUID'), name: z.string().min(1).max(64), kind: serverKind }).strict(),
    listen: hostPort,
    identity_key_file: z.string().min(1),
    store: z
      .object({
        data_dir: z.string().min(1).optional(),
        memory: z.literal(true).optional(),
        url: z
          .string()
          .regex(/^postgres(ql)?:\/\/\S+$/, 'must be a PostgreSQL URL, postgres://user:password@host:5432/database')
          .optional()
          .describe('PostgreSQL; DATABASE_URL in the environment takes its place'),
        durability: z.enum(['fsync', 'os']).optional().describe('embedded store: fsync each commit (the default), or leave writing to the OS'),
      })
      .strict()
      .refine((s) => [s.data_dir, s.memory, s.url].filter(Boolean).length === 1, 'set exactly one of data_dir, memory: true or url'),
    tls: z.object({ cert_file: z.string(), key_file: z.string(), ca_file: z.string(), server_name: z.string().optional() }).strict().optional(),
    allow_plaintext: z.boolean().default(false),
    log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    link: linkSchema.default(linkSchema.parse({})),
    rts_id: upstreamId.optional(),
    rts_host: upstreamHost.optional(),
    rts_token: tokenPair.optional(),
    rts_name: upstreamName.optional(),
    rts_identity_key: identityKey.optional(),
    ets_id: upstreamId.optional(),
    ets_host: upstreamHost.optional(),
    ets_token: tokenPair.optional(),
    ets_name: upstreamName.optional(),
    ets_identity_key: identityKey.optional(),
    trusts: z.array(trustSchema).max(10_000).default([]),
    admin: adminSchema.optional(),
    pinned_servers: z.array(pinnedServerSchema).max(10_000).default([]),
    replicas: replicasSchema.optional(),
    kafka: kafkaSchema.optional(),
  })
  .strict();

type RawConfig = z.output<typeof rawConfigSchema>;
type Issue = (path: PropertyKey[], message: string) => void;

/** The upstream keys present for `prefix`, in UPSTREAM_KEYS order (so `id` first when given). */
function upstreamKeysOf(config: RawConfig, prefix: UpstreamPrefix): string[] {
  return UPSTREAM_KEYS.map((key) => `${prefix}_${key}`).filter((key) => config[key as keyof RawConfig] !== undefined);
}

/** The one upstream group a config sets (after validation: at most one, complete). */
function upstreamPrefixOf(config: RawConfig): UpstreamPrefix | undefined {
  return (Object.keys(UPSTREAM_KINDS) as UpstreamPrefix[]).find((prefix) => upstreamKeysOf(config, prefix).length > 0);
}

function checkUpstream(config: RawConfig, issue: Issue): void {
  const kind = config.server.kind;
  const [rts, ets] = [upstreamKeysOf(config, 'rts'), upstreamKeysOf(config, 'ets')];
  if (kind === 'RTS') {
    for (const keys of [rts, ets]) if (keys[0]) issue([keys[0]], 'an RTS has no upstream: its ETS and CTS go in trusts (kind ETS or CTS)');
    return;
  }
  if (kind === 'ETS' && ets[0]) return issue([ets[0]], "an ETS's upstream is an RTS (rts_*)");
  if (rts[0] && ets[0]) return issue([rts[0]], 'a CTS has one upstream: set rts_* or ets_*, not both');
  const prefix = upstreamPrefixOf(config);
  if (!prefix) return;
  const given = (rts[0] ?? ets[0])!;
  for (const key of UPSTREAM_KEYS_REQUIRED)
    if (config[`${prefix}_${key}`] === undefined)
      issue([`${prefix}_${key}`], `is required with ${given}: the upstream is ${prefix}_id, ${prefix}_host and ${prefix}_token together`);
  const id = config[`${prefix}_id`];
  if (id === config.server.id) issue([`${prefix}_id`], 'is this server itself');
  const twin = config.trusts.findIndex((trust) => trust.server_id === id);
  if (id !== undefined && twin >= 0) issue([`${prefix}_id`], `is also trusts[${twin}].server_id: the upstream goes only in ${prefix}_*`);
  const host = config[`${prefix}_host`];
  if (host && !config.tls && !config.allow_plaintext && !isLoopback(host)) issue([`${prefix}_host`], NOT_LOOPBACK);
}

/** Why a server of `serverKind` may not hold a trust of `trustKind` (its upstream aside), if it may not. */
function trustKindProblem(serverKind: RawConfig['server']['kind'], trustKind: TrustConfig['kind']): string | undefined {
  switch (serverKind) {
    case 'CTS':
      if (trustKind === 'ETS' || trustKind === 'RTS') return `a CTS trusts partner CTS or TTS servers; its ${trustKind} is its upstream: the upstream goes in rts_* / ets_*`;
      return undefined;
    case 'ETS':
      if (trustKind === 'RTS') return "an ETS trusts its CTS or TTS servers; its RTS is its upstream: the upstream goes in rts_*";
      if (trustKind === 'ETS') return 'an ETS trusts its CTS or TTS servers, not another ETS';
      return undefined;
    case 'RTS':
      return trustKind === 'RTS' ? 'an RTS trusts ETS, CTS or TTS servers, not another RTS' : undefined;
  }
}

/** Which trusts a server of each kind may hold (its upstream aside), and why not the others. */
function checkTrustKinds(config: RawConfig, issue: Issue): void {
  config.trusts.forEach((trust, index) => {
    const problem = trustKindProblem(config.server.kind, trust.kind);
    if (problem) issue(['trusts', index, 'kind'], problem);
  });
}

function checkPinnedServers(config: RawConfig, issue: Issue): void {
  const seen = new Set<string>();
  config.pinned_servers.forEach((pinned, index) => {
    if (pinned.server_id === config.server.id) issue(['pinned_servers', index, 'server_id'], 'is this server itself (its own key is identity_key_file)');
    if (seen.has(pinned.server_id)) issue(['pinned_servers', index, 'server_id'], 'appears twice in pinned_servers');
    seen.add(pinned.server_id);
    const trust = config.trusts.findIndex((t) => t.server_id === pinned.server_id && t.identity_key !== undefined && t.identity_key !== pinned.identity_key);
    if (trust >= 0) issue(['pinned_servers', index, 'identity_key'], `differs from trusts[${trust}].identity_key for the same server`);
    const prefix = upstreamPrefixOf(config);
    const upstreamKey = prefix && config[`${prefix}_id`] === pinned.server_id ? config[`${prefix}_identity_key`] : undefined;
    if (upstreamKey !== undefined && upstreamKey !== pinned.identity_key)
      issue(['pinned_servers', index, 'identity_key'], `differs from ${prefix}_identity_key for the same server`);
  });
}

function roleOf(serverKind: RawConfig['server']['kind'], trustKind: TrustConfig['kind']): TrustRole {
  if (trustKind === 'TTS') return 'transit';
  return serverKind === 'CTS' ? 'partner' : 'downstream';
}

/** The upstream group, as the ordinary trust the node dials (validated: complete when present). */
function upstreamTrust(config: RawConfig): TrustConfig | undefined {
  const prefix = upstreamPrefixOf(config);
  if (!prefix) return undefined;
  const identity_key = config[`${prefix}_identity_key`];
  return {
    server_id: config[`${prefix}_id`]!,
    name: config[`${prefix}_name`] ?? prefix,
    kind: UPSTREAM_KINDS[prefix],
    endpoint: config[`${prefix}_host`]!,
    ...config[`${prefix}_token`]!,
    status: 'enabled',
    allow_trust_search: false,
    ...(identity_key !== undefined ? { identity_key } : {}),
    role: 'upstream',
  };
}

/** The node's view: one list of trusts, the upstream among them; the rts_* / ets_* keys are gone. */
function toNodeConfig(config: RawConfig) {
  const { rts_id, rts_host, rts_token, rts_name, rts_identity_key, ets_id, ets_host, ets_token, ets_name, ets_identity_key, trusts, ...rest } = config;
  const upstream = upstreamTrust(config);
  const all: TrustConfig[] = trusts.map((trust) => ({ ...trust, role: roleOf(config.server.kind, trust.kind) }));
  return { ...rest, trusts: upstream ? [...all, upstream] : all };
}

const configSchema = rawConfigSchema
  .superRefine((config, ctx) => {
    const issue: Issue = (path, message) => ctx.addIssue({ code: 'custom', path, message });
    const seen = new Set<string>();
    config.trusts.forEach((trust, index) => {
      if (trust.server_id === config.server.id) issue(['trusts', index, 'server_id'], 'is this server itself');
      if (seen.has(trust.server_id)) issue(['trusts', index, 'server_id'], 'appears in two trusts');
      seen.add(trust.server_id);
    });
    checkUpstream(config, issue);
    checkTrustKinds(config, issue);
    checkPinnedServers(config, issue);
    if (config.admin && !isLoopback(config.admin.listen))
      issue(['admin', 'listen'], 'must be a loopback address (the admin service has no authentication)');
    if (config.admin && config.admin.listen === config.listen && !config.listen.endsWith(':0'))
      issue(['admin', 'listen'], 'must differ from listen (the trust port)');
    if (config.link.reconnect_max_ms < config.link.reconnect_min_ms)
      issue(['link', 'reconnect_max_ms'], 'must be at least reconnect_min_ms');
    if (!config.tls && !config.allow_plaintext) {
      if (!isLoopback(config.listen)) issue(['listen'], NOT_LOOPBACK);
      config.trusts.forEach((trust, index) => {
        if (trust.endpoint && !isLoopback(trust.endpoint)) issue(['trusts', index, 'endpoint'], NOT_LOOPBACK);
      });
    }
  })
  .transform(toNodeConfig);

export type NodeConfig = z.output<typeof configSchema>;
export type TrustConfig = z.output<typeof trustConfigSchema>;
export type LinkTuning = z.infer<typeof linkSchema>;

/** The trust to this server's upstream RTS or ETS (set by rts_* / ets_*), if it has one. */
export function upstreamOf(config: Pick<NodeConfig, 'trusts'>): TrustConfig | undefined {
  return config.trusts.find((trust) => trust.role === 'upstream');
}

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

export type ParsedTrust = { ok: true; trust: TrustConfig } | { ok: false; problems: string[] };

/**
 * One trust given while the node runs (the admin service), held to the rules a trust in
 * the config file meets: the same schema, not this server itself, a kind this server may
 * trust, a loopback endpoint unless tls or allow_plaintext is set. The role is derived as
 * for the config's trusts. Problems read 'field: problem'.
 */
export function parseTrust(config: Pick<NodeConfig, 'server' | 'tls' | 'allow_plaintext'>, raw: unknown): ParsedTrust {
  const result = trustSchema.safeParse(raw);
  if (!result.success) return { ok: false, problems: result.error.issues.map((i) => `${describePath(i.path)}: ${i.message}`) };
  const trust = result.data;
  const problems: string[] = [];
  if (trust.server_id === config.server.id) problems.push('server_id: is this server itself');
  const kindProblem = trustKindProblem(config.server.kind, trust.kind);
  if (kindProblem) problems.push(`kind: ${kindProblem}`);
  if (trust.endpoint && !config.tls && !config.allow_plaintext && !isLoopback(trust.endpoint)) problems.push(`endpoint: ${NOT_LOOPBACK}`);
  return problems.length > 0 ? { ok: false, problems } : { ok: true, trust: { ...trust, role: roleOf(config.server.kind, trust.kind) } };
}

function resolvePaths(config: NodeConfig, baseDir: string): NodeConfig {
  const at = (path: string) => (isAbsolute(path) ? path : resolve(baseDir, path));
  return {
    ...config,
    identity_key_file: at(config.identity_key_file),
    store: config.store.data_dir ? { ...config.store, data_dir: at(config.store.data_dir) } : config.store,
    ...(config.tls
      ? { tls: { ...config.tls, cert_file: at(config.tls.cert_file), key_file: at(config.tls.key_file), ca_file: at(config.tls.ca_file) } }
      : {}),
  };
}

/**
 * Where the node keeps its log: DATABASE_URL in the environment, else the config's
 * store.url (both PostgreSQL), else the embedded store in data_dir or in memory.
 */
export function storeLocation(store: NodeConfig['store'], env: NodeJS.ProcessEnv): StoreLocation {
  const url = env.DATABASE_URL || store.url;
  if (url) return { url };
  return { ...(store.data_dir ? { dataDir: store.data_dir } : {}), durability: store.durability ?? 'fsync' };
}

/** Replicas share links through Redis: REDIS_URL in the environment, else replicas.redis_url; undefined for a lone process. */
export function replicationOf(config: NodeConfig, env: NodeJS.ProcessEnv): { redisUrl: string; leaseMs: number; replicaId: string | undefined } | undefined {
  const redisUrl = env.REDIS_URL || config.replicas?.redis_url;
  if (!redisUrl) return undefined;
  return { redisUrl, leaseMs: config.replicas?.lease_ms ?? LEASE_MS_DEFAULT, replicaId: config.replicas?.replica_id };
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
