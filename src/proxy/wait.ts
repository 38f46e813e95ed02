/**
 * WAIT numreplicas timeout through the proxy.
 *
 * On Redis, WAIT waits until the replicas have acknowledged every write *this connection* made.
 * Through the proxy a client's writes travel on connections shared with other clients, so no one
 * of them stands for this client. Instead, once the client's earlier commands are all answered
 * (so its writes are in each master's replication stream), the proxy asks every master, on a
 * connection of its own, for a PUBLISH on a channel nobody listens to — which Redis replicates,
 * and which makes that connection's own offset the master's current one — then WAIT. The answer
 * is the smallest count: every shard has at least that many replicas holding the client's writes.
 *
 * A master that feeds a split's new master (the route's `feedingSplit`) has one replica more than
 * its slaves, and Redis counts it; but a failover of that shard promotes one of its own slaves, and
 * abandons the split. So it is asked for one replica more than the client asked, and its answer is
 * one fewer: at worst one too few (the new master not caught up), never one that is not a slave.
 */
import { encodeCommand, integerReply, isError, reply } from './resp.js';
import type { Pending, ReplyQueue, RouteView } from './client.js';

const MARK = encodeCommand(['PUBLISH', '__cfgserver:wait', '']);

/** The client's numreplicas, or null when it is not a count (Redis then answers with its own error). */
function askedReplicas(argv: Buffer[]): number | null {
  const text = argv[1]?.toString('latin1') ?? '';
  return /^(0|[1-9][0-9]{0,8})$/.test(text) ? Number(text) : null;
}

export function waitForReplicas(session: ReplyQueue & RouteView, p: Pending, argv: Buffer[]): void {
  const router = session.ctx.router();
  const shards = router.masters().map((_, i) => i).filter((i) => router.holdsAny(i));
  if (shards.length === 0) return session.answer(p, reply.integer(0));
  const asked = askedReplicas(argv);
  const plain = encodeCommand(argv);
  // WAIT 0 answers at once with what is acknowledged: only the answer needs the one taken off.
  const oneMore = asked !== null && asked > 0 ? encodeCommand([argv[0]!, Buffer.from(String(asked + 1)), ...argv.slice(2)]) : plain;
  const counts: (number | Buffer)[] = shards.map(() => 0);
  let left = shards.length;
  shards.forEach((shard, i) => {
    const feeding = asked !== null && router.feedingSplit[shard]!;
    const connection = router.masters()[shard]!.dedicated(2);
    connection.send(MARK, () => undefined);
    connection.send(feeding ? oneMore : plain, (r) => {
      connection.close();
      counts[i] = isError(r) ? r : Math.max(0, (integerReply(r) ?? 0) - (feeding ? 1 : 0));
      if (--left > 0) return;
      const failed = counts.find((c): c is Buffer => typeof c !== 'number');
      if (failed) return session.answer(p, failed);
      session.answer(p, reply.integer(Math.min(...(counts as number[]))));
    });
  });
}
