import { randomBytes, randomUUID } from 'node:crypto';
import { connect as http2Connect, type ClientHttp2Session } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { NONCE_BYTES } from '../crypto/index.js';
import { Frame } from '../proto/gen/trellis/v1/link.js';
import { PROTOCOL_VERSION } from '../router/index.js';
import { createdDraft, messageDraft, newChat } from './support/devices.js';
import { TestPair, waitFor } from './support/federation.js';
import { RoguePeer } from './support/rogue-peer.js';

const LINK_PATH = '/trellis.v1.TrustService/Link';
/** The flooding address: a loopback address of its own, so the real peer (127.0.0.1) is another source. */
const FLOOD_ADDRESS = '127.0.0.9';
const FLOOD_CALLS = 10_000;
const CALLS_IN_FLIGHT = 64;
const CALL_LIMIT_MS = 5_000;

const grpcMessage = (frame: Frame): Buffer => {
  const body = Buffer.from(Frame.encode(frame).finish());
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(body.length, 1);
  return Buffer.concat([prefix, body]);
};

/** Every way a handshake can be refused: what the flooding client sends, and whether it then ends its side. */
function handshakeKinds(trustedId: string): Array<{ name: string; frames: Buffer[]; end: boolean }> {
  const hello = (serverId: string) => grpcMessage({ kind: { $case: 'hello', value: { serverId, nonce: randomBytes(NONCE_BYTES), protocolVersion: PROTOCOL_VERSION } } });
  return [
    { name: 'empty stream', frames: [], end: true },
    { name: 'wrong first frame', frames: [grpcMessage({ kind: { $case: 'welcome', value: { storedLinkSeq: 1 } } })], end: true },
    { name: 'error frame', frames: [grpcMessage({ kind: { $case: 'error', value: { code: 'nonsense', message: 'z'.repeat(2_000), fatal: true } } })], end: true },
    { name: 'unknown server id', frames: [hello(randomUUID())], end: true },
    { name: 'bad proof', frames: [hello(trustedId), grpcMessage({ kind: { $case: 'proof', value: { mac: randomBytes(32), identityKey: randomBytes(32), identitySignature: randomBytes(64) } } })], end: true },
    { name: 'timeout', frames: [hello(trustedId)], end: false },
  ];
}

/** One raw gRPC call from the flooding address; resolves when the node closes it (bounded); false if it could not be made. */
function rawCall(session: ClientHttp2Session, frames: Buffer[], end: boolean): Promise<boolean> {
  return new Promise((resolve) => {
    if (session.destroyed || session.closed) return resolve(false);
    const call = session.request({ ':method': 'POST', ':path': LINK_PATH, 'content-type': 'application/grpc', te: 'trailers' });
    const timer = setTimeout(() => (call.close(), resolve(true)), CALL_LIMIT_MS);
    call.on('error', () => undefined);
    call.on('data', () => undefined);
    // The node's side ending is the refusal; a client that never ended its own side is closed then.
    call.on('end', () => call.close());
    call.on('close', () => (clearTimeout(timer), resolve(true)));
    for (const frame of frames) call.write(frame);
    if (end) call.end();
  });
}

function floodSession(port: number): ClientHttp2Session {
  const session = http2Connect(`http://127.0.0.1:${port}`, {
    createConnection: () => netConnect({ host: '127.0.0.1', port, localAddress: FLOOD_ADDRESS }),
  });
  session.on('error', () => undefined);
  return session;
}

describe('a flood of refused handshakes from one address', () => {
  let pair: TestPair | undefined;
  afterEach(async () => {
    await pair?.stop();
    pair = undefined;
  });

  it('costs fewer than 100 journal rows, and the node keeps serving its real peer', async () => {
    pair = await TestPair.start({ link: { handshake_timeout_ms: 300 } });
    await waitFor('A and B linked', () => pair!.a.link(pair!.b.id) !== undefined);
    const trusted = await RoguePeer.attach(pair.a);
    const kinds = handshakeKinds(trusted.id);
    const auditBefore = (await pair.a.store.auditLog()).length;

    // HTTP/2 servers drop a session that resets many streams: a dropped one is replaced, as a flooder would.
    const sessions = Array.from({ length: 4 }, () => floodSession(pair!.a.port));
    const sessionFor = (index: number): ClientHttp2Session => {
      const slot = index % sessions.length;
      if (sessions[slot]!.destroyed || sessions[slot]!.closed) sessions[slot] = floodSession(pair!.a.port);
      return sessions[slot]!;
    };
    try {
      // Every kind at least a few times before the address is limited, then the bulk.
      let next = 0;
      let made = 0;
      const worker = async (index: number) => {
        for (let call = next++; call < FLOOD_CALLS; call = next++) {
          const kind = kinds[call % kinds.length]!;
          if (await rawCall(sessionFor(index), kind.frames, kind.end)) made += 1;
        }
      };
      await Promise.all(Array.from({ length: CALLS_IN_FLIGHT }, (_, index) => worker(index)));
      expect(made).toBeGreaterThan(FLOOD_CALLS * 0.95);
    } finally {
      for (const session of sessions) session.destroy();
    }

    const journal = (await pair.a.store.auditLog()).slice(auditBefore);
    expect(journal.length).toBeGreaterThan(0);
    expect(journal.length).toBeLessThan(100);
    expect(journal.some((entry) => entry.kind === 'link-rate-limited')).toBe(true);
    // No peer-chosen text reaches the journal whole.
    expect(journal.every((entry) => !entry.detail.includes('z'.repeat(400)))).toBe(true);

    // The real peer, dialling from another address, is served throughout.
    const chat = newChat([`alice@${pair.a.id}`, `bob@${pair.b.id}`]);
    await pair.a.post(createdDraft(chat, `alice@${pair.a.id}`));
    await pair.b.post(messageDraft(chat, `bob@${pair.b.id}`, 'after the flood'));
    await waitFor('both logs hold both events', async () => {
      const [inA, inB] = [await pair!.a.store.chatSummary(chat.id), await pair!.b.store.chatSummary(chat.id)];
      return inA.events === 2 && inB.events === 2 && inA.digest.equals(inB.digest);
    });
  }, 180_000);
});
