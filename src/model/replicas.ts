/**
 * How many controller replicas the failover quorum is a majority of — pure rules, shared by the
 * leader (which counts votes) and by `cfgctl replicas` (which shows the quorum).
 */

export function majority(n: number): number {
  return Math.floor(n / 2) + 1;
}

export interface ReplicaBase {
  /** What the quorum is a majority of (before the replicas registered now are counted in). */
  replicas: number;
  /** Where that number comes from, for messages. */
  source: string;
}

/**
 * - Configured (`cfgctl replicas set N`, kept in etcd so that every replica agrees): N.
 * - Not configured: the most replicas that stayed registered together, as leaders recorded it,
 *   or the number registered now if that is more; at least 1. So a lone survivor of three
 *   still needs two votes, and a single-replica setup (the playground) decides alone.
 */
export function replicaBase(configured: number | null, seen: number | null, live: number): ReplicaBase {
  if (configured !== null) return { replicas: configured, source: `configured (cfgctl replicas set ${configured})` };
  const replicas = Math.max(1, seen ?? 0, live);
  return { replicas, source: `not configured: the most replicas seen registered together (${seen ?? 'none recorded'}) or registered now (${live})` };
}

/** The quorum: a majority of the base, or of the replicas registered now when more are. */
export function quorumOf(base: number, live: number): { needed: number; replicas: number } {
  const replicas = Math.max(base, live);
  return { needed: majority(replicas), replicas };
}
