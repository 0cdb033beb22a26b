import type { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import type { Http2Session } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { TrustServiceClient, TrustServiceService, type Frame } from '../proto/gen/trellis/v1/link.js';
import type { NodeConfig } from './config.js';

/**
 * gRPC plumbing of the trust link: the listening server and the dialling client, with
 * the trust TLS certificate when one is configured. The peer is authenticated by the
 * token pair, not by a client certificate, so TLS here protects the channel and proves
 * the server to the dialler.
 */
export const GRPC_MESSAGE_BYTES_MAX = 16 * 1024 * 1024;

/**
 * The HTTP/2 receive window of each link, both ways. Node's default is 64 KiB: a batch of
 * a few hundred KB then crosses in dozens of window updates, each waiting for a receiver
 * whose event loop the embedded store keeps busy.
 */
export const LINK_WINDOW_BYTES = 8 * 1024 * 1024;

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.max_receive_message_length': GRPC_MESSAGE_BYTES_MAX,
  'grpc.max_send_message_length': GRPC_MESSAGE_BYTES_MAX,
  'grpc-node.flow_control_window': LINK_WINDOW_BYTES,
};

/**
 * grpc-js 1.14 applies `grpc-node.flow_control_window` to the sessions it dials, not to
 * the ones it accepts (grpc-node#3058 would). Until then the accepting side opens its
 * window itself, on each session of the HTTP/2 servers the library made: the `session`
 * event is Node's public API; only reaching those servers goes through a library field.
 * If a later grpc-js moves that field, links keep working at the default window.
 */
function widenAcceptedWindows(server: grpc.Server): boolean {
  const http2Servers = (server as unknown as { http2Servers?: Map<EventEmitter, unknown> }).http2Servers;
  if (!(http2Servers instanceof Map)) return false;
  for (const http2Server of http2Servers.keys()) {
    http2Server.on('session', (session: Http2Session) => {
      session.settings({ initialWindowSize: LINK_WINDOW_BYTES });
      session.setLocalWindowSize(LINK_WINDOW_BYTES);
    });
  }
  return http2Servers.size > 0;
}

interface TlsFiles {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
  serverName?: string;
}

function readTls(config: NodeConfig): TlsFiles | undefined {
  if (!config.tls) return undefined;
  const read = (path: string, what: string) => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new Error(`tls.${what}: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
  };
  return {
    cert: read(config.tls.cert_file, 'cert_file'),
    key: read(config.tls.key_file, 'key_file'),
    ca: read(config.tls.ca_file, 'ca_file'),
    ...(config.tls.server_name ? { serverName: config.tls.server_name } : {}),
  };
}

export type LinkHandler = (call: grpc.ServerDuplexStream<Frame, Frame>) => void;

export class Transport {
  private readonly tls: TlsFiles | undefined;

  constructor(config: NodeConfig) {
    this.tls = readTls(config);
  }

  get secure(): boolean {
    return this.tls !== undefined;
  }

  /** Binds the Trust service; resolves with the bound port (useful when listening on :0). */
  async listen(address: string, onLink: LinkHandler): Promise<{ server: grpc.Server; port: number; widenedWindow: boolean }> {
    const server = new grpc.Server(CHANNEL_OPTIONS);
    server.addService(TrustServiceService, { link: onLink });
    const credentials = this.tls
      ? grpc.ServerCredentials.createSsl(this.tls.ca, [{ cert_chain: this.tls.cert, private_key: this.tls.key }], false)
      : grpc.ServerCredentials.createInsecure();
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(address, credentials, (error, bound) => (error ? reject(new Error(`cannot listen on ${address}: ${error.message}`)) : resolve(bound))),
    );
    return { server, port, widenedWindow: widenAcceptedWindows(server) };
  }

  dial(endpoint: string): { client: TrustServiceClient; call: grpc.ClientDuplexStream<Frame, Frame> } {
    const credentials = this.tls ? grpc.credentials.createSsl(this.tls.ca) : grpc.credentials.createInsecure();
    const options: grpc.ChannelOptions = { ...CHANNEL_OPTIONS };
    if (this.tls?.serverName) {
      options['grpc.ssl_target_name_override'] = this.tls.serverName;
      options['grpc.default_authority'] = this.tls.serverName;
    }
    const client = new TrustServiceClient(endpoint, credentials, options);
    return { client, call: client.link() };
  }
}

/** "ipv4:127.0.0.1:5501" or "[::1]:5501" → the host part, for per-source rate limits. */
export function peerHost(peer: string): string {
  const address = peer.replace(/^ipv[46]:/, '');
  return address.slice(0, address.lastIndexOf(':')).replace(/^\[|\]$/g, '') || address;
}
