/**
 * The settings a split changes for its full sync (src/controller/splits/split-sync-settings.ts): what is
 * recorded, what is set, what is put back — after the sync, after an abort, by a new leader —
 * against an in-memory CONFIG of two instances.
 */
import { describe, expect, it } from 'vitest';
import { SYNC_SETTINGS, applySyncSettings, restoreSyncSettings, settingsToChange, type SyncSettings } from '../../src/controller/splits/split-sync-settings.js';
import type { SplitRecord } from '../../src/model/split.js';

const SOURCE = 'h:1';
const NEW = 'h:9';

/** CONFIG GET / SET / REWRITE of a few instances; an address in `down` refuses every call. */
function fakePool(configs: Record<string, Record<string, string>>) {
  const down = new Set<string>();
  const rewrites: string[] = [];
  return {
    down,
    rewrites,
    configs,
    async call(address: string, command: string, ...args: (string | number)[]): Promise<unknown> {
      if (down.has(address)) throw new Error(`connect ECONNREFUSED ${address}`);
      const config = configs[address]!;
      const sub = String(args[0]);
      if (command !== 'CONFIG') throw new Error(`unexpected ${command}`);
      if (sub === 'GET') return args.slice(1).flatMap((k) => (config[String(k)] === undefined ? [] : [String(k), config[String(k)]]));
      if (sub === 'SET') {
        for (let i = 1; i + 1 < args.length; i += 2) config[String(args[i])] = String(args[i + 1]);
        return 'OK';
      }
      if (sub === 'REWRITE') {
        rewrites.push(address);
        return 'OK';
      }
      throw new Error(`unexpected CONFIG ${sub}`);
    },
  };
}

/** Redis 7.0's defaults, as a production instance has them. */
function defaults(): Record<string, string> {
  return { 'repl-diskless-sync': 'yes', 'repl-diskless-sync-delay': '5', rdbcompression: 'yes', 'repl-diskless-load': 'disabled' };
}

/** A split record whose `syncSettings` the `save` callback keeps, as the run's fenced update does. */
function splitHolder(syncSettings: SyncSettings | null = null) {
  let split = { sourceMaster: SOURCE, shard: { id: 's1', master: NEW, slaves: [] }, syncSettings } as unknown as SplitRecord;
  const saves: SyncSettings[] = [];
  return {
    get split() {
      return split;
    },
    saves,
    save: async (s: SyncSettings) => {
      saves.push(s);
      split = { ...split, syncSettings: s };
    },
  };
}

describe('settingsToChange', () => {
  it('names each parameter that differs with its value now; equal and unknown ones are left alone', () => {
    expect(settingsToChange(SYNC_SETTINGS.source, new Map(Object.entries(defaults())))).toEqual({ 'repl-diskless-sync-delay': '5', rdbcompression: 'yes' });
    expect(settingsToChange(SYNC_SETTINGS.source, new Map([['repl-diskless-sync-delay', '0']]))).toEqual({});
  });
});

describe('split sync settings', () => {
  it('records the values before setting the split ones, and puts them back after the sync', async () => {
    const pool = fakePool({ [SOURCE]: { ...defaults(), 'repl-diskless-sync': 'no' }, [NEW]: defaults() });
    const h = splitHolder();
    const text = await applySyncSettings(pool, h.split, h.save);
    expect(h.saves[0]).toEqual({ source: { 'repl-diskless-sync': 'no', 'repl-diskless-sync-delay': '5', rdbcompression: 'yes' }, shard: { 'repl-diskless-load': 'disabled' }, restored: false });
    expect(pool.configs[SOURCE]).toMatchObject({ 'repl-diskless-sync': 'yes', 'repl-diskless-sync-delay': '0', rdbcompression: 'no' });
    expect(pool.configs[NEW]!['repl-diskless-load']).toBe('on-empty-db');
    expect(text).toMatch(/repl-diskless-sync-delay 0.* on h:1 \(was .*repl-diskless-sync-delay 5/);

    const back = await restoreSyncSettings(pool, h.split, h.save);
    expect(back.complete).toBe(true);
    expect(pool.configs[SOURCE]).toEqual({ ...defaults(), 'repl-diskless-sync': 'no' });
    expect(pool.configs[NEW]).toEqual(defaults());
    // Setting them was never rewritten to a file; putting them back is, on both sides (the attach's
    // REPLICAOF rewrote the new master's file, the config applier may have rewritten the source's).
    expect(pool.rewrites).toEqual([SOURCE, NEW]);
    expect(h.split.syncSettings?.restored).toBe(true);
    // Nothing is put back twice, nor set again once put back.
    pool.configs[SOURCE]!['repl-diskless-sync-delay'] = '7';
    expect(await restoreSyncSettings(pool, h.split, h.save)).toEqual({ complete: true, text: '' });
    expect(await applySyncSettings(pool, h.split, h.save)).toBe('');
    expect(pool.configs[SOURCE]!['repl-diskless-sync-delay']).toBe('7');
  });

  it('a new leader running the attach again keeps the first values (not the split ones it finds)', async () => {
    const pool = fakePool({ [SOURCE]: defaults(), [NEW]: defaults() });
    const first = splitHolder();
    await applySyncSettings(pool, first.split, first.save);
    // The next leader reads the record the first one wrote, and finds the split's values in Redis.
    const next = splitHolder(first.split.syncSettings);
    await applySyncSettings(pool, next.split, next.save);
    expect(next.saves).toEqual([]);
    await restoreSyncSettings(pool, next.split, next.save);
    expect(pool.configs[SOURCE]).toEqual(defaults());
    expect(pool.configs[NEW]).toEqual(defaults());
  });

  it('after an abort with the source down: the new master is put back, the source reported, the record not marked restored', async () => {
    const pool = fakePool({ [SOURCE]: defaults(), [NEW]: defaults() });
    const h = splitHolder();
    await applySyncSettings(pool, h.split, h.save);
    pool.down.add(SOURCE);
    const back = await restoreSyncSettings(pool, h.split, h.save);
    expect(back.complete).toBe(false);
    expect(back.text).toMatch(/settings put back: repl-diskless-load disabled on h:9; settings NOT put back \(h:1: connect ECONNREFUSED/);
    expect(pool.configs[NEW]).toEqual(defaults());
    expect(h.split.syncSettings?.restored).toBe(false);
    // Once the source answers again, a second attempt completes.
    pool.down.delete(SOURCE);
    expect((await restoreSyncSettings(pool, h.split, h.save)).complete).toBe(true);
    expect(pool.configs[SOURCE]).toEqual(defaults());
    expect(h.split.syncSettings?.restored).toBe(true);
  });

  it('changes nothing and records nothing to put back when the instances already have the split values', async () => {
    const pool = fakePool({ [SOURCE]: { ...defaults(), 'repl-diskless-sync-delay': '0', rdbcompression: 'no' }, [NEW]: { ...defaults(), 'repl-diskless-load': 'on-empty-db' } });
    const h = splitHolder();
    expect(await applySyncSettings(pool, h.split, h.save)).toBe('');
    expect(h.saves).toEqual([{ source: {}, shard: {}, restored: false }]);
    expect(await restoreSyncSettings(pool, h.split, h.save)).toEqual({ complete: true, text: '' });
  });
});
