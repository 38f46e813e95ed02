/**
 * One long-lived connection per Redis instance, for probes and admin commands. Commands fail fast
 * while an instance is down (no offline queue, no retries): a probe must report, not wait.
 */
import { Redis } from 'ioredis';
import { splitAddress } from '../model/address.js';
import { RedisError, errorMessage } from '../model/errors.js';
import { followCredentials, ioredisAuth, type CredentialSource } from './credentials.js';

export interface RedisPoolOptions {
  /** Connect and command timeout. */
  timeoutMs: number;
  /** The credentials of each instance (none: connect without AUTH). */
  credentials?: CredentialSource;
  /** Awaited once before the first connection (e.g. loading the credentials from etcd). */
  prepare?: () => Promise<void>;
}

export class RedisPool {
  private readonly clients = new Map<string, Redis>();
  private prepared: Promise<void> | null = null;

  constructor(private readonly options: RedisPoolOptions) {}

  client(address: string): Redis {
    let client = this.clients.get(address);
    if (!client) {
      const { host, port } = splitAddress(address);
      const credentials = this.options.credentials;
      client = new Redis({
        host,
        port,
        ...ioredisAuth(credentials?.(address) ?? null),
        connectTimeout: this.options.timeoutMs,
        commandTimeout: this.options.timeoutMs,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        // Reconnect quickly: a master that comes back must be seen within one probe interval.
        retryStrategy: (times) => Math.min(50 * times, 500),
        lazyConnect: false,
        connectionName: 'cfgserver',
      });
      client.on('error', () => undefined); // failures are reported by the commands that hit them
      if (credentials) followCredentials(client, address, credentials);
      this.clients.set(address, client);
    }
    return client;
  }

  /** Runs one command, converting every failure into a RedisError that names the instance. */
  async call(address: string, command: string, ...args: (string | number)[]): Promise<unknown> {
    try {
      await this.prepare();
      const client = this.client(address);
      // Without an offline queue a command sent while (re)connecting fails at once: wait for the
      // connection instead, so that a fresh or just-restarted instance is not reported down.
      if (client.status !== 'ready') await this.ready(client);
      return await client.call(command, ...args);
    } catch (err) {
      throw new RedisError(`${address}: ${command} failed: ${errorMessage(err)}`, { cause: err });
    }
  }

  /**
   * Runs the `prepare` option once (loading credentials): callers that time each command call it
   * first, so that the loading does not count against an instance.
   */
  async prepare(): Promise<void> {
    if (this.options.prepare) await (this.prepared ??= this.options.prepare());
  }

  private ready(client: Redis): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`not connected within ${this.options.timeoutMs} ms (${client.status})`)), this.options.timeoutMs);
      const onReady = () => done();
      // A refused or reset connection fails the wait at once: a dead instance answers fast.
      const onError = (err: Error) => done(err);
      const done = (err?: Error) => {
        clearTimeout(timer);
        client.off('ready', onReady);
        client.off('error', onError);
        if (err) reject(err);
        else resolve();
      };
      client.on('ready', onReady);
      client.on('error', onError);
    });
  }

  /** Forgets instances no longer in any route. */
  retain(addresses: Set<string>): void {
    for (const [address, client] of this.clients) {
      if (!addresses.has(address)) {
        client.disconnect();
        this.clients.delete(address);
      }
    }
  }

  close(): void {
    for (const client of this.clients.values()) client.disconnect();
    this.clients.clear();
  }
}
