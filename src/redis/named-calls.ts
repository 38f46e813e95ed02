/**
 * Calls to one Redis instance whose failures name it: a single call (runOn), and a whole SCAN
 * (scanPages). Shared by the slot mover, the big-key survey and a split's trim.
 */
import type { Redis } from 'ioredis';
import { RedisError, errorMessage } from '../model/errors.js';

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
