/**
 * Which credentials to use for which Redis instance, and how a connection follows them.
 *
 * Every instance belongs to one cluster, so the book maps an instance's address to its cluster's
 * stored credentials; a cluster without any falls back to the process-wide environment variable
 * `CFGSERVER_BACKEND_PASSWORD` (the old way, kept for deployments that have not stored any).
 */
import type { Redis } from 'ioredis';
import { isAuthFailure, type Credentials, type RedisAuth, credentialsOf } from '../model/auth.js';

/** Where a connection to `address` finds its credentials now (null: connect without AUTH). */
export type CredentialSource = (address: string) => Credentials | null;

/** The environment fallback: the default user with `$CFGSERVER_BACKEND_PASSWORD`, if set. */
export function environmentCredentials(password = process.env['CFGSERVER_BACKEND_PASSWORD']): Credentials | null {
  return password ? { user: null, passwords: [password] } : null;
}

/** A fixed set of credentials for every address (a one-off check, a rotation's own connections). */
export function fixedCredentials(credentials: Credentials | null): CredentialSource {
  return () => credentials;
}

export class CredentialBook {
  private readonly byCluster = new Map<string, RedisAuth>();
  private readonly clusterOf = new Map<string, string>();

  constructor(private readonly fallback: Credentials | null = environmentCredentials()) {}

  /**
   * Records a cluster's credentials (null: none stored; undefined: keep those known) and its
   * instances. Returns true when the version in use changed.
   */
  update(cluster: string, auth: RedisAuth | null | undefined, addresses: Iterable<string>): boolean {
    for (const a of addresses) this.clusterOf.set(a, cluster);
    const before = this.byCluster.get(cluster)?.version ?? null;
    if (auth === undefined) return false;
    if (auth) this.byCluster.set(cluster, auth);
    else this.byCluster.delete(cluster);
    return before !== (auth?.version ?? null);
  }

  /** Forgets clusters not in `names` (deleted). */
  retain(names: Set<string>): void {
    for (const name of this.byCluster.keys()) if (!names.has(name)) this.byCluster.delete(name);
    for (const [address, name] of this.clusterOf) if (!names.has(name)) this.clusterOf.delete(address);
  }

  /** The version of a cluster's credentials in use (null: none stored). */
  version(cluster: string): number | null {
    return this.byCluster.get(cluster)?.version ?? null;
  }

  /** Every cluster with stored credentials and the version in use. */
  versions(): Record<string, number> {
    return Object.fromEntries([...this.byCluster].map(([name, auth]) => [name, auth.version]));
  }

  readonly forAddress: CredentialSource = (address) => {
    const cluster = this.clusterOf.get(address);
    const auth = cluster === undefined ? undefined : this.byCluster.get(cluster);
    return auth ? credentialsOf(auth) : this.fallback;
  };
}

/** ioredis's own connection options for the first of `credentials`' passwords. */
export function ioredisAuth(credentials: Credentials | null): { username?: string; password?: string } {
  const password = credentials?.passwords[0];
  if (password === undefined) return {};
  return credentials!.user === null ? { password } : { username: credentials!.user, password };
}

/**
 * Makes an ioredis client follow `source` for `address`: every (re)connection authenticates with
 * the credentials in use then, the first password first; an authentication failure moves on to
 * the next password for the next attempt (during a rotation an instance may know only one of the
 * two). A connection already authenticated stays so: Redis does not log out a connection whose
 * password is removed, so nothing needs to reconnect when the credentials change.
 */
export function followCredentials(client: Redis, address: string, source: CredentialSource): void {
  let tried = 0;
  let last = '';
  const set = (credentials: Credentials | null, index: number) => {
    const password = credentials?.passwords[index];
    client.options.username = password === undefined || credentials!.user === null ? undefined : credentials!.user;
    client.options.password = password;
  };
  const current = () => {
    const credentials = source(address);
    const fingerprint = credentials ? `${credentials.user ?? ''}\n${credentials.passwords.join('\n')}` : '';
    if (fingerprint !== last) {
      last = fingerprint;
      tried = 0;
    }
    return credentials;
  };
  // Before every connection attempt ('reconnecting' comes before it; the first uses the options given).
  client.on('reconnecting', () => set(current(), tried));
  client.on('error', (err: Error) => {
    if (!isAuthFailure(err.message)) return;
    const credentials = current();
    tried = credentials && credentials.passwords.length > 0 ? (tried + 1) % credentials.passwords.length : 0;
    set(credentials, tried);
  });
  set(current(), 0);
}
