/**
 * The mover's own connections to Redis: long command timeouts (a batch of MIGRATE can take a
 * while), unlike the probe pool's, and errors that name the instance and the command (runOn).
 */
import { Redis } from 'ioredis';
import { splitAddress } from '../model/address.js';
import { followCredentials, ioredisAuth, type CredentialSource } from '../redis/credentials.js';
import { runOn } from '../redis/named-calls.js';

/** One connection per instance, opened on first use, all closed together. */
export class MoverConnections {
  private readonly clients = new Map<string, Redis>();

  constructor(private readonly options: { credentials?: CredentialSource; timeoutMs: number }) {}

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

function moverConnection(address: string, options: { credentials?: CredentialSource; timeoutMs: number }): Redis {
  const { host, port } = splitAddress(address);
  const client = new Redis({
    host,
    port,
    ...ioredisAuth(options.credentials?.(address) ?? null),
    connectTimeout: options.timeoutMs,
    commandTimeout: options.timeoutMs + 2000,
    maxRetriesPerRequest: 1,
    retryStrategy: (times) => Math.min(100 * times, 1000),
    connectionName: 'cfgserver-mover',
  });
  client.on('error', () => undefined); // failures are reported by the commands that hit them
  if (options.credentials) followCredentials(client, address, options.credentials);
  return client;
}

/**
 * How many of `wanted` slaves to WAIT for at `address`: no more than it has online now. A slave the
 * route names but that is down (a dead old master) would make every wait last its whole timeout.
 */
export async function slavesToWaitFor(address: string, client: Redis, wanted: number): Promise<number> {
  if (wanted === 0) return 0;
  const info = String(await runOn(address, 'INFO replication', () => client.info('replication')));
  return Math.min(wanted, info.split('\n').filter((line) => /^slave\d+:.*state=online/.test(line)).length);
}

/** The channel of the marker write that lets WAIT cover writes another connection made (a MIGRATE's RESTOREs). */
export const MOVER_CHANNEL = '__cfgserver:migration__';

/**
 * Waits until `slaves` slaves of `address` hold everything written to it so far, by anyone: WAIT
 * only covers the caller's own writes, so a PUBLISH (which Redis replicates) goes first. Returns how
 * many confirmed within `timeoutMs`.
 */
export async function waitForSlaves(address: string, client: Redis, slaves: number, timeoutMs: number): Promise<number> {
  if (slaves === 0) return 0;
  const replies = await runOn(address, 'PUBLISH+WAIT', () => client.pipeline().publish(MOVER_CHANNEL, '1').call('WAIT', String(slaves), String(timeoutMs)).exec());
  return Number(replies?.[1]?.[1] ?? 0);
}
