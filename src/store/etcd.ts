/**
 * The etcd client as cfgserver uses it: deadlines on every unary call, a short watch
 * reconnect backoff, and one conversion of driver errors into our typed errors.
 */
import { ConsecutiveBreaker, ExponentialBackoff, circuitBreaker, handleWhen, retry, type IBackoff } from 'cockatiel';
import { isIP } from 'node:net';
import {
  Etcd3,
  EtcdAuthenticationFailedError,
  EtcdPermissionDeniedError,
  GRPCUnauthenticatedError,
  GRPCUnavailableError,
  isRecoverableError,
  type IKeyValue,
  type IOptions,
} from 'etcd3';
import type { z } from 'zod';
import { CfgError, EtcdAccessError, EtcdUnavailableError, MalformedValueError, ValidationError, errorMessage } from '../model/errors.js';
import { describeIssues } from '../model/schemas.js';
import { explainTlsFailure, grpcReason, isTlsFailure, type EtcdSecurity } from './etcd-security.js';

export const DEFAULT_ETCD = 'http://127.0.0.1:2379';

export interface EtcdOptions {
  /** Comma-separated or list of endpoints; `http://` is added when missing. */
  endpoints: string | string[];
  /** Deadline of each unary call. */
  callTimeoutMs?: number;
  /** Retries of a recoverable failure (on another endpoint when there are several). */
  retries?: number;
  /** TLS and/or user+password (etcd-security.ts); none: plain connections, as before. */
  security?: EtcdSecurity;
}

/**
 * The endpoints as URLs. A scheme left out is `https://` when TLS settings are given, `http://`
 * otherwise; TLS settings with an `http://` endpoint, or a mix of both schemes, are refused
 * (etcd3 would silently use TLS for all, or throw).
 */
export function parseEndpoints(endpoints: string | string[], tls = false): string[] {
  const list = (Array.isArray(endpoints) ? endpoints : endpoints.split(','))
    .map((e) => e.trim())
    .filter(Boolean)
    .map((e) => (/^https?:\/\//.test(e) ? e : `${tls ? 'https' : 'http'}://${e}`));
  if (list.length === 0) throw new EtcdUnavailableError('no etcd endpoint given');
  const secure = list.filter((e) => e.startsWith('https://')).length;
  if (tls && secure < list.length) throw new ValidationError(`etcd TLS settings (--etcd-ca, --etcd-cert) are given but an endpoint is http://: use https:// endpoints`);
  if (secure > 0 && secure < list.length) throw new ValidationError('etcd endpoints mix http:// and https://: use one scheme for all');
  return list;
}

/** How each client made by createEtcd was made: sessions open one client per endpoint with the same security. */
const madeWith = new WeakMap<Etcd3, { hosts: string[]; security?: EtcdSecurity }>();

export function endpointsOf(etcd: Etcd3): string[] | undefined {
  return madeWith.get(etcd)?.hosts;
}

export function securityOf(etcd: Etcd3): EtcdSecurity | undefined {
  return madeWith.get(etcd)?.security;
}

/** The etcd3 options for the security settings: one place builds them. */
function securityOptions(security: EtcdSecurity | undefined, callTimeoutMs: number): Pick<IOptions, 'credentials' | 'auth'> {
  const out: Pick<IOptions, 'credentials' | 'auth'> = {};
  if (security?.tls) {
    // grpc-js takes a null root certificate as "the system's roots" (etcd3's type wants a Buffer).
    out.credentials = { rootCertificate: security.tls.ca ?? (null as unknown as Buffer), certChain: security.tls.cert, privateKey: security.tls.key };
  }
  if (security?.auth) {
    // The token exchange gets a deadline too: a hung member must not stall every call behind it.
    out.auth = { username: security.auth.user, password: security.auth.password, callOptions: () => ({ deadline: Date.now() + callTimeoutMs }) };
  }
  return out;
}

/**
 * grpc-js sets the TLS server name to the endpoint's host, and Node warns (DEP0123, on stderr)
 * when that is an IP address, as etcd endpoints usually are. The certificate is still checked
 * against the IP (its subjectAltName); the warning is about SNI, which etcd does not use, and
 * would break cfgctl's one-line output. Only that warning is dropped.
 */
let ipServernameWarningDropped = false;
function dropIpServernameWarning(): void {
  if (ipServernameWarningDropped) return;
  ipServernameWarningDropped = true;
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const code = typeof rest[0] === 'object' && rest[0] !== null ? (rest[0] as { code?: string }).code : rest[1];
    if (code === 'DEP0123') return;
    emit(warning, ...rest);
  }) as typeof process.emitWarning;
}

