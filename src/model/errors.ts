/**
 * Typed errors. Every error that crosses a module boundary is one of these, so that the CLI
 * and the HTTP API can map them to an exit code / status in one place.
 */
export type ErrorCode =
  | 'VALIDATION'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'CONFLICT'
  | 'REFUSED'
  | 'NOT_LEADER'
  | 'ETCD_UNAVAILABLE'
  | 'MALFORMED_VALUE'
  | 'REDIS'
  | 'TASK_FAILED'
  | 'TIMEOUT'
  | 'ETCD_ACCESS'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN';

export abstract class CfgError extends Error {
  abstract readonly code: ErrorCode;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Input from a user (CLI flag, HTTP body, YAML file) that does not satisfy the schema. */
export class ValidationError extends CfgError {
  readonly code = 'VALIDATION';
}

export class NotFoundError extends CfgError {
  readonly code = 'NOT_FOUND';
}

export class AlreadyExistsError extends CfgError {
  readonly code = 'ALREADY_EXISTS';
}

/** An optimistic-concurrency check failed: somebody else changed what we read. */
export class ConflictError extends CfgError {
  readonly code = 'CONFLICT';
}

/** The request is well formed but not allowed in the current state (e.g. removing a shard that owns slots). */
export class RefusedError extends CfgError {
  readonly code = 'REFUSED';
}

/** A fenced write was rejected, or a leader-only action was attempted without the lock. */
export class NotLeaderError extends CfgError {
  readonly code = 'NOT_LEADER';
}

export class EtcdUnavailableError extends CfgError {
  readonly code = 'ETCD_UNAVAILABLE';
}

/**
 * etcd answered but refused us: a wrong user name or password, a role without permission on our
 * prefix, a TLS handshake that failed (a CA that does not match, a client certificate refused).
 * Retrying does not help; the operator must change the credentials.
 */
export class EtcdAccessError extends CfgError {
  readonly code = 'ETCD_ACCESS';
}

/** An HTTP API request without the bearer token it needs, or with a wrong one. */
export class UnauthorizedError extends CfgError {
  readonly code = 'UNAUTHORIZED';
}

/** An HTTP API request whose token is right but may not do this (the read-only token on a change). */
export class ForbiddenError extends CfgError {
  readonly code = 'FORBIDDEN';
}

/** A value read from etcd that does not decode: reported and skipped, never fatal. */
export class MalformedValueError extends CfgError {
  readonly code = 'MALFORMED_VALUE';
  constructor(
    readonly key: string,
    detail: string,
  ) {
    super(`malformed value at ${key}: ${detail}`);
  }
}

/** A Redis instance failed or answered something we cannot interpret. */
export class RedisError extends CfgError {
  readonly code = 'REDIS';
}

/** A task (failover, switchover) ended in failure. */
export class TaskFailedError extends CfgError {
  readonly code = 'TASK_FAILED';
}

/** Waited long enough; the thing waited for may still happen. */
export class TimeoutError extends CfgError {
  readonly code = 'TIMEOUT';
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
