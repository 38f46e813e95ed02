/**
 * The mover's own connections to Redis: long command timeouts (a batch of MIGRATE can take a
 * while), unlike the probe pool's, and errors that name the instance and the command.
 */
import { Redis } from 'ioredis';
import { splitAddress } from '../model/address.js';
import { RedisError, errorMessage } from '../model/errors.js';

/** One connection per instance, opened on first use, all closed together. */
export class MoverConnections {
  private readonly clients = new Map<string, Redis>();

  constructor(private readonly options: { password?: string; timeoutMs: number }) {}

  get(address: string): Redis {
    let client = this.clients.get(address);
    if (!client) this.clients.set(address, (client = moverConnection(address, this.options)));
    return client;
  }

  close(): void {
    for (const c of this.clients.values()) c.disconnect();
    this.clients.clear();
  }
}

function moverConnection(address: string, options: { password?: string; timeoutMs: number }): Redis {
  const { host, port } = splitAddress(address);
  const client = new Redis({
    host,
    port,
    password: options.password,
    connectTimeout: options.timeoutMs,
    commandTimeout: options.timeoutMs + 2000,
    maxRetriesPerRequest: 1,
    retryStrategy: (times) => Math.min(100 * times, 1000),
    connectionName: 'cfgserver-mover',
  });
  client.on('error', () => undefined); // failures are reported by the commands that hit them
  return client;
}

/** Runs one call, turning any failure into a RedisError that names the instance and what failed. */
export async function runOn<T>(address: string, what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw new RedisError(`${address}: ${what} failed: ${errorMessage(err)}`, { cause: err });
  }
}

/** Slaves that `address` (connected through `client`) has online now, from its INFO. */
export async function onlineSlaves(address: string, client: Redis): Promise<number> {
  const info = String(await runOn(address, 'INFO replication', () => client.info('replication')));
  return info.split('\n').filter((line) => /^slave\d+:.*state=online/.test(line)).length;
}
