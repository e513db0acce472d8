import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProtoGrpcType } from './generated/repository';

// dist/shared/proto.js and shared/proto.ts both sit two levels below the package root
const PROTO_ROOT = path.resolve(__dirname, '..', '..', 'proto');
const PROTO_ROOT_SRC = path.resolve(__dirname, '..', 'proto');

// Options must match the proto-loader-gen-types flags in package.json, or the generated
// types would lie about what arrives (longs as numbers, defaults filled in, oneof names).
const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

let loaded: ProtoGrpcType | undefined;

export function loadProto(): ProtoGrpcType {
  if (!loaded) {
    const fs = require('node:fs') as typeof import('node:fs');
    const root = fs.existsSync(path.join(PROTO_ROOT, 'pgrepo')) ? PROTO_ROOT : PROTO_ROOT_SRC;
    const definition = protoLoader.loadSync('pgrepo/v1/repository.proto', { ...LOADER_OPTIONS, includeDirs: [root] });
    loaded = grpc.loadPackageDefinition(definition) as unknown as ProtoGrpcType;
  }
  return loaded;
}

/** HTTP/2 flow-control window, per stream and per connection, on both ends. */
export const FLOW_CONTROL_WINDOW = 16 * 1024 * 1024;

// Large backups move through these channels: the HTTP/2 windows and message limits are raised
// from grpc-js's defaults so a single channel is not throttled by flow control.
export const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
  'grpc.max_send_message_length': 64 * 1024 * 1024,
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW,
};

/**
 * grpc-js applies 'grpc-node.flow_control_window' only to the connections it dials: its server
 * keeps HTTP/2's 64 KiB windows, and an upload then waits a round trip through the server's
 * event loop for every 64 KiB. This raises the server's windows on every connection, the way
 * Node's http2 documentation shows (session.setLocalWindowSize on 'session'). grpc-js keeps its
 * HTTP/2 servers in a private field; should that change, uploads still work, only slower, and we say so.
 */
export function raiseServerFlowControl(server: grpc.Server, warn: (message: string) => void): void {
  const http2Servers = (server as unknown as { http2Servers?: Map<import('node:http2').Http2SecureServer, unknown> }).http2Servers;
  if (!(http2Servers instanceof Map) || http2Servers.size === 0) {
    warn('cannot raise the HTTP/2 flow-control windows of this grpc-js version: uploads will be slower');
    return;
  }
  for (const h2 of http2Servers.keys()) {
    h2.on('session', (session) => {
      try {
        session.setLocalWindowSize(FLOW_CONTROL_WINDOW);
        session.settings({ initialWindowSize: FLOW_CONTROL_WINDOW });
      } catch {
        // a session that closed at once: nothing to tune
      }
    });
  }
}
