/**
 * Counting and finding keys on a master that may hold keys of slots its shard does not own: a
 * split's two shards from its hold until its trim is over (the route's `trimming`, docs/split.md).
 * Redis outside cluster mode cannot count keys by slot, so the proxy SCANs such a master to its end
 * and counts the keys of the slots the shard may hold itself. Only there and only then: every
 * other shard, and every shard outside a trim, is counted with DBSIZE, an O(1) command.
 */
import { keySlot } from '../model/slot.js';
import { arrayElements, bulkValue, encodeCommand, integerReply, isError, reply } from './resp.js';
import type { MasterSender, Pending } from './client.js';
import type { Router } from './router.js';

/** Keys asked of a master per SCAN call: about 1,000 keys (tens of KiB) per round trip. */
const SCAN_COUNT = '1000';
/**
 * Bytes of key names remembered so that each key is counted once: SCAN returns a key twice when
 * Redis shrinks its table during the scan. Past this bound (a shard of millions of keys) further
 * keys are counted as they come, without that check.
 */
const MAX_NAME_BYTES = 64 << 20;

const DBSIZE = encodeCommand(['DBSIZE']);
const BAD_SCAN = 'ERR proxy: unexpected SCAN reply from a shard';

/** `error` is the error reply to answer with, or null. */
type Done<T> = (error: Buffer | null, result: T) => void;

/**
 * SCANs the master of `shard` page by page on the client's connection to it; `onPage` gets each
 * page's key names and answers true to stop. `end` is called once: at the scan's end, when
 * stopped, or with the error reply.
 */
function walkKeys(session: MasterSender, router: Router, shard: number, onPage: (keys: Buffer[]) => boolean, end: (error: Buffer | null) => void): void {
  const pool = router.masters()[shard]!;
  const ask = (cursor: string): void =>
    session.sendTo(pool, encodeCommand(['SCAN', cursor, 'COUNT', SCAN_COUNT]), (r) => {
      if (isError(r)) return end(r);
      let next: string;
      let keys: Buffer[];
      try {
        const [c, page] = arrayElements(r);
        next = bulkValue(c!)!.toString('latin1');
        keys = arrayElements(page!).map((k) => bulkValue(k)!);
      } catch {
        return end(reply.error(BAD_SCAN));
      }
      if (onPage(keys) || next === '0') return end(null);
      ask(next);
    });
  ask('0');
}

/** The number of keys on the master of `shard` whose slot that shard may hold, each counted once. */
export function countOwnedKeys(session: MasterSender, router: Router, shard: number, done: Done<number>): void {
  const seen = new Set<string>();
  let bytes = 0;
  let count = 0;
  walkKeys(
    session,
    router,
    shard,
    (keys) => {
      for (const key of keys) {
        if (!router.mayHold(shard, keySlot(key, router.slotCount))) continue;
        if (bytes >= MAX_NAME_BYTES) {
          count++;
          continue;
        }
        const name = key.toString('latin1');
        if (seen.has(name)) continue;
        seen.add(name);
        bytes += key.length;
        count++;
      }
      return false;
    },
    (error) => done(error, count),
  );
}

/** The first key, in SCAN order, of the first of `shards` whose master holds one of a slot the shard may hold; null when none does. */
export function firstOwnedKey(session: MasterSender, router: Router, shards: readonly number[], done: Done<Buffer | null>): void {
  const [shard, ...rest] = shards;
  if (shard === undefined) return done(null, null);
  let found: Buffer | null = null;
  walkKeys(
    session,
    router,
    shard,
    (keys) => {
      found = keys.find((k) => router.mayHold(shard, keySlot(k, router.slotCount))) ?? null;
      return found !== null;
    },
    (error) => (error || found ? done(error, found) : firstOwnedKey(session, router, rest, done)),
  );
}

/**
 * DBSIZE while some shard is trimming: the keys of owned slots of each trimming shard, counted by
 * SCAN, plus the DBSIZE of each other shard (`shards`: those that may hold keys at all).
 */
export function exactDbsize(session: MasterSender, p: Pending, router: Router, shards: readonly number[]): void {
  if (shards.length === 0) return session.answer(p, reply.integer(0));
  let total = 0;
  let left = shards.length;
  let failed: Buffer | null = null;
  const add: Done<number> = (error, n) => {
    if (error && !failed) failed = error;
    total += n;
    if (--left === 0) session.answer(p, failed ?? reply.integer(total));
  };
  for (const shard of shards) {
    if (router.trimming[shard]) {
      countOwnedKeys(session, router, shard, add);
      continue;
    }
    session.sendTo(router.masters()[shard]!, DBSIZE, (r) => {
      const size = isError(r) ? null : integerReply(r);
      if (size === null) return add(isError(r) ? r : reply.error('ERR proxy: unexpected DBSIZE reply from a shard'), 0);
      add(null, size);
    });
  }
}
