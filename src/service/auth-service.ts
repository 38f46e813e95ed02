/**
 * Redis credentials per cluster (docs/redis-auth.md): store them (`auth set`), say what is stored
 * without the secret (`auth show`), and rotate the password without downtime (`auth rotate`).
 * Shared by cfgctl and the HTTP API. No password ever reaches a message, a log or the history:
 * every Redis error is redacted before it leaves this file.
 *
 * A rotation, step by step (each recorded in the history):
 *  1. add    — the new password on every instance (`ACL SETUSER user >new`, the default user for
 *              requirepass), `masterauth` updated where it held the old one, persisted;
 *  2. store  — both passwords stored, the new one first: every controller and proxy switches to it
 *              for new connections and falls back to the old;
 *  3. adopt  — wait until every live controller and proxy reports the new version;
 *  4. remove — the old password off every instance (`ACL SETUSER user <old`; for requirepass
 *              `CONFIG SET requirepass new`), persisted;
 *  5. finish — only the new password stored.
 * A failure stops there with both passwords valid everywhere, and running the same rotation again
 * resumes it. A failed step 1 takes the new password back off the instances it reached.
 */
import { createHash } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import {
  aclUser,
  credentialsOf,
  isAuthFailure,
  redact,
  redisAuthSchema,
  redisPassword,
  redisUser,
  summarizeAuth,
  type AuthSummary,
  type Credentials,
  type RedisAuth,
} from '../model/auth.js';
import { RedisError, RefusedError, TimeoutError, ValidationError, errorMessage } from '../model/errors.js';
import { historyEntry } from '../model/history.js';
import { instancesOf } from '../model/route.js';
import { clusterName, describeIssues, parseInput, type Route } from '../model/schemas.js';
import { CredentialBook, fixedCredentials } from '../redis/credentials.js';
import { RedisPool } from '../redis/pool.js';
import { AuthStore } from '../store/auth-store.js';
import { ClusterStore } from '../store/cluster-store.js';
import { ControllerRegistry } from '../store/controller-registry.js';
import { HistoryStore } from '../store/history-store.js';
import type { Keys } from '../store/keys.js';
import { ProxyRegistry } from '../store/proxy-registry.js';

export interface AuthSetRequest {
  /** The ACL user; absent or null: the default user (requirepass). */
  user?: string | null;
  password: string;
}

export interface RotateOptions {
  /** How long step 3 waits for every controller and proxy (default 30 s). */
  adoptTimeoutMs?: number;
  /** Told each step as it is done (the CLI prints them). */
  onStep?: (step: string, detail: string) => void;
}

export interface AuthSetResult {
  summary: AuthSummary;
  /** Instances that could not be reached to check the credentials (not refused: unknown). */
  unchecked: string[];
}

export const DEFAULT_ADOPT_TIMEOUT_MS = 30_000;

export class AuthService {
  private readonly store: AuthStore;
  private readonly clusters: ClusterStore;
  private readonly history: HistoryStore;
  private readonly proxies: ProxyRegistry;
  private readonly controllers: ControllerRegistry;

  constructor(
    etcd: Etcd3,
    keys: Keys,
    /** Bounds every Redis command (connect included). */
    private readonly redisTimeoutMs = 3000,
  ) {
    this.store = new AuthStore(etcd, keys);
    this.clusters = new ClusterStore(etcd, keys);
    this.history = new HistoryStore(etcd, keys);
    this.proxies = new ProxyRegistry(etcd, keys);
    this.controllers = new ControllerRegistry(etcd, keys);
  }

  async show(name: string): Promise<AuthSummary> {
    const cluster = await this.route(name);
    return summarizeAuth((await this.store.read(cluster.cluster)).auth);
  }

  /**
   * Stores the credentials the instances already accept: checked first on every reachable
   * instance (one that refuses them refuses the whole request, nothing written).
   */
  async set(name: string, request: AuthSetRequest): Promise<AuthSetResult> {
    const route = await this.route(name);
    const credentials = parseCredentials(request.user, request.password);
    const { auth: before, revision } = await this.store.read(route.cluster);
    const unchecked: string[] = [];
    await this.withPool(credentials, async (pool) => {
      const refused: string[] = [];
      await Promise.all(
        instancesOf(route).map(async (address) => {
          try {
            await pool.call(address, 'PING');
          } catch (err) {
            if (isAuthFailure(errorMessage(err))) refused.push(address);
            else unchecked.push(address);
          }
        }),
      );
      if (refused.length > 0) throw new RefusedError(`${refused.sort().join(', ')} refused these credentials (wrong password or user); nothing stored`);
    });
    const auth = parseStored({ ...(credentials.user ? { user: credentials.user } : {}), passwords: [...credentials.passwords], version: (before?.version ?? 0) + 1, updatedAt: new Date().toISOString() });
    await this.store.write(route.cluster, auth, revision);
    await this.record(route.cluster, 'auth:set', `credentials stored (${userText(auth)}, version ${auth.version})${unchecked.length ? `; not checked on ${unchecked.sort().join(', ')} (unreachable)` : ''}`, 'done');
    return { summary: summarizeAuth(auth), unchecked: unchecked.sort() };
  }

