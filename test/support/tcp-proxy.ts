import { connect, createServer, type Server, type Socket } from 'node:net';

/** A loopback TCP proxy in front of a node, so a test can cut live connections at the socket. */
export class TcpProxy {
  private readonly sockets = new Set<Socket>();
  private server!: Server;
  port = 0;
  cuts = 0;

  static async start(targetPort: number): Promise<TcpProxy> {
    const proxy = new TcpProxy();
    proxy.server = createServer((client) => proxy.pipe(client, targetPort));
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    proxy.port = (proxy.server.address() as { port: number }).port;
    return proxy;
  }

  private pipe(client: Socket, targetPort: number): void {
    const upstream = connect(targetPort, '127.0.0.1');
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        this.sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }

  get openConnections(): number {
    return this.sockets.size / 2;
  }

  /** Stops carrying bytes on every live connection without closing it: the link goes silent. */
  freeze(): void {
    for (const socket of this.sockets) {
      socket.unpipe();
      socket.pause();
    }
  }

  /** Destroys every live connection mid-stream. */
  cutAll(): void {
    this.cuts += 1;
    for (const socket of this.sockets) socket.destroy();
  }

  async stop(): Promise<void> {
    this.cutAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
