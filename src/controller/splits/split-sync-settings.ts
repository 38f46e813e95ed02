/**
 * The replication settings a split changes for its one full sync, and puts back after it
 * (docs/split.md "The full sync's settings"). Measured with bench/split-sync.ts, each one matters:
 *
 * - source `repl-diskless-sync-delay 0`: Redis 7 waits 5 s by default before it forks for a
 *   diskless sync, hoping more replicas arrive; a split has one.
 * - source `repl-diskless-sync yes`: the RDB goes straight to the socket, not to disk first.
 * - source `rdbcompression no`: LZF on the sync's RDB costs the source's fork child more CPU than
 *   the bytes it saves on a local network; for incompressible values (most values of 10 KiB) it
 *   made the full sync 3-6x slower here. Strings of 20 bytes or less are never compressed anyway.
 * - new master `repl-diskless-load on-empty-db`: it loads the RDB from the socket as it arrives,
 *   instead of writing it to disk and reading it back; only when it is empty (a forced split onto
 *   an instance with keys goes through the disk, without holding two datasets in memory).
 *
 * Only the parameters whose value differs are changed; their values before are written to the
 * split record first, so that a new leader, an abort or the end of the sync puts back exactly
 * those. Setting them is never rewritten to the source's file: a source restarted meanwhile comes
 * back with its own settings. Putting them back is rewritten on both sides: the attach's REPLICAOF
 * rewrote the new master's file, and any CONFIG REWRITE on the source meanwhile (the config
 * applier's, after a change of the desired configuration) wrote the split's values into its file.
 */
import { RedisError, errorMessage } from '../../model/errors.js';
import type { SplitRecord } from '../../model/split.js';
import { configGet, rewriteConfig } from '../../redis/commands.js';
import type { RedisPool } from '../../redis/pool.js';

export type SyncSettings = NonNullable<SplitRecord['syncSettings']>;
type Side = 'source' | 'shard';
type Pool = Pick<RedisPool, 'call'>;
/** Writes the split record's `syncSettings` (fenced). */
export type SaveSyncSettings = (settings: SyncSettings) => Promise<void>;

/** What a split wants for its full sync, per side. */
export const SYNC_SETTINGS: Record<Side, Readonly<Record<string, string>>> = {
  source: { 'repl-diskless-sync': 'yes', 'repl-diskless-sync-delay': '0', rdbcompression: 'no' },
  shard: { 'repl-diskless-load': 'on-empty-db' },
};

/** The parameters whose current value is not the wanted one, with their current value (pure). */
export function settingsToChange(wanted: Readonly<Record<string, string>>, current: ReadonlyMap<string, string>): Record<string, string> {
  const change: Record<string, string> = {};
  for (const [name, value] of Object.entries(wanted)) {
    const now = current.get(name);
    // A parameter this Redis does not know is left alone (nothing to put back).
    if (now !== undefined && now !== value) change[name] = now;
  }
  return change;
}

function addressOf(s: SplitRecord, side: Side): string {
  return side === 'source' ? s.sourceMaster : s.shard.master;
}

function describe(values: Record<string, string>): string {
  return Object.entries(values).map(([k, v]) => `${k} ${v}`).join(', ');
}

async function configSetNoRewrite(pool: Pool, address: string, values: Record<string, string>): Promise<void> {
  const args = Object.entries(values).flat();
  if (args.length === 0) return;
  const reply = await pool.call(address, 'CONFIG', 'SET', ...args);
  if (typeof reply !== 'string' || !reply.startsWith('OK')) throw new RedisError(`${address}: CONFIG SET answered ${JSON.stringify(reply)}`);
}

/**
 * Before the full sync: records the values of what differs (once: a leader that runs the attach
 * again keeps the first values, which are the operator's), then sets the split's. Says what it did.
 */
export async function applySyncSettings(pool: Pool, s: SplitRecord, save: SaveSyncSettings): Promise<string> {
  if (s.syncSettings?.restored) return '';
  let originals = s.syncSettings;
  if (!originals) {
    const [source, shard] = await Promise.all(
      (['source', 'shard'] as const).map(async (side) => settingsToChange(SYNC_SETTINGS[side], await configGet(pool, addressOf(s, side), Object.keys(SYNC_SETTINGS[side])))),
    );
    originals = { source: source!, shard: shard!, restored: false };
    // Written before anything changes: whoever comes next knows what to put back.
    await save(originals);
  }
  const done: string[] = [];
  for (const side of ['source', 'shard'] as const) {
    const wanted = Object.fromEntries(Object.keys(originals[side]).map((k) => [k, SYNC_SETTINGS[side][k]!]));
    if (Object.keys(wanted).length === 0) continue;
    await configSetNoRewrite(pool, addressOf(s, side), wanted);
    done.push(`${describe(wanted)} on ${addressOf(s, side)} (was ${describe(originals[side])})`);
  }
  return done.length ? `for the full sync: ${done.join('; ')}` : '';
}

/**
 * After the full sync, or on an abort: the recorded values back on each side (each side tried
 * even if the other fails), recorded as restored when both are. Never throws: says what it did
 * and whether it is complete.
 */
export async function restoreSyncSettings(pool: Pool, s: SplitRecord, save: SaveSyncSettings): Promise<{ complete: boolean; text: string }> {
  const recorded = s.syncSettings;
  if (!recorded || recorded.restored) return { complete: true, text: '' };
  const done: string[] = [];
  const failed: string[] = [];
  for (const side of ['source', 'shard'] as const) {
    const values = recorded[side];
    if (Object.keys(values).length === 0) continue;
    const address = addressOf(s, side);
    try {
      await configSetNoRewrite(pool, address, values);
      const rewrite = await rewriteConfig(pool, address);
      done.push(`${describe(values)} on ${address}${rewrite ? ` (${rewrite})` : ''}`);
    } catch (err) {
      failed.push(`${address}: ${errorMessage(err)}`);
    }
  }
  if (failed.length === 0) await save({ ...recorded, restored: true });
  const text = [done.length ? `settings put back: ${done.join('; ')}` : '', failed.length ? `settings NOT put back (${failed.join('; ')})` : ''].filter(Boolean).join('; ');
  return { complete: failed.length === 0, text };
}