/**
 * gRPC keep-alive: a member that is hung (SIGSTOP, a stalled disk, a dead host behind a live
 * TCP stack) still holds our TCP connection open, so without pings a watch or keep-alive stream
 * on it just waits. etcd's server refuses pings more often than every 5 s
 * (--grpc-keepalive-min-time) and answers them with GOAWAY too_many_pings; it also counts pings on
 * a connection with no stream open as abuse (its enforcement policy has PermitWithoutStream
 * false), so pinging idle channels would get them torn down every few seconds. Pings while a
 * call is open are exactly what detects a hung member under a watch.
 */
export const GRPC_KEEPALIVE = {
  'grpc.keepalive_time_ms': 5000,
  'grpc.keepalive_timeout_ms': 2000,
  'grpc.keepalive_permit_without_calls': 0,
} as const;

export function createEtcd(options: EtcdOptions): Etcd3 {
  const callTimeoutMs = options.callTimeoutMs ?? 3000;
  const hosts = parseEndpoints(options.endpoints, options.security?.tls !== undefined);
  if (hosts.some((h) => h.startsWith('https://') && isIP(h.replace(/^https:\/\/\[?/, '').replace(/\]?:\d+$/, '')) !== 0)) dropIpServernameWarning();
  const etcd = new Etcd3({
    hosts,
    ...securityOptions(options.security, callTimeoutMs),
    grpcOptions: { ...GRPC_KEEPALIVE },
    dialTimeout: callTimeoutMs,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
    faultHandling: {
      global: retry(handleWhen(isRecoverableError), { maxAttempts: options.retries ?? 1 }),
      host: () => circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: 1000, breaker: new ConsecutiveBreaker(3) }),
      // The default reaches 30 s between watch reconnects; a proxy must be back within a second or two.
      // (etcd3 declares an IBackoff but calls .next() on it first: a factory is what it wants.)
      watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 2000 }) as unknown as IBackoff<unknown>,
    },
  });
  madeWith.set(etcd, { hosts, security: options.security });
  requireLeader(etcd);
  if (options.security?.auth) renewTokenOnRefusal(etcd);
  return etcd;
}

/**
 * etcd's auth tokens expire (a simple token after --auth-token-ttl without use, 5 min by default;
 * a JWT at a fixed time). etcd3 fetches a new one when a unary call is refused with "invalid auth
 * token", but not when a stream is: a watch stream is authenticated once, when it opens, and every
 * watch created on it later is refused while it stays open — a proxy's route watch stayed down
 * for as long as that. So when a stream or a watch is refused that way, the cached token is
 * dropped, and a watch stream that refused a watch is reopened the way etcd3 reopens it after an
 * error (its watches are created again on the new stream, with a new token).
 *
 * Private etcd3 1.1.2 hooks, as in requireLeader: the pool's `markFailed` (every stream error),
 * the watch manager's `handleCancelResponse` (a watch refused on an open stream) and its
 * `handleError` (its reconnection). Without them we do without, as etcd3 alone does.
 */
