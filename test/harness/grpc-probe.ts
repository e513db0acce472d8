/**
 * A raw gRPC call from the test process, bypassing repoctl's own checks, to see what the
 * server itself does with a client (no certificate, a foreign CA's, an agent reaching for
 * another stanza). Loads the contract from proto/ so it follows the real method names.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { SERVER_NAME } from './certs';
import { repoRoot } from './system';

export interface ProbeResult {
  /** grpc status code (0 = OK) */
  code: number;
  details: string;
}

export interface ProbeOptions {
  address: string;
  ca: string;
  cert?: string;
  key?: string;
  /** method name in service pgrepo.v1.Repository, e.g. Info, ArchiveGet */
  method: string;
  request?: Record<string, unknown>;
  timeoutMs?: number;
}

let definition: protoLoader.PackageDefinition | undefined;

function loadContract(): protoLoader.PackageDefinition {
  if (definition) return definition;
  const dir = path.join(repoRoot(), 'proto');
  const files = fs.readdirSync(path.join(dir, 'pgrepo', 'v1')).filter((f) => f.endsWith('.proto')).map((f) => `pgrepo/v1/${f}`);
  definition = protoLoader.loadSync(files, { includeDirs: [dir], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  return definition;
}

function findMethod(name: string): grpc.MethodDefinition<object, object> {
  const def = loadContract();
  for (const [svcName, svc] of Object.entries(def)) {
    if (!svcName.startsWith('pgrepo.v1.') || 'format' in svc) continue; // message types have a format
    const m = (svc as protoLoader.ServiceDefinition)[name] as grpc.MethodDefinition<object, object> | undefined;
    if (m && typeof m.path === 'string') return m;
  }
  throw new Error(`no method ${name} in proto/pgrepo/v1`);
}

/** Makes one unary or server-streaming call and returns how it ended. */
export function probeCall(o: ProbeOptions): Promise<ProbeResult> {
  const method = findMethod(o.method);
  if (method.requestStream) throw new Error(`probeCall does not do client-streaming methods (${o.method})`);
  const creds = grpc.credentials.createSsl(
    fs.readFileSync(o.ca),
    o.key ? fs.readFileSync(o.key) : null,
    o.cert ? fs.readFileSync(o.cert) : null,
  );
  const client = new grpc.Client(o.address, creds, { 'grpc.ssl_target_name_override': SERVER_NAME, 'grpc.default_authority': SERVER_NAME });
  const deadline = new Date(Date.now() + (o.timeoutMs ?? 15_000));
  const request = o.request ?? {};
  return new Promise<ProbeResult>((resolve) => {
    const finish = (code: number, details: string) => {
      client.close();
      resolve({ code, details });
    };
    if (!method.responseStream) {
      client.makeUnaryRequest(method.path, method.requestSerialize, method.responseDeserialize, request, new grpc.Metadata(), { deadline }, (err) => {
        finish(err ? err.code : grpc.status.OK, err ? err.details : '');
      });
      return;
    }
    const call = client.makeServerStreamRequest(method.path, method.requestSerialize, method.responseDeserialize, request, new grpc.Metadata(), { deadline });
    call.on('data', () => undefined);
    call.on('error', (err: grpc.ServiceError) => finish(err.code, err.details));
    call.on('status', (s: grpc.StatusObject) => {
      if (s.code === grpc.status.OK) finish(s.code, s.details);
    });
  });
}

export const GrpcStatus = grpc.status;
