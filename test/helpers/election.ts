/**
 * A controller's election machinery, in the test process: a session on its own etcd client and a
 * campaign for the leader lock. `elected` resolves with the fence when it wins; close() resigns.
 */
import { LeaderElection } from '../../src/election/leader-election.js';
import { Session } from '../../src/election/session.js';
import type { Fence } from '../../src/store/fence.js';
import { createEtcd } from '../../src/store/etcd.js';
import type { Keys } from '../../src/store/keys.js';
import { log } from './servers.js';

export async function candidate(endpoint: string, keys: Keys, id: string) {
  const etcd = createEtcd({ endpoints: endpoint });
  const session = await Session.open(etcd, 2, log);
  const election = new LeaderElection(etcd, keys, session, id, log);
  const elected = new Promise<Fence>((resolve) => election.once('elected', resolve));
  await election.start();
  return {
    etcd,
    session,
    election,
    elected,
    async close() {
      await election.resign();
      await session.close();
      etcd.close();
    },
  };
}