  /** Replaces the password without downtime; see the file's comment for the steps. */
  async rotate(name: string, newPassword: string, options: RotateOptions = {}): Promise<AuthSummary> {
    const route = await this.route(name);
    const cluster = route.cluster;
    const password = parsePassword(newPassword);
    let { auth, revision } = await this.store.read(cluster);
    if (!auth) throw new RefusedError(`cluster ${cluster} has no stored credentials to rotate; store them first with cfgctl auth set ${cluster}`);
    const secrets = [password, ...auth.passwords];
    const step = async (what: string, detail: string) => {
      options.onStep?.(what, detail);
      await this.record(cluster, `auth:rotate:${what}`, detail, 'done');
    };
    try {
      const resuming = auth.passwords.length === 2;
      if (resuming && auth.passwords[0] !== password) {
        throw new RefusedError(`a rotation of ${cluster} to another password is under way; run auth rotate again with that password to finish it, or replace the credentials with auth set`);
      }
      if (!resuming && auth.passwords[0] === password) throw new RefusedError(`the new password of ${cluster} is the one in use; nothing to rotate`);
      const old = resuming ? auth.passwords[1]! : auth.passwords[0]!;
      const credentials = credentialsOf(auth);
      const instances = instancesOf(route);
      await this.withPool(credentials, async (pool) => {
        await this.addEverywhere(pool, instances, credentials, password, old, !resuming);
        await step('add', `the new password added on ${instances.length} instance(s), masterauth updated where it held the old one`);
        if (!resuming) {
          auth = parseStored({ ...auth!, passwords: [password, old], version: auth!.version + 1, updatedAt: new Date().toISOString() });
          revision = await this.store.write(cluster, auth, revision);
        }
        await step('store', `both passwords stored, the new one first (version ${auth!.version}): new connections use it, the old one still works`);
        await this.waitForAdoption(cluster, auth!.version, options.adoptTimeoutMs ?? DEFAULT_ADOPT_TIMEOUT_MS);
        await step('adopt', `every live controller and proxy uses version ${auth!.version}`);
        for (const address of instances) await this.removeOld(pool, address, credentials, password, old);
        await step('remove', `the old password removed from ${instances.length} instance(s)`);
      });
      auth = parseStored({ ...auth, passwords: [password], version: auth.version + 1, updatedAt: new Date().toISOString() });
      await this.store.write(cluster, auth, revision);
      await step('finish', `only the new password stored (version ${auth.version})`);
      return summarizeAuth(auth);
    } catch (err) {
      const message = redact(errorMessage(err), secrets);
      await this.record(cluster, 'auth:rotate', `rotation stopped: ${message}; every password stored is still valid`, 'failed').catch(() => undefined);
      if (err instanceof RefusedError || err instanceof ValidationError) throw err;
      if (err instanceof TimeoutError) throw new TimeoutError(message);
      throw new RedisError(`rotation of ${cluster} stopped, both passwords still valid; run the same rotation again to resume: ${message}`);
    }
  }

  /**
   * Step 1 on every instance, all or nothing: an instance that cannot take the new password makes
   * the others give it back (when `rollback`: a resumed rotation already stored it).
   */
  private async addEverywhere(pool: RedisPool, instances: string[], credentials: Credentials, password: string, old: string, rollback: boolean): Promise<void> {
    const added: string[] = [];
    try {
      for (const address of instances) {
        if (await this.addPassword(pool, address, credentials, password, old)) added.push(address);
      }
    } catch (err) {
      if (rollback) for (const address of added) await this.call(pool, address, [password, old], 'ACL', 'SETUSER', aclUser(credentials), `<${password}`).catch(() => undefined);
      throw err;
    }
  }

  /** Adds the new password (unless the user has it already); true when it added it. */
  private async addPassword(pool: RedisPool, address: string, credentials: Credentials, password: string, old: string): Promise<boolean> {
    const user = aclUser(credentials);
    const secrets = [password, old];
    const has = (await this.passwordHashes(pool, address, user, secrets)).has(sha256(password));
    if (!has) await this.call(pool, address, secrets, 'ACL', 'SETUSER', user, `>${password}`);
    // Replication keeps working after the old password goes: a slave's masterauth follows.
    const masterauth = await this.configValue(pool, address, 'masterauth', secrets);
    if (masterauth === old) await this.call(pool, address, secrets, 'CONFIG', 'SET', 'masterauth', password);
    await this.persist(pool, address, secrets);
    return !has;
  }

  private async removeOld(pool: RedisPool, address: string, credentials: Credentials, password: string, old: string): Promise<void> {
    const secrets = [password, old];
    if (credentials.user === null) {
      // requirepass is the default user's password: setting it leaves only the new one, and a
      // CONFIG REWRITE then writes the new one (an ACL change alone would leave the old in the file).
      await this.call(pool, address, secrets, 'CONFIG', 'SET', 'requirepass', password);
    } else if ((await this.passwordHashes(pool, address, credentials.user, secrets)).has(sha256(old))) {
      await this.call(pool, address, secrets, 'ACL', 'SETUSER', credentials.user, `<${old}`);
    }
    await this.persist(pool, address, secrets);
  }

