/**
 * The HTTP API's protection: a bearer token (required on every mutating request when set, on
 * reads too with `authReads`), a second, read-only token that reads accept (for dashboards,
 * Prometheus and proxies: whoever holds it cannot change anything), and optional TLS. Loaded at
 * start-up, and again from the same files on SIGHUP; a bad file is a clear error that names the
 * option, never the secret.
 */
import { ValidationError } from '../model/errors.js';
import { readCertificateAndKey, readSecretFile } from '../util/setting-file.js';

export const API_TOKEN_ENV = 'CFGSERVER_API_TOKEN';
export const API_READ_TOKEN_ENV = 'CFGSERVER_API_READ_TOKEN';
/** Shorter tokens are refused: a token is a password that scripts keep, so it can be long. */
export const MIN_TOKEN_LENGTH = 16;

export interface ApiSecuritySettings {
  /** File holding the token; else $CFGSERVER_API_TOKEN; else no token (the API is open, as before). */
  tokenFile?: string;
  /** Reads need the token too. */
  authReads?: boolean;
  /** File holding the read-only token; else $CFGSERVER_API_READ_TOKEN; else none. Needs `authReads`. */
  readTokenFile?: string;
  tlsCert?: string;
  tlsKey?: string;
}

export interface ApiSecurity {
  token: string | null;
  authReads: boolean;
  /** Accepted on reads (GET, HEAD, OPTIONS) only. */
  readToken: string | null;
  tls?: { cert: Buffer; key: Buffer };
}

/** The token from `tokenFile` or the environment, checked; null when neither gives one. */
export function loadApiToken(tokenFile: string | undefined, env: NodeJS.ProcessEnv = process.env, option = '--api-token-file', envName = API_TOKEN_ENV): string | null {
  const token = tokenFile !== undefined ? readSecretFile(option, tokenFile) : env[envName] || null;
  if (token === null) return null;
  const from = tokenFile !== undefined ? `${option} ${tokenFile}` : `$${envName}`;
  if (token.length < MIN_TOKEN_LENGTH) throw new ValidationError(`the API token (${from}) must be at least ${MIN_TOKEN_LENGTH} characters`);
  if (/\s/.test(token)) throw new ValidationError(`the API token (${from}) must not contain spaces`);
  return token;
}

export function loadApiSecurity(settings: ApiSecuritySettings, env: NodeJS.ProcessEnv = process.env): ApiSecurity {
  const token = loadApiToken(settings.tokenFile, env);
  const authReads = settings.authReads ?? false;
  if (authReads && token === null) throw new ValidationError(`--api-auth-reads needs a token: --api-token-file FILE or $${API_TOKEN_ENV}`);
  const readToken = loadApiToken(settings.readTokenFile, env, '--api-read-token-file', API_READ_TOKEN_ENV);
  // Without --api-auth-reads reads need no token: a read-only one would protect nothing.
  if (readToken !== null && !authReads) throw new ValidationError('a read-only API token (--api-read-token-file or $' + API_READ_TOKEN_ENV + ') needs --api-auth-reads: without it reads need no token');
  if (readToken !== null && readToken === token) throw new ValidationError('the read-only API token must differ from the API token');
  if ((settings.tlsCert === undefined) !== (settings.tlsKey === undefined)) throw new ValidationError('--api-tls-cert and --api-tls-key go together');
  const security: ApiSecurity = { token, authReads, readToken };
  if (settings.tlsCert !== undefined && settings.tlsKey !== undefined) security.tls = readCertificateAndKey('--api-tls-cert', settings.tlsCert, '--api-tls-key', settings.tlsKey);
  return security;
}

/**
 * Reads the same files again (SIGHUP) and puts what they hold now into `current`, which the API's
 * token check reads on every request: new tokens count from the next request. A bad file throws
 * and changes nothing. The caller gives a new certificate to its https server.
 */
export function reloadApiSecurity(current: ApiSecurity, settings: ApiSecuritySettings, env: NodeJS.ProcessEnv = process.env): ApiSecurity {
  const fresh = loadApiSecurity(settings, env);
  current.token = fresh.token;
  current.readToken = fresh.readToken;
  if (fresh.tls) current.tls = fresh.tls;
  return current;
}
