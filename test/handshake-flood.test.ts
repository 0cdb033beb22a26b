import { randomBytes, randomUUID } from 'node:crypto';
import { connect as http2Connect, type ClientHttp2Session } from 'node:http2';
import { connect as netConnect, createServer, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { NONCE_BYTES } from '../crypto/index.js';
import { Frame } from '../proto/gen/trellis/v1/link.js';
import { HANDSHAKES_IN_FLIGHT_MAX, HANDSHAKES_PER_ADDRESS_MAX, SILENT_STREAMS_MAX, SILENT_STREAMS_PER_ADDRESS_MAX } from '../router/handshake-slots.js';
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
const hello = (serverId: string) => grpcMessage({ kind: { $case: 'hello', value: { serverId, nonce: randomBytes(NONCE_BYTES), protocolVersion: PROTOCOL_VERSION } } });

function handshakeKinds(trustedId: string): Array<{ name: string; frames: Buffer[]; end: boolean }> {
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

function floodSession(port: number, localAddress = FLOOD_ADDRESS): ClientHttp2Session {
  const session = http2Connect(`http://127.0.0.1:${port}`, {
    createConnection: () => netConnect({ host: '127.0.0.1', port, localAddress }),
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

/** A raw Link call that sends `frames` and never ends its side: the frames the node sends back, and whether it ended the call. */
class HeldCall {
  readonly received: Frame[] = [];
  ended = false;
  private unread = Buffer.alloc(0);

  constructor(session: ClientHttp2Session, frames: Buffer[]) {
    const call = session.request({ ':method': 'POST', ':path': LINK_PATH, 'content-type': 'application/grpc', te: 'trailers' });
    call.on('error', () => undefined);
    call.on('data', (chunk: Buffer) => this.read(chunk));
    call.on('end', () => (this.ended = true));
    call.on('close', () => (this.ended = true));
    for (const frame of frames) call.write(frame);
  }

  /** The code of the node's error frame, if it sent one. */
  get refusal(): string | undefined {
    const kind = this.received.find((frame) => frame.kind?.$case === 'error')?.kind;
    return kind?.$case === 'error' ? kind.value.code : undefined;
  }

  get saidHello(): boolean {
    return this.received.some((frame) => frame.kind?.$case === 'hello');
  }

  /** gRPC length-prefixed messages, however the chunks cut them. */
  private read(chunk: Buffer): void {
    this.unread = Buffer.concat([this.unread, chunk]);
    while (this.unread.length >= 5 && this.unread.length >= 5 + this.unread.readUInt32BE(1)) {
      const end = 5 + this.unread.readUInt32BE(1);
      this.received.push(Frame.decode(this.unread.subarray(5, end)));
      this.unread = this.unread.subarray(end);
    }
  }
}

/** Loopback addresses of strangers: enough silent ones to overfill the silent slots, enough Hello-then-nothing ones to fill the general slots. */
const SILENT_ADDRESSES = Array.from({ length: Math.ceil(SILENT_STREAMS_MAX / SILENT_STREAMS_PER_ADDRESS_MAX) + 2 }, (_, i) => `127.0.0.${10 + i}`);
const STALLING_ADDRESSES = Array.from({ length: HANDSHAKES_IN_FLIGHT_MAX / HANDSHAKES_PER_ADDRESS_MAX }, (_, i) => `127.0.0.${40 + i}`);
const LATE_STRANGER_ADDRESS = '127.0.0.60';

describe('strangers holding the handshake slots', () => {
  let pair: TestPair | undefined;
  afterEach(async () => {
    await pair?.stop();
    pair = undefined;
  });

  it('cannot keep a paired server out; silent streams are dropped, and a stranger turned away hears why and is journalled', async () => {
    // A handshake step far longer than the test: a silent stream that is dropped is dropped by the silent bounds.
    pair = await TestPair.start({ link: { handshake_timeout_ms: 60_000 } });
    await waitFor('A and B linked', () => pair!.a.link(pair!.b.id) !== undefined);
    const trusted = await RoguePeer.attach(pair.a);
    // Its trust names the address it dials from; A's own dials there are hung up on at once.
    const hangUp = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => hangUp.listen(0, '127.0.0.1', resolve));
    await pair.a.setTrust({ ...trusted.trustFor(pair.a), endpoint: `127.0.0.1:${(hangUp.address() as AddressInfo).port}` });
    const sessions = new Map<string, ClientHttp2Session>();
    const from = (address: string) => {
      const session = sessions.get(address);
      if (session && !session.destroyed && !session.closed) return session;
      sessions.set(address, floodSession(pair!.a.port, address));
      return sessions.get(address)!;
    };
    const calls = (addresses: string[], perAddress: number, frames: () => Buffer[]) => addresses.flatMap((address) => Array.from({ length: perAddress }, () => new HeldCall(from(address), frames())));
    try {
      // Strangers say Hello as the trusted peer, then nothing: every general slot is held.
      const stalling = calls(STALLING_ADDRESSES, HANDSHAKES_PER_ADDRESS_MAX, () => [hello(trusted.id)]);
      await waitFor('A answered every stalling stranger with its Hello', () => stalling.every((call) => call.saidHello));
      // More silent streams than there are silent slots.
      const silent = calls(SILENT_ADDRESSES, SILENT_STREAMS_PER_ADDRESS_MAX, () => []);
      await waitFor(`at most ${SILENT_STREAMS_MAX} silent streams left open`, () => silent.filter((call) => !call.ended).length <= SILENT_STREAMS_MAX);

      const late = new HeldCall(from(LATE_STRANGER_ADDRESS), [hello(trusted.id)]);
      await waitFor('the late stranger answered', () => late.ended || late.received.length > 0);
      expect(late.refusal).toBe('handshake-busy');

      // The trusted peer, from the address its trust names, gets in and is served.
      const link = await trusted.connect();
      expect(await link.exchange(trusted.events(trusted.newChat(), 1))).toEqual([]);
      link.close();

      // Each silent stream was dropped for a newer one or at the first-frame bound, none held for a handshake step.
      await waitFor('every silent stream dropped', () => silent.every((call) => call.ended));
      const busy = silent.filter((call) => call.refusal === 'handshake-busy').length;
      expect(busy).toBeGreaterThanOrEqual(silent.length - SILENT_STREAMS_MAX);
      expect(busy + silent.filter((call) => call.refusal === 'handshake-timeout').length).toBe(silent.length);
      expect(stalling.some((call) => call.ended)).toBe(false);

      const refusals = (await pair.a.store.auditLog()).filter((entry) => entry.kind === 'link-refused' && entry.code === 'handshake-busy');
      expect(refusals.some((entry) => entry.peer === trusted.id)).toBe(true);
      expect(refusals.some((entry) => entry.peer === undefined)).toBe(true);
    } finally {
      for (const session of sessions.values()) session.destroy();
      hangUp.close();
    }
  }, 120_000);
});
