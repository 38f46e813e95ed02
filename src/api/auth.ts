/**
 * The bearer-token check in front of the HTTP API. With a token set, every request that changes
 * something (POST, PUT, PATCH, DELETE) needs `Authorization: Bearer <token>`; with `authReads`,
 * every request does, except /healthz (what load balancers and orchestrators probe; it tells only
 * the replica's id and whether it leads) and the dashboard's page and files (below). A read-only
 * token, when set, is accepted on reads and refused (403) on changes. Without a token nothing is
 * checked, as before.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { ForbiddenError, UnauthorizedError } from '../model/errors.js';
import type { ApiSecurity } from './api-security.js';

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);
const OPEN_PATHS = new Set(['/healthz']);

/**
 * Compares in time that does not depend on where the strings differ, nor on their lengths: both
 * are hashed first, and timingSafeEqual compares the equal-length digests.
 */
export function tokenMatches(given: string, expected: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/** The token of an `Authorization: Bearer <token>` header, or null. */
export function bearerToken(header: string | undefined): string | null {
  const match = /^Bearer +(\S+) *$/i.exec(header ?? '');
  return match?.[1] ?? null;
}

function isRead(method: string): boolean {
  return READS.has(method.toUpperCase());
}

export function needsToken(security: Pick<ApiSecurity, 'token' | 'authReads'>, method: string, path: string): boolean {
  if (security.token === null || OPEN_PATHS.has(path)) return false;
  const read = isRead(method);
  // The dashboard's page and files hold no data (the page reads /v1/... with the token it is
  // given); a browser cannot send a token when it loads a page, so they are open even when reads
  // need the token.
  if (read && (path === '/' || path === '/ui' || path.startsWith('/ui/'))) return false;
  return security.authReads || !read;
}

export function requireToken(security: Pick<ApiSecurity, 'token' | 'authReads' | 'readToken'>): RequestHandler {
  return (req, res, next) => {
    if (!needsToken(security, req.method, req.path)) return next();
    const given = bearerToken(req.get('authorization'));
    res.set('WWW-Authenticate', 'Bearer realm="cfgserver"');
    // The error handler writes the API's usual {"error": {code, message}} with 401 (403 for the
    // read-only token on a change); the token given is never repeated back, nor logged.
    if (given === null) return next(new UnauthorizedError(`${req.method} ${req.path} needs the API token: Authorization: Bearer <token>`));
    if (tokenMatches(given, security.token!)) return next();
    if (security.readToken === null || !tokenMatches(given, security.readToken)) return next(new UnauthorizedError('the API token is wrong'));
    if (isRead(req.method)) return next();
    next(new ForbiddenError(`${req.method} ${req.path} changes something: the read-only API token cannot, the API token can`));
  };
}
