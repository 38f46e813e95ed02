/**
 * The chaos runner's knobs: a short profile that CI runs (every fault kind once, about two and a
 * half minutes on a 2-core machine) and a long one run by hand. Flags override a profile's values.
 */
import { argNumber, argText } from '../common.js';

export const FAULT_KINDS = [
  'kill -9 master',
  'SIGSTOP master',
  'kill -9 leader controller',
  'SIGSTOP leader controller',
  'kill -9 proxy',
  'SIGSTOP proxy',
  'kill -9 etcd member',
  'SIGSTOP etcd member',
  'cut etcd member',
  'SIGSTOP master, proxy cut off',
  'switchover',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface Profile {
  name: 'short' | 'long';
  /** Rounds: each round runs every fault kind once, in an order the seed shuffles. */
  rounds: number;
  /** Quiet time after each fault once the cluster is healthy again, before the next one. */
  settleMs: number;
  /** Writers of increasing sequence numbers (each owns `keysPerWriter` keys), and of unique keys. */
  seqWriters: number;
  uniqueWriters: number;
  keysPerWriter: number;
  /** Commands each writer keeps in flight on its one connection. */
  depth: number;
  /** Acknowledged-or-not commands per second per writer, at most: the machine has 2 cores to share. */
  ratePerWriter: number;
  /** The whole run stops injecting faults after this (the load is bounded by it too). */
  maxRunMs: number;
  seed: number;
  keep: boolean;
}

const PROFILES: Record<Profile['name'], Omit<Profile, 'seed' | 'keep'>> = {
  short: { name: 'short', rounds: 1, settleMs: 2000, seqWriters: 2, uniqueWriters: 2, keysPerWriter: 50, depth: 4, ratePerWriter: 300, maxRunMs: 150_000 },
  long: { name: 'long', rounds: 4, settleMs: 5000, seqWriters: 4, uniqueWriters: 2, keysPerWriter: 200, depth: 4, ratePerWriter: 400, maxRunMs: 20 * 60_000 },
};

export function profileFromArgs(): Profile {
  const name = argText('profile', 'short');
  if (name !== 'short' && name !== 'long') throw new Error(`--profile must be short or long, not ${JSON.stringify(name)}`);
  const base = PROFILES[name];
  const seed = argNumber('seed', Math.floor(Math.random() * 2 ** 31));
  if (!Number.isInteger(seed)) throw new Error('--seed must be a whole number');
  return {
    ...base,
    rounds: argNumber('rounds', base.rounds),
    settleMs: argNumber('settle-ms', base.settleMs),
    ratePerWriter: argNumber('rate', base.ratePerWriter),
    seed,
    keep: process.argv.includes('--keep'),
  };
}

/** mulberry32: a small seeded generator, so that a run's fault order and targets can be replayed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

export function shuffled<T>(random: () => number, items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
