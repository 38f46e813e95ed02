/**
 * Probing: `INFO replication` on every instance, in parallel under a concurrency cap and a short
 * timeout, so that one dead host cannot stall a round.
 */
import { performance } from 'node:perf_hooks';
import { errorMessage } from '../model/errors.js';
import { replicationInfo } from '../redis/commands.js';
import type { Observation, Observations } from '../model/observations.js';
import type { RedisPool } from '../redis/pool.js';
import { withTimeout } from '../util/timeout.js';

/** A counting semaphore shared by all probes of a controller. */
export class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly max: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

export async function probe(pool: RedisPool, address: string, timeoutMs: number): Promise<Observation> {
  const start = performance.now();
  try {
    const info = await withTimeout(replicationInfo(pool, address), timeoutMs, `probe of ${address}`);
    return { address, at: new Date(), latencyMs: performance.now() - start, info, error: null };
  } catch (err) {
    return { address, at: new Date(), latencyMs: performance.now() - start, info: null, error: errorMessage(err) };
  }
}

/** Probes every address (in parallel, capped by `limiter`). */
export async function probeAll(pool: RedisPool, limiter: Limiter, addresses: string[], timeoutMs: number): Promise<Observations> {
  const results = await Promise.all(addresses.map((a) => limiter.run(() => probe(pool, a, timeoutMs))));
  return new Map(results.map((o) => [o.address, o]));
}
