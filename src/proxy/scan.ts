/**
 * SCAN across shards: one shard at a time, in shard-id order, each to its end; the cursor (see
 * scan-cursor.ts) names the shard and carries that shard's own cursor. Keys of slots a shard does
 * not own are left out of its pages, so a page may be short or empty before the scan is over, as
 * Redis allows. Shards that own no slots are not scanned: they hold no key of the cluster.
 */
import { decodeScanCursor, nextScanCursor, scanTarget } from './scan-cursor.js';
import { ownedKeys } from './fan-out.js';
import { arrayElements, bulkValue, encodeCommand, isError, reply } from './resp.js';
import type { MasterSender, Pending } from './client.js';

export function scan(session: MasterSender, p: Pending, argv: Buffer[]): void {
  const at = decodeScanCursor(argv[1]!.toString('latin1'));
  if (at === null) return session.answer(p, reply.error('ERR invalid cursor'));
  const router = session.ctx.router();
  const ids = router.shardIds.filter((_, i) => router.holdsAny(i));
  const target = scanTarget(ids, at);
  if (target === null) return session.answer(p, reply.array([reply.bulk('0'), reply.array([])]));
  const shard = router.shardIds.indexOf(target.shardId);
  session.sendTo(router.masters()[shard]!, encodeCommand([argv[0]!, target.inner.toString(), ...argv.slice(2)]), (r) => {
    if (isError(r)) return session.answer(p, r);
    let inner: bigint;
    let keys: Buffer[];
    try {
      const [cursor, page] = arrayElements(r);
      inner = BigInt(bulkValue(cursor!)!.toString('latin1'));
      keys = ownedKeys(router, shard, arrayElements(page!));
    } catch {
      return session.answer(p, reply.error('ERR proxy: unexpected SCAN reply from a shard'));
    }
    session.answer(p, reply.array([reply.bulk(nextScanCursor(ids, target.shardId, inner)), reply.array(keys)]));
  });
}
