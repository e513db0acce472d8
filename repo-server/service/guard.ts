import * as grpc from '@grpc/grpc-js';
import { callerIdentity } from '../../shared/tls';
import { StatusError, toServiceError } from '../../shared/errors';
import { ValidationError, validateStanzaName } from '../../shared/validate';
import type { Logger } from '../../shared/log';
import { mayAccessStanza, type AuthRule, type AuthRules, type Role } from '../auth';

export interface Caller {
  identity: string;
  rule: AuthRule;
  peer: string;
  /** the stanza this call was authorized for, once authorizeStanza has run */
  stanza?: string;
}

export interface GuardContext {
  rules: () => AuthRules;
  log: Logger;
  /** why the client at a peer address has no verified certificate (expired, another CA), when known */
  explainUnverified?: (peer: string) => { reason: string; cn?: string; notAfter?: string } | undefined;
  /** sees every verified client certificate (expiry warnings) */
  onCertificate?: (cert: NonNullable<ReturnType<AnyCall['getAuthContext']>['sslPeerCertificate']>) => void;
}

type AnyCall = Parameters<typeof callerIdentity>[0] & { getPeer(): string };

/**
 * Every call passes here before any handler runs: the client must hold a certificate from the
 * installation's CA, its CN must have a rule, and the rule's role must be one the method allows.
 */
export function authenticate(ctx: GuardContext, call: AnyCall, method: string, roles: Role[]): Caller {
  const peer = call.getPeer();
  const identity = callerIdentity(call);
  if (!identity) {
    const why = ctx.explainUnverified?.(peer);
    if (why) {
      ctx.log.warn({ peer, method, identity: why.cn, notAfter: why.notAfter }, `refused a client: ${why.reason}`);
      throw new StatusError(grpc.status.UNAUTHENTICATED, `the server refused this client: ${why.reason}`);
    }
    ctx.log.warn({ peer, method }, 'refused a client without a certificate from this installation\'s CA');
    throw new StatusError(grpc.status.UNAUTHENTICATED,
      "the server refused this client: it presented no certificate signed by the installation's CA (check --tls-cert, --tls-key and --tls-ca)");
  }
  const cert = call.getAuthContext().sslPeerCertificate;
  if (cert) ctx.onCertificate?.(cert);
  const rule = ctx.rules().rule(identity);
  if (!rule) {
    ctx.log.warn({ peer, method, identity }, 'refused a certificate whose CN has no --auth rule');
    throw new StatusError(grpc.status.PERMISSION_DENIED,
      `the certificate CN '${identity}' is not authorized on this server (add --auth ${identity}=ROLE[:STANZA] to pgrepo-server)`);
  }
  if (!roles.includes(rule.role)) {
    ctx.log.warn({ peer, method, identity, role: rule.role }, 'refused a call the role does not allow');
    throw new StatusError(grpc.status.PERMISSION_DENIED, `'${identity}' has role ${rule.role}, which may not call ${method} (needs ${roles.join(' or ')})`);
  }
  return { identity, rule, peer };
}

/** Validates the stanza name from the wire and checks the caller may touch it. */
export function authorizeStanza(ctx: GuardContext, caller: Caller, stanza: string): string {
  try {
    validateStanzaName(stanza);
  } catch (err) {
    throw new StatusError(grpc.status.INVALID_ARGUMENT, (err as Error).message);
  }
  if (!mayAccessStanza(caller.rule, stanza)) {
    ctx.log.warn({ identity: caller.identity, stanza }, 'refused access to a stanza outside the caller\'s rule');
    throw new StatusError(grpc.status.PERMISSION_DENIED, `'${caller.identity}' is not authorized for stanza '${stanza}'`);
  }
  caller.stanza = stanza;
  return stanza;
}

function reportFailure(ctx: GuardContext, method: string, caller: Caller | undefined, err: unknown): Partial<grpc.ServiceError> {
  const mapped = toServiceError(err instanceof ValidationError ? new StatusError(grpc.status.INVALID_ARGUMENT, err.message) : err);
  if (caller) {
    const level = mapped.code === grpc.status.INTERNAL ? 'error' : 'warn';
    ctx.log[level]({ method, identity: caller.identity, err: mapped.details, ...(level === 'error' && err instanceof Error ? { stack: err.stack } : {}) }, 'call failed');
  }
  return mapped;
}

/** Authenticates, runs the handler, and maps a failure to a logged gRPC status: the one path every call takes. */
function guarded<C extends AnyCall, R>(ctx: GuardContext, method: string, roles: Role[], call: C,
  fn: (call: C, caller: Caller) => Promise<R>): Promise<{ ok: true; value: R } | { ok: false; status: Partial<grpc.ServiceError> }> {
  let caller: Caller | undefined;
  return Promise.resolve()
    .then(() => {
      caller = authenticate(ctx, call, method, roles);
      return fn(call, caller);
    })
    .then((value) => ({ ok: true as const, value }), (err) => ({ ok: false as const, status: reportFailure(ctx, method, caller, err) }));
}

type Callback<Res> = (err: Partial<grpc.ServiceError> | null, value?: Res) => void;

function answer<Res>(callback: Callback<Res>) {
  return (r: { ok: true; value: Res } | { ok: false; status: Partial<grpc.ServiceError> }) => (r.ok ? callback(null, r.value) : callback(r.status));
}

// grpc-js turns an 'error' event on a server stream into the call's status and ends it
function finishStream(call: NodeJS.EventEmitter & { end(): void }) {
  return (r: { ok: true } | { ok: false; status: Partial<grpc.ServiceError> }) => (r.ok ? call.end() : call.emit('error', r.status));
}

export function unary<Req, Res>(ctx: GuardContext, method: string, roles: Role[],
  fn: (call: grpc.ServerUnaryCall<Req, Res>, caller: Caller) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => void guarded(ctx, method, roles, call, fn).then(answer(callback));
}

export function clientStream<Req, Res>(ctx: GuardContext, method: string, roles: Role[],
  fn: (call: grpc.ServerReadableStream<Req, Res>, caller: Caller) => Promise<Res>): grpc.handleClientStreamingCall<Req, Res> {
  return (call, callback) => void guarded(ctx, method, roles, call, fn).then(answer(callback));
}

export function serverStream<Req, Res>(ctx: GuardContext, method: string, roles: Role[],
  fn: (call: grpc.ServerWritableStream<Req, Res>, caller: Caller) => Promise<void>): grpc.handleServerStreamingCall<Req, Res> {
  return (call) => void guarded(ctx, method, roles, call, fn).then(finishStream(call));
}

export function bidiStream<Req, Res>(ctx: GuardContext, method: string, roles: Role[],
  fn: (call: grpc.ServerDuplexStream<Req, Res>, caller: Caller) => Promise<void>): grpc.handleBidiStreamingCall<Req, Res> {
  return (call) => void guarded(ctx, method, roles, call, fn).then(finishStream(call));
}
