/**
 * The one mapping from typed errors to HTTP statuses.
 */
import type { ErrorRequestHandler } from 'express';
import { CfgError, ValidationError, errorMessage, type ErrorCode } from '../model/errors.js';

const STATUS: Record<ErrorCode, number> = {
  VALIDATION: 400,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  CONFLICT: 409,
  REFUSED: 422,
  NOT_LEADER: 503,
  ETCD_UNAVAILABLE: 503,
  MALFORMED_VALUE: 500,
  REDIS: 502,
  TASK_FAILED: 500,
  TIMEOUT: 504,
  ETCD_ACCESS: 503,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
};

export function httpStatusOf(err: unknown): number {
  return err instanceof CfgError ? STATUS[err.code] : 500;
}

export const errorHandler: ErrorRequestHandler = (err, _req, res, _next) => {
  // express.json() reports a body it cannot read (not JSON, too large) with a 4xx status: the
  // client's mistake, said as one.
  if (!(err instanceof CfgError) && typeof err?.status === 'number' && err.status >= 400 && err.status < 500) {
    // A body that is not JSON: the parser's message quotes the body, which may hold a password.
    const message = err.type === 'entity.parse.failed' ? 'the request body is not valid JSON' : errorMessage(err);
    res.status(err.status).json({ error: { code: 'VALIDATION', message } });
    return;
  }
  res.status(err instanceof CfgError ? httpStatusOf(err) : 500).json({ error: { code: err instanceof CfgError ? err.code : 'INTERNAL', message: errorMessage(err) } });
};

/** A whole-number query parameter in a range (its default when absent); anything else is a ValidationError. */
export function intQuery(value: unknown, name: string, range: { min: number; max: number; fallback: number }): number {
  if (value === undefined) return range.fallback;
  const n = typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < range.min || n > range.max) throw new ValidationError(`?${name}= must be a whole number from ${range.min} to ${range.max}, not ${JSON.stringify(value)}`);
  return n;
}
