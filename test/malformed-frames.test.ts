import { randomBytes } from 'node:crypto';
import { connect } from 'node:http2';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GRPC_MESSAGE_BYTES_MAX } from '../router/index.js';
import { createdDraft, messageDraft, newChat } from './support/devices.js';
import { TestPair, waitFor } from './support/federation.js';
import { RoguePeer } from './support/rogue-peer.js';

const LINK_PATH = '/trellis.v1.TrustService/Link';
const RAW_CALL_LIMIT_MS = 10_000;

/**
 * Speaks raw HTTP/2 to the trust port: one gRPC message (length-prefixed) of any bytes,
 * then reads how the call ended. Bounded in time, so it always returns.
 */
async function rawCall(port: number, message: Buffer, declaredLength = message.length): Promise<{ grpcStatus: number | undefined; bytesBack: number }> {
  const session = connect(`http://127.0.0.1:${port}`);
  session.on('error', () => undefined);
  try {
    const call = session.request({ ':method': 'POST', ':path': LINK_PATH, 'content-type': 'application/grpc', te: 'trailers' });
    let grpcStatus: number | undefined;
    let bytesBack = 0;
    const readStatus = (headers: Record<string, unknown>) => {
      if (headers['grpc-status'] !== undefined) grpcStatus = Number(headers['grpc-status']);
    };
    call.on('response', readStatus);
    call.on('trailers', readStatus);
    call.on('data', (chunk: Buffer) => (bytesBack += chunk.length));
    call.on('error', () => undefined);
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(declaredLength, 1);
    call.end(Buffer.concat([prefix, message]));
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, RAW_CALL_LIMIT_MS);
      call.on('close', () => (clearTimeout(timer), resolve()));
    });
    return { grpcStatus, bytesBack };
  } finally {
    session.destroy();
  }
}

describe('bad input on the trust port never takes the node down', () => {
  let pair: TestPair;
  beforeEach(async () => {
    pair = await TestPair.start();
    await waitFor('pair linked', () => pair.a.link(pair.b.id) !== undefined);
  });
  afterEach(() => pair?.stop());

  /** The pair still links and carries events: the node kept serving everyone else. */
  async function stillServing(): Promise<void> {
    const chat = newChat([`alice@${pair.a.id}`, `bob@${pair.b.id}`]);
    await pair.a.post(createdDraft(chat, `alice@${pair.a.id}`));
    await pair.a.post(messageDraft(chat, `alice@${pair.a.id}`, 'after the noise'));
    await waitFor('events reach B', async () => (await pair.b.store.chatSummary(chat.id)).events === 2);
  }

  it('closes calls whose message is random bytes, too long, or cut short', async () => {
    const calls = [
      // Field 1 with wire type 7 does not exist: the decoder must refuse it, whatever follows.
      await rawCall(pair.a.port, Buffer.concat([Buffer.from([0x0f]), randomBytes(512)])),
      await rawCall(pair.a.port, randomBytes(64), 1_000),
      await rawCall(pair.a.port, Buffer.alloc(0), GRPC_MESSAGE_BYTES_MAX + 1),
    ];
    for (const call of calls) expect(call.grpcStatus === undefined ? 'closed without status' : call.grpcStatus).not.toBe(0);
    await stillServing();
  });

  it('answers frames of the wrong kind with a typed error and closes the stream', async () => {
    const rogue = await RoguePeer.attach(pair.a);
    const early = rogue.open();
    await early.channel.send({ kind: { $case: 'batch', value: { lastLinkSeq: 1, events: [], forwards: [] } } });
    const first = await early.channel.next(5_000);
    expect(first?.kind?.$case === 'error' && first.kind.value).toMatchObject({ code: 'unexpected-frame', fatal: true });
    expect(await early.channel.next(5_000)).toBeUndefined();
    early.close();

    const link = await rogue.connect();
    await link.send({ kind: { $case: 'hello', value: { serverId: rogue.id, nonce: randomBytes(32), protocolVersion: 1 } } });
    expect(await link.until('error')).toMatchObject({ code: 'unexpected-frame', fatal: true });
    link.close();
    await stillServing();
  });

  it('refuses an oversized batch and keeps the events it already stored', async () => {
    const rogue = await RoguePeer.attach(pair.a);
    const chat = rogue.newChat();
    const link = await rogue.connect();
    const stored = rogue.events(chat, 3);
    await link.sendBatch(stored);
    await link.until('ack');
    const tooMany = rogue.events(chat, 1025);
    await link.sendBatch(tooMany);
    expect(await link.until('error')).toMatchObject({ code: 'batch-too-large', fatal: true });
    link.close();
    expect((await pair.a.store.chatLog(chat.id)).map((e) => e.seq)).toEqual([1, 2, 3]);
    await stillServing();
  });
});
