import * as grpc from '@grpc/grpc-js';
import { CHANNEL_OPTIONS, loadProto } from '../../shared/proto';
import { clientCredentials, type TlsFiles } from '../../shared/tls';
import type { RepositoryClient } from '../../shared/generated/pgrepo/v1/Repository';

export function repositoryClient(address: string, tls: TlsFiles): RepositoryClient {
  const Client = loadProto().pgrepo.v1.Repository;
  return new Client(address, clientCredentials(tls), CHANNEL_OPTIONS);
}

export type { RepositoryClient };
export { grpc };
