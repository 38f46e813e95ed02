/**
 * The etcd client as cfgserver uses it: deadlines on every unary call, a short watch
 * reconnect backoff, and one conversion of driver errors into our typed errors.
 */
import { ConsecutiveBreaker, ExponentialBackoff, circuitBreaker, handleWhen, retry, type IBackoff } from 'cockatiel';
import { Etcd3, isRecoverableError, type IKeyValue } from 'etcd3';
import type { z } from 'zod';
import { CfgError, EtcdUnavailableError, MalformedValueError, errorMessage } from '../model/errors.js';
import { describeIssues } from '../model/schemas.js';

export const DEFAULT_ETCD = 'http://127.0.0.1:2379';

export interface EtcdOptions {
  /** Comma-separated or list of endpoints; `http://` is added when missing. */
  endpoints: string | string[];
  /** Deadline of each unary call. */
  callTimeoutMs?: number;
  /** Retries of a recoverable failure (on another endpoint when there are several). */
  retries?: number;
}

export function parseEndpoints(endpoints: string | string[]): string[] {
  const list = (Array.isArray(endpoints) ? endpoints : endpoints.split(','))
    .map((e) => e.trim())
    .filter(Boolean)
    .map((e) => (/^https?:\/\//.test(e) ? e : `http://${e}`));
  if (list.length === 0) throw new EtcdUnavailableError('no etcd endpoint given');
  return list;
}

/** The endpoints each client made by createEtcd was given: sessions keep their leases alive on each in turn. */
const endpointsOfClient = new WeakMap<Etcd3, string[]>();

export function endpointsOf(etcd: Etcd3): string[] | undefined {
  return endpointsOfClient.get(etcd);
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
  const hosts = parseEndpoints(options.endpoints);
  const etcd = new Etcd3({
    hosts,
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
  endpointsOfClient.set(etcd, hosts);
  requireLeader(etcd);
  return etcd;
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

/** Runs an etcd call, converting driver errors (unreachable, deadline, …) into EtcdUnavailableError. */
export async function etcdCall<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof CfgError) throw err;
    throw new EtcdUnavailableError(`etcd request failed (${what}): ${plainEtcdReason(err)}`, { cause: err });
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
