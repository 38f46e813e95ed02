/**
 * The mover's own connections to Redis: long command timeouts (a batch of MIGRATE can take a
 * while), unlike the probe pool's, and errors that name the instance and the command.
 */
import { Redis } from 'ioredis';
import { splitAddress } from '../model/address.js';
import { RedisError, errorMessage } from '../model/errors.js';
import { followCredentials, ioredisAuth, type CredentialSource } from '../redis/credentials.js';

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

/** Runs one call, turning any failure into a RedisError that names the instance and what failed. */
export async function runOn<T>(address: string, what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw new RedisError(`${address}: ${what} failed: ${errorMessage(err)}`, { cause: err });
  }
}

/**
 * Every page of a whole SCAN of `address` (COUNT `count`). The next page is asked for as soon as
 * this one is yielded, so that its round trip overlaps the caller's work on this one; a caller that
 * stops early leaves that request answered and ignored.
 */
export async function* scanPages(address: string, client: Redis, count: number): AsyncGenerator<Buffer[]> {
  const scan = (cursor: string) => runOn(address, 'SCAN', () => client.scanBuffer(cursor, 'COUNT', count)) as Promise<[Buffer, Buffer[]]>;
  let page = scan('0');
  for (;;) {
    const [next, keys] = await page;
    const cursor = next.toString();
    if (cursor !== '0') (page = scan(cursor)).catch(() => undefined);
    yield keys;
    if (cursor === '0') return;
  }
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