interface PrivateEtcd {
  pool?: {
    markFailed?: (resource: unknown, error: unknown) => void;
    authenticator?: { invalidateMetadata?: () => void };
  };
  watchManager?: {
    state?: number;
    handleCancelResponse?: (watcher: unknown, res: { cancel_reason?: string }) => void;
    handleError?: (err: Error) => void;
  };
}

/** etcd3's WatchManager state "Connected" (its const enum State). */
const WATCH_CONNECTED = 2;

function renewTokenOnRefusal(etcd: Etcd3): boolean {
  const { pool, watchManager } = etcd as unknown as PrivateEtcd;
  const markFailed = pool?.markFailed;
  const onCancel = watchManager?.handleCancelResponse;
  const auth = pool?.authenticator;
  if (!pool || !watchManager || typeof markFailed !== 'function' || typeof onCancel !== 'function' || typeof watchManager.handleError !== 'function' || typeof auth?.invalidateMetadata !== 'function') return false;
  const refused = (reason: string | undefined) => /invalid auth token/.test(reason ?? '');
  pool.markFailed = (resource, error) => {
    if (refused(errorMessage(error))) auth.invalidateMetadata!();
    markFailed.call(pool, resource, error);
  };
  watchManager.handleCancelResponse = (watcher, res) => {
    onCancel.call(watchManager, watcher, res);
    if (!refused(res.cancel_reason)) return;
    auth.invalidateMetadata!();
    // Once per stream: the next refusal on it finds the manager reconnecting already.
    if (watchManager.state === WATCH_CONNECTED) watchManager.handleError!(new Error('etcd auth token expired: reopening the watch stream with a new one'));
  };
  return true;
}

/**
 * etcd's "require leader" (gRPC metadata `hasleader: true`): a member that has lost its Raft
 * leader (a minority side of a partition) refuses such calls at once with "no leader" (which
 * etcd3 treats as recoverable, so the call moves to another member) and cancels such watch
 * streams when it loses its leader, instead of keeping them open and silent.
 *
 * etcd3 1.1.2 has no option for it: every call's metadata comes from a private
 * `pool.authenticator.getMetadata()`. We wrap that method when it has the expected shape and
 * do without (logged by the caller via the return value) when a later etcd3 changes it.
 */
export function requireLeader(etcd: Etcd3): boolean {
  const auth = (etcd as unknown as { pool?: { authenticator?: { getMetadata?: () => Promise<{ clone(): { set(k: string, v: string): void } }> } } }).pool?.authenticator;
  const original = auth?.getMetadata;
  if (!auth || typeof original !== 'function') return false;
  auth.getMetadata = async () => {
    // The authenticator caches one metadata object when auth is on: never mutate the shared one.
    const md = (await original.call(auth)).clone();
    md.set('hasleader', 'true');
    return md as never;
  };
  return true;
}

/** Requests this process made through etcdCall (reads and writes; streams not counted). */
let requestsMade = 0;

/** How many etcd requests this process has made (the `cfgserver_etcd_requests_total` metric). */
export function etcdRequestsMade(): number {
  return requestsMade;
}

/** Runs an etcd call, converting driver errors (unreachable, deadline, refused, …) into our typed errors. */
export async function etcdCall<T>(what: string, fn: () => Promise<T>): Promise<T> {
  requestsMade++;
  try {
    return await fn();
  } catch (err) {
    throw etcdErrorOf(what, err);
  }
}

/**
 * gRPC's errors in a few plain words: "14 UNAVAILABLE: No connection established. Last error:
 * Error: connect ECONNREFUSED 127.0.0.1:2379. Resolution note: " becomes "connection refused
 * (127.0.0.1:2379)". Anything unrecognised is kept, cut at its first sentence.
 */