  /** Makes the change survive a restart: ACL SAVE with an ACL file, CONFIG REWRITE with a config file. */
  private async persist(pool: RedisPool, address: string, secrets: string[]): Promise<void> {
    if (await this.configValue(pool, address, 'aclfile', secrets)) await this.call(pool, address, secrets, 'ACL', 'SAVE');
    const server = String(await this.call(pool, address, secrets, 'INFO', 'server'));
    if (/^config_file:\S+/m.test(server)) await this.call(pool, address, secrets, 'CONFIG', 'REWRITE');
  }

  private async passwordHashes(pool: RedisPool, address: string, user: string, secrets: string[]): Promise<Set<string>> {
    const reply = await this.call(pool, address, secrets, 'ACL', 'GETUSER', user);
    if (!Array.isArray(reply)) throw new RedisError(`${address}: ACL user ${user} does not exist`);
    const at = reply.findIndex((v) => String(v) === 'passwords');
    const list = at >= 0 ? reply[at + 1] : [];
    return new Set(Array.isArray(list) ? list.map(String) : []);
  }

  private async configValue(pool: RedisPool, address: string, key: string, secrets: string[]): Promise<string> {
    const reply = await this.call(pool, address, secrets, 'CONFIG', 'GET', key);
    return Array.isArray(reply) && reply.length >= 2 ? String(reply[1]) : '';
  }

  /** One Redis command whose errors never carry a secret (ACL SETUSER echoes its arguments). */
  private async call(pool: RedisPool, address: string, secrets: string[], command: string, ...args: string[]): Promise<unknown> {
    try {
      return await pool.call(address, command, ...args);
    } catch (err) {
      throw new RedisError(redact(errorMessage(err), secrets));
    }
  }

  /** Step 3: every live controller and proxy reports `version` (or its registration expires). */
  private async waitForAdoption(cluster: string, version: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const [proxies, controllers] = await Promise.all([this.proxies.list(cluster), this.controllers.list()]);
      const behind = [
        ...proxies.filter((p) => (p.authVersion ?? 0) < version).map((p) => `proxy ${p.id}`),
        ...controllers.filter((c) => (c.auth?.[cluster] ?? 0) < version).map((c) => `controller ${c.id}`),
      ];
      if (behind.length === 0) return;
      if (Date.now() >= deadline) throw new TimeoutError(`${behind.join(', ')} did not take the new password within ${timeoutMs} ms; the old one stays valid`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  private async withPool<T>(credentials: Credentials, fn: (pool: RedisPool) => Promise<T>): Promise<T> {
    const pool = new RedisPool({ timeoutMs: this.redisTimeoutMs, credentials: fixedCredentials(credentials) });
    try {
      return await fn(pool);
    } finally {
      pool.close();
    }
  }

  private async route(name: string): Promise<Route> {
    return (await this.clusters.get(parseInput(clusterName, name, 'cluster name'))).route;
  }

  private async record(cluster: string, action: string, reason: string, outcome: 'done' | 'failed'): Promise<void> {
    await this.history.append(historyEntry({ cluster, controller: 'admin', action, reason, outcome }));
  }
}

/**
 * Loads every cluster's credentials into `book` (cfgctl's pool reads live offsets with them). A
 * cluster whose value is malformed or unreadable keeps the environment fallback.
 */
export async function loadCredentials(book: CredentialBook, clusters: ClusterStore, store: AuthStore): Promise<void> {
  const listing = await clusters.list();
  for (const { spec, route } of listing.clusters) {
    const auth = await store.read(spec.name).then((s) => s.auth, () => null);
    book.update(spec.name, auth, instancesOf(route));
  }
}

function parseCredentials(user: string | null | undefined, password: string): Credentials {
  let name: string | null = null;
  if (user !== undefined && user !== null) {
    const parsed = redisUser.safeParse(user);
    if (!parsed.success) throw new ValidationError(`invalid user: ${describeIssues(parsed.error)}`);
    name = parsed.data === 'default' ? null : parsed.data;
  }
  return { user: name, passwords: [parsePassword(password)] };
}

function parsePassword(password: unknown): string {
  const parsed = redisPassword.safeParse(password);
  if (!parsed.success) throw new ValidationError(`invalid password: ${describeIssues(parsed.error)}`);
  return parsed.data;
}

function parseStored(value: unknown): RedisAuth {
  const parsed = redisAuthSchema.safeParse(value);
  if (!parsed.success) throw new ValidationError(`invalid credentials: ${describeIssues(parsed.error)}`);
  return parsed.data;
}

function userText(auth: RedisAuth): string {
  return auth.user ? `user ${auth.user}` : 'default user';
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
