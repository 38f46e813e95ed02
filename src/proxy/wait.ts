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
 */
import { encodeCommand, integerReply, isError, reply } from './resp.js';
import type { Pending, ReplyQueue, RouteView } from './client.js';

const MARK = encodeCommand(['PUBLISH', '__cfgserver:wait', '']);

export function waitForReplicas(session: ReplyQueue & RouteView, p: Pending, argv: Buffer[]): void {
  const router = session.ctx.router();
  const masters = router.masters().filter((_, i) => router.holdsAny(i));
  if (masters.length === 0) return session.answer(p, reply.integer(0));
  const wait = encodeCommand(argv);
  const counts: (Buffer | null)[] = masters.map(() => null);
  let left = masters.length;
  masters.forEach((pool, i) => {
    const connection = pool.dedicated(2);
    connection.send(MARK, () => undefined);
    connection.send(wait, (r) => {
      connection.close();
      counts[i] = r;
      if (--left > 0) return;
      const failed = counts.find((c) => isError(c!));
      if (failed) return session.answer(p, failed);
      session.answer(p, reply.integer(Math.min(...counts.map((c) => integerReply(c!) ?? 0))));
    });
  });
}
