/**
 * An RTS holding many idle trust links: one RTS in a child process, and as many CTS
 * identities (each with its own token pair and its own TCP connection) dialling it from
 * this process, each completing the handshake and then only heartbeating. Measures the
 * RTS's resident memory before and after, per link.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { generateIdentityPem, identityFromPem, type Identity } from '../crypto/index.js';
import { TrustServiceClient } from '../proto/gen/trellis/v1/link.js';
import { dialHandshake, FrameChannel, storelessDialContext, type TrustConfig } from '../router/index.js';
import { PeerProcess } from './chain.js';

/** Handshakes at once: under the RTS's per-address bound (16), as distinct servers behind one address would be. */
const DIALS_IN_FLIGHT = 8;
/** How long the RTS is left with every link up before its memory is read. */
const SETTLE_MS = 3_000;
const HEARTBEAT_EVERY_MS = 1_000;
/**
 * A reading of the RTS's memory counts once two in a row, a second apart, differ by less
 * than this: right after start its RSS can still fall by hundreds of MiB (seen: 773 MiB
 * with a tenth of the links, 611 MiB with all of them), and a single reading then gives a
 * negative cost per link.
 */
const RSS_STEADY_BYTES = 2 * 1024 ** 2;
const RSS_READINGS_MAX = 30;
const RSS_READING_EVERY_MS = 1_000;

export interface IdleLinksResult {
  links: number;
  /** RSS with the first tenth of the links up (the baseline: a fresh node's RSS still falls as its startup pages go), and with all. */
  rssBaselineBytes: number;
  rssLinkedBytes: number;
  /** What each link past the baseline added. */
  bytesPerLink: number;
  /** From the first dial to the last link up. */
  upSeconds: number;
}

interface Dialler {
  id: string;
  identity: Identity;
  tokens: { accept: string; connect: string };
}

function rtsDocument(dir: string, rtsId: string, diallers: readonly Dialler[]): unknown {
  const keyFile = join(dir, 'rts.key');
  writeFileSync(keyFile, generateIdentityPem(), { mode: 0o600 });
  return {
    server: { id: rtsId, name: 'rts', kind: 'RTS' },
    listen: '127.0.0.1:0',
    identity_key_file: keyFile,
    store: { data_dir: join(dir, 'rts') },
    log_level: 'silent',
    // The CTS dial; each presents the token the RTS accepts, and the RTS proves the other.
    trusts: diallers.map((d, index) => ({ server_id: d.id, name: `cts-${index}`, kind: 'CTS', token_for_accepting: d.tokens.connect, token_for_connecting: d.tokens.accept })),
  };
}

/** One CTS's link: its own client (and TCP connection), the handshake, then frames read and dropped. */
async function dial(endpoint: string, rtsId: string, dialler: Dialler): Promise<{ channel: FrameChannel; client: TrustServiceClient }> {
  const client = new TrustServiceClient(endpoint, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
  const channel = new FrameChannel(client.link(), endpoint);
  const trust: TrustConfig = {
    server_id: rtsId, name: 'rts', kind: 'RTS', role: 'upstream', status: 'enabled', allow_trust_search: false,
    token_for_accepting: dialler.tokens.accept, token_for_connecting: dialler.tokens.connect,
  };
  await dialHandshake(storelessDialContext(dialler.id, dialler.identity, trust, 30_000), channel, trust);
  void (async () => {
    while (await channel.next().catch(() => undefined));
  })();
  return { channel, client };
}

/** The RTS's resident memory once it holds steady (see RSS_STEADY_BYTES); the last reading if it never does. */
async function steadyRss(rts: PeerProcess): Promise<number> {
  let last = (await rts.usage()).rssBytes;
  for (let reading = 1; reading < RSS_READINGS_MAX; reading++) {
    await sleep(RSS_READING_EVERY_MS);
    const now = (await rts.usage()).rssBytes;
    if (Math.abs(now - last) < RSS_STEADY_BYTES) return now;
    last = now;
  }
  return last;
}

export async function measureIdleLinks(dir: string, count: number): Promise<IdleLinksResult> {
  mkdirSync(dir, { recursive: true });
  const rtsId = randomUUID();
  const diallers: Dialler[] = Array.from({ length: count }, () => ({
    id: randomUUID(),
    identity: identityFromPem(generateIdentityPem()),
    tokens: { accept: randomBytes(24).toString('base64url'), connect: randomBytes(24).toString('base64url') },
  }));
  const rts = new PeerProcess(rtsDocument(dir, rtsId, diallers), false);
  const links: Array<{ channel: FrameChannel; client: TrustServiceClient }> = [];
  const heartbeat = setInterval(() => {
    for (const { channel } of links) channel.send({ kind: { $case: 'heartbeat', value: { sentAtMs: Date.now() } } }).catch(() => undefined);
  }, HEARTBEAT_EVERY_MS);
  try {
    const endpoint = `127.0.0.1:${await rts.ready}`;
    const startedAt = Date.now();
    let next = 0;
    const dialUpTo = (upTo: number) =>
      Promise.all(
        Array.from({ length: DIALS_IN_FLIGHT }, async () => {
          for (let index = next++; index < upTo; index = next++) links.push(await dial(endpoint, rtsId, diallers[index]!));
        }),
      );
    const baselineLinks = Math.ceil(count / 10);
    await dialUpTo(baselineLinks);
    await sleep(SETTLE_MS);
    const rssBaselineBytes = await steadyRss(rts);
    next = baselineLinks;
    await dialUpTo(count);
    const upSeconds = (Date.now() - startedAt - SETTLE_MS) / 1000;
    await sleep(SETTLE_MS);
    const rssLinkedBytes = await steadyRss(rts);
    return { links: count, rssBaselineBytes, rssLinkedBytes, bytesPerLink: (rssLinkedBytes - rssBaselineBytes) / (count - baselineLinks), upSeconds };
  } finally {
    clearInterval(heartbeat);
    for (const { channel, client } of links) {
      channel.abort();
      client.close();
    }
    await rts.stop();
  }
}
