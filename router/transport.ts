import { readFileSync } from 'node:fs';
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

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.max_receive_message_length': GRPC_MESSAGE_BYTES_MAX,
  'grpc.max_send_message_length': GRPC_MESSAGE_BYTES_MAX,
};

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
  async listen(address: string, onLink: LinkHandler): Promise<{ server: grpc.Server; port: number }> {
    const server = new grpc.Server(CHANNEL_OPTIONS);
    server.addService(TrustServiceService, { link: onLink });
    const credentials = this.tls
      ? grpc.ServerCredentials.createSsl(this.tls.ca, [{ cert_chain: this.tls.cert, private_key: this.tls.key }], false)
      : grpc.ServerCredentials.createInsecure();
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(address, credentials, (error, bound) => (error ? reject(new Error(`cannot listen on ${address}: ${error.message}`)) : resolve(bound))),
    );
    return { server, port };
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
