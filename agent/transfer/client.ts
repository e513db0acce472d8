import * as grpc from '@grpc/grpc-js';
import { CHANNEL_OPTIONS, loadProto } from '../../shared/proto';
import { clientCredentials, type TlsFiles } from '../../shared/tls';
import { rawRequests, rawUploads } from '../../shared/stream/raw-message';
import type { RepositoryClient } from '../../shared/generated/pgrepo/v1/Repository';

let RawClient: grpc.ServiceClientConstructor | undefined;

/**
 * The repository's client, whose PutBackupFile also sends data messages already encoded
 * (agent/transfer/upload.ts), and PutBundle the messages a bundle's codec threads encoded (agent/backup/bundle-read.ts).
 */
export function repositoryClient(address: string, tls: TlsFiles): RepositoryClient {
  const service = loadProto().pgrepo.v1.Repository.service;
  RawClient ??= grpc.makeGenericClientConstructor({
    ...service, PutBackupFile: rawUploads(service.PutBackupFile), PutBundle: rawRequests(service.PutBundle),
  }, 'Repository');
  return new RawClient(address, clientCredentials(tls), CHANNEL_OPTIONS) as unknown as RepositoryClient;
}

export type { RepositoryClient };
export { grpc };