export function plainEtcdReason(err: unknown): string {
  const text = errorMessage(err);
  const socket = /(ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ECONNRESET|ETIMEDOUT|EAI_AGAIN)\s*(\S*?)\.?(\s|$)/.exec(text);
  if (socket) {
    const words: Record<string, string> = { ECONNREFUSED: 'connection refused', ENOTFOUND: 'host not found', EHOSTUNREACH: 'host unreachable', ECONNRESET: 'connection reset', ETIMEDOUT: 'connection timed out', EAI_AGAIN: 'name lookup failed' };
    return `${words[socket[1]!]}${socket[2] ? ` (${socket[2]})` : ''}`;
  }
  if (/DEADLINE_EXCEEDED|deadline/i.test(text)) return 'no answer within the deadline';
  if (/no leader/i.test(text)) return 'the etcd member has no leader (a minority side, or a cluster that lost quorum)';
  if (/UNAVAILABLE/.test(text)) return 'no etcd member could be reached';
  return text.replace(/^\d+ [A-Z_]+: /, '').split(/\.\s/)[0]!.trim();
}

/**
 * The one conversion of an etcd driver error: credentials that etcd refuses (a wrong password, no
 * permission on our prefix, a TLS handshake that failed) are EtcdAccessError, in one line that
 * names the setting to fix and no gRPC internals; anything else is EtcdUnavailableError.
 */
export function etcdErrorOf(what: string, err: unknown): CfgError {
  if (err instanceof CfgError) return err;
  if (err instanceof EtcdAuthenticationFailedError) {
    return new EtcdAccessError(`etcd refused the user name or password (${what}): check --etcd-user and the password (--etcd-password-file or $CFGSERVER_ETCD_PASSWORD)`, { cause: err });
  }
  if (err instanceof EtcdPermissionDeniedError) {
    return new EtcdAccessError(`etcd permission denied (${what}): the etcd user needs a role with readwrite on cfgserver's prefix (docs/security.md)`, { cause: err });
  }
  // etcd with authentication on, asked without a user (nor a client certificate to name one).
  if (err instanceof GRPCUnauthenticatedError || /etcdserver: user name is empty/.test(errorMessage(err))) {
    return new EtcdAccessError(`etcd requires authentication (${what}): ${grpcReason(err)}; give --etcd-user with a password, or a client certificate`, { cause: err });
  }
  if (err instanceof GRPCUnavailableError) {
    const reason = grpcReason(err);
    if (isTlsFailure(reason)) return new EtcdAccessError(`TLS with etcd failed (${what}): ${explainTlsFailure(reason)}`, { cause: err });
    return new EtcdUnavailableError(`etcd request failed (${what}): ${reason}`, { cause: err });
  }
  return new EtcdUnavailableError(`etcd request failed (${what}): ${errorMessage(err)}`, { cause: err });
}

/** Decodes one JSON value from etcd with a schema; anything else is a MalformedValueError. */
export function decodeKv<T extends z.ZodType>(kv: IKeyValue, schema: T): z.infer<T> {
  const key = kv.key.toString();
  let raw: unknown;
  try {
    raw = JSON.parse(kv.value.toString());
  } catch (err) {
    throw new MalformedValueError(key, `not JSON (${errorMessage(err)})`);
  }
  const result = schema.safeParse(raw);
  if (!result.success) throw new MalformedValueError(key, describeIssues(result.error));
  return result.data;
}

export type ProblemHandler = (err: MalformedValueError) => void;

/**
 * Decodes every value of a range read, in order; a value that does not decode is handed to
 * `onProblem` and skipped — one bad value never hides the others, nor crashes the reader.
 */
export function decodeAll<T extends z.ZodType, R = z.infer<T>>(kvs: IKeyValue[], schema: T, onProblem?: ProblemHandler, wrap?: (value: z.infer<T>, kv: IKeyValue) => R): R[] {
  const out: R[] = [];
  for (const kv of kvs) {
    try {
      const value = decodeKv(kv, schema);
      out.push(wrap ? wrap(value, kv) : (value as R));
    } catch (err) {
      if (err instanceof MalformedValueError) onProblem?.(err);
      else throw err;
    }
  }
  return out;
}

export function encode(value: unknown): string {
  return JSON.stringify(value);
}
