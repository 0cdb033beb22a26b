import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A loopback TCP proxy in front of one node's trust port, owned by whoever starts it (the
 * fault suite, tests): it carries bytes as they come, and on command cuts every live
 * connection, refuses or swallows new ones (a partition), holds every chunk back for a
 * while (a delay, order kept), or lets bytes through at a trickle. It works on TCP chunks,
 * never on HTTP/2 frames: what it does to a stream is what a network can do to one.
 */

/** Bytes one direction of a connection may hold back (delay, trickle) before it stops reading its sender. */
export const PROXY_HELD_BYTES_MAX = 4 * 1024 * 1024;
/** A trickle releases bytes in slices of this size, so a large chunk still arrives a little at a time. */
const TRICKLE_SLICE_BYTES = 512;

/** What the proxy does to new connections while partitioned: reset them at once, or accept and carry nothing. */
export type PartitionKind = 'reset' | 'blackhole';

export interface ProxyTarget {
  host: string;
  port: number;
}

export interface ProxyOptions {
  /** The address to listen on (port 0: the system picks it). */
  listenHost?: string;
  /** The local address of the proxy's connections to the target (where the node sees them come from). */
  localAddress?: string;
}

/** One direction of one connection: chunks wait in order for their release time. */
class Direction {
  private readonly queue: Array<{ chunk: Buffer; releaseAt: number }> = [];
  private heldBytes = 0;
  private lastReleaseAt = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Frozen: holds what it has and reads nothing more (freeze); a connection made later is not. */
  frozen = false;

  constructor(
    private readonly from: Socket,
    private readonly to: Socket,
    private readonly proxy: TcpProxy,
  ) {
    from.on('data', (chunk: Buffer) => this.push(chunk));
  }

  private push(chunk: Buffer): void {
    const { delayMs, trickleBytesPerS } = this.proxy;
    if (delayMs === 0 && trickleBytesPerS === 0 && this.queue.length === 0) {
      this.to.write(chunk);
      return;
    }
    const now = Date.now();
    const slice = trickleBytesPerS > 0 ? TRICKLE_SLICE_BYTES : chunk.length;
    for (let offset = 0; offset < chunk.length; offset += slice) {
      const part = chunk.subarray(offset, offset + slice);
      const spacingMs = trickleBytesPerS > 0 ? (part.length * 1000) / trickleBytesPerS : 0;
      const releaseAt = Math.max(now + delayMs, this.lastReleaseAt + spacingMs);
      this.lastReleaseAt = releaseAt;
      this.queue.push({ chunk: part, releaseAt });
      this.heldBytes += part.length;
    }
    if (this.heldBytes > PROXY_HELD_BYTES_MAX) this.from.pause();
    this.schedule();
  }

  /** Releases what is due, then waits for the next chunk's time. */
  schedule(): void {
    if (this.timer || this.frozen) return;
    const now = Date.now();
    while (this.queue.length > 0 && this.queue[0]!.releaseAt <= now) {
      const { chunk } = this.queue.shift()!;
      this.heldBytes -= chunk.length;
      this.to.write(chunk);
    }
    if (this.heldBytes <= PROXY_HELD_BYTES_MAX && !this.frozen) this.from.resume();
    const next = this.queue[0];
    if (next) this.timer = setTimeout(() => ((this.timer = undefined), this.schedule()), Math.max(1, next.releaseAt - now));
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
  }
}

export class TcpProxy {
  private readonly sockets = new Set<Socket>();
  private readonly directions = new Set<Direction>();
  private server!: Server;
  port = 0;
  host = '127.0.0.1';
  /** Times every live connection was cut (cutAll, partition). */
  cuts = 0;
  /** Connections accepted so far, and those reset or swallowed because of a partition. */
  accepted = 0;
  refused = 0;
  partitioned: PartitionKind | undefined;
  delayMs = 0;
  trickleBytesPerS = 0;

  private constructor(
    public target: ProxyTarget,
    private readonly options: ProxyOptions,
  ) {}

  /** A proxy to `target` (a port on 127.0.0.1, or host and port). */
  static async start(target: number | ProxyTarget, options: ProxyOptions = {}): Promise<TcpProxy> {
    const proxy = new TcpProxy(typeof target === 'number' ? { host: '127.0.0.1', port: target } : target, options);
    proxy.host = options.listenHost ?? '127.0.0.1';
    proxy.server = createServer((client) => proxy.accept(client));
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject);
      proxy.server.listen(0, proxy.host, resolve);
    });
    proxy.port = (proxy.server.address() as { port: number }).port;
    return proxy;
  }

  get address(): string {
    return `${this.host}:${this.port}`;
  }

  private accept(client: Socket): void {
    this.accepted += 1;
    client.on('error', () => undefined);
    if (this.partitioned === 'reset') {
      this.refused += 1;
      client.resetAndDestroy();
      return;
    }
    this.sockets.add(client);
    client.on('close', () => this.sockets.delete(client));
    if (this.partitioned === 'blackhole') {
      // Accepted and read, never answered nor passed on: the dialler's handshake times out.
      this.refused += 1;
      client.resume();
      return;
    }
    const { localAddress } = this.options;
    const upstream = connect({ host: this.target.host, port: this.target.port, ...(localAddress ? { localAddress } : {}) });
    const directions = [new Direction(client, upstream, this), new Direction(upstream, client, this)];
    for (const direction of directions) this.directions.add(direction);
    this.sockets.add(upstream);
    upstream.on('error', () => undefined);
    for (const socket of [client, upstream]) {
      socket.on('close', () => {
        this.sockets.delete(socket);
        for (const direction of directions) {
          direction.close();
          this.directions.delete(direction);
        }
        client.destroy();
        upstream.destroy();
      });
    }
  }

  get openConnections(): number {
    return this.sockets.size / 2;
  }

  /** Stops carrying bytes on every live connection without closing it: the link goes silent (a redial gets through). */
  freeze(): void {
    for (const direction of this.directions) direction.frozen = true;
    for (const socket of this.sockets) socket.pause();
  }

  /** Carries bytes again on the frozen connections, what was held first. */
  thaw(): void {
    for (const direction of this.directions) {
      direction.frozen = false;
      direction.schedule();
    }
  }

  /** Destroys every live connection mid-stream. */
  cutAll(): void {
    this.cuts += 1;
    for (const socket of this.sockets) socket.destroy();
  }

  /** Cuts every live connection and, until heal, resets or swallows each new one. */
  partition(kind: PartitionKind): void {
    this.partitioned = kind;
    this.cutAll();
  }

  /** Ends a partition; swallowed connections are cut, so their diallers redial. */
  heal(): void {
    if (this.partitioned === 'blackhole') this.cutAll();
    this.partitioned = undefined;
  }

  /** Holds every chunk `delayMs` before passing it on (0: at once); order is kept. */
  delay(delayMs: number): void {
    this.delayMs = delayMs;
  }

  /** Passes at most `bytesPerS` each way on each connection (0: no limit). */
  trickle(bytesPerS: number): void {
    this.trickleBytesPerS = bytesPerS;
  }

  /** Back to carrying every byte at once. */
  restore(): void {
    this.heal();
    this.delay(0);
    this.trickle(0);
    this.thaw();
  }

  async stop(): Promise<void> {
    this.cutAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
