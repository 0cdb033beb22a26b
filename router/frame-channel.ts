import type { ClientDuplexStream, ServerDuplexStream } from '@grpc/grpc-js';
import type { Frame } from '../proto/gen/trellis/v1/link.js';

/** A typed refusal for the peer; `fatal` says the sender closes the stream after it. */
export function errorFrame(code: string, message: string, fatal = true): Frame {
  return { kind: { $case: 'error', value: { code, message, fatal } } };
}

type FrameStream = ClientDuplexStream<Frame, Frame> | ServerDuplexStream<Frame, Frame>;

/**
 * One side of a Link stream, the same for the dialler (client call) and the acceptor
 * (server call): ordered reads with a deadline, writes that respect back-pressure,
 * and one way to close.
 */
export class FrameChannel {
  private readonly reader: AsyncIterator<Frame>;
  private closed = false;
  private streamError: Error | undefined;

  constructor(
    private readonly stream: FrameStream,
    readonly remoteAddress: string,
  ) {
    // Errors surface through reads and writes; this keeps an unread one from crashing the process.
    stream.on('error', (error: Error) => {
      this.streamError ??= error;
      this.closed = true;
    });
    this.reader = stream[Symbol.asyncIterator]();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** The next frame, or undefined when the stream ended. Throws on a stream error or the deadline. */
  async next(timeoutMs?: number): Promise<Frame | undefined> {
    const read = this.reader.next().then((result) => (result.done ? undefined : (result.value as Frame)));
    if (timeoutMs === undefined) return read;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no frame within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([read, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  async send(frame: Frame): Promise<void> {
    // A stream that already closed emits neither 'drain' nor 'close' again: waiting would hang.
    if (this.closed || this.stream.destroyed || this.stream.writableEnded) throw this.streamError ?? new Error('link stream is closed');
    if (this.stream.write(frame)) return;
    await new Promise<void>((resolve, reject) => {
      const done = (error?: Error) => {
        this.stream.off('drain', onDrain);
        this.stream.off('close', onClose);
        this.stream.off('error', onClose);
        if (error) reject(error);
        else resolve();
      };
      const onDrain = () => done();
      const onClose = () => done(this.streamError ?? new Error('link stream closed while writing'));
      this.stream.on('drain', onDrain);
      this.stream.on('close', onClose);
      this.stream.on('error', onClose);
      if (this.stream.destroyed) onClose();
    });
  }

  /** Sends a last frame if one is given and the stream still takes it, then ends the stream. */
  close(lastFrame?: Frame): void {
    if (this.closed) return;
    this.closed = true;
    try {
      if (lastFrame) this.stream.write(lastFrame);
      this.stream.end();
    } catch {
      // The stream already failed: nothing left to tell the peer.
    }
    if ('cancel' in this.stream) setTimeout(() => (this.stream as ClientDuplexStream<Frame, Frame>).cancel(), 1000).unref();
  }

  /** Drops the stream at once (dead link, shutdown). */
  abort(): void {
    this.closed = true;
    if ('cancel' in this.stream) (this.stream as ClientDuplexStream<Frame, Frame>).cancel();
    else this.stream.destroy();
  }
}
