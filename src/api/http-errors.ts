/**
 * The one mapping from typed errors to HTTP statuses.
 */
import type { ErrorRequestHandler } from 'express';
import { CfgError, errorMessage, type ErrorCode } from '../model/errors.js';

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
};

export function httpStatusOf(err: unknown): number {
  return err instanceof CfgError ? STATUS[err.code] : 500;
}

export const errorHandler: ErrorRequestHandler = (err, _req, res, _next) => {
  // express.json() reports a bad body as a SyntaxError with a status of 400.
  const status = err instanceof CfgError ? httpStatusOf(err) : typeof err?.status === 'number' ? err.status : 500;
  res.status(status).json({ error: { code: err instanceof CfgError ? err.code : 'INTERNAL', message: errorMessage(err) } });
};
