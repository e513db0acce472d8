import * as grpc from '@grpc/grpc-js';

/** An error meant for a person: the message says what is wrong and what to do. No stack trace is shown. */
export class UserError extends Error {
  constructor(message: string, readonly code: string = 'USER_ERROR', readonly exitCode = 1) {
    super(message);
    this.name = 'UserError';
  }
}

/** Maps an error to the gRPC status a handler should return. */
export function toServiceError(err: unknown, fallback = grpc.status.INTERNAL): Partial<grpc.ServiceError> {
  if (isServiceError(err)) return err;
  const message = err instanceof Error ? err.message : String(err);
  const code = err instanceof StatusError ? err.status : err instanceof UserError ? grpc.status.FAILED_PRECONDITION : fallback;
  return { code, details: message, message };
}

/** An error a server handler raises with a specific gRPC status. */
export class StatusError extends UserError {
  constructor(readonly status: grpc.status, message: string, code = grpc.status[status]) {
    super(message, code);
  }
}

export function isServiceError(err: unknown): err is grpc.ServiceError {
  return typeof err === 'object' && err !== null && 'code' in err && 'details' in err && typeof (err as grpc.ServiceError).code === 'number';
}

/**
 * What a client tells its user when a call fails. Transport failures get a hint about the
 * usual cause (address, server down, certificates) because grpc-js's own text does not say.
 */
export function describeCallError(err: unknown, server: string): string {
  if (!isServiceError(err)) return err instanceof Error ? err.message : String(err);
  switch (err.code) {
    case grpc.status.UNAVAILABLE:
      if (/certificate|handshake|SSL|TLS|alert/i.test(err.details)) {
        return `TLS handshake with ${server} failed (${err.details}): check that --tls-ca is the installation's CA and that the server's certificate names this host`;
      }
      // grpc-js says "Connection dropped" when a connection it had is lost mid-call: the server is not misaddressed, it went away
      if (/Connection dropped|RST_STREAM|GOAWAY/i.test(err.details)) {
        return `lost the connection to the repository server at ${server} (${err.details}): the server stopped or the network failed; check that pgrepo-server is running and see its log`;
      }
      return `cannot reach the repository server at ${server} (${err.details}): is pgrepo-server running there, and is --server right?`;
    case grpc.status.DEADLINE_EXCEEDED:
      return `the repository server at ${server} did not answer in time (${err.details})`;
    default:
      return err.details || err.message;
  }
}
