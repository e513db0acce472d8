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

// Large backups move through these channels: the HTTP/2 windows and message limits are raised
// from grpc-js's defaults so a single channel is not throttled by flow control.
export const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
  'grpc.max_send_message_length': 64 * 1024 * 1024,
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc-node.flow_control_window': 16 * 1024 * 1024,
};
