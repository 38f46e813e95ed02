/**
 * What `INFO replication` says about an instance, as plain data: parsed in src/redis/info.ts,
 * judged by the controller's pure decisions.
 */
export interface ReplicationInfo {
  role: 'master' | 'slave';
  /** For a slave: "host:port" of its master. */
  masterAddress: string | null;
  /** For a slave: whether its link to the master is up. */
  linkUp: boolean | null;
  /** For a slave whose link is down: seconds since it went down (-1 if it never was up). */
  linkDownSinceSec: number | null;
  /** master_repl_offset for a master; the processed offset for a slave. */
  offset: number;
  connectedSlaves: number;
  /** master_replid: the replication history this instance is on now. */
  replId: string | null;
  /**
   * master_replid2: the history it was on before it was last promoted, null if none (Redis shows
   * forty zeros). Valid up to `secondReplOffset`.
   */
  replId2: string | null;
  /**
   * second_repl_offset: the first offset that is NOT shared with `replId2`'s history (Redis sets
   * it to the promotion offset + 1); null when there is no previous history (Redis shows -1).
   */
  secondReplOffset: number | null;
  /** master_repl_offset as such (for a slave it can be ahead of the processed offset). */
  masterReplOffset: number | null;
  /** Keys in all databases, from the keyspace section; null when the reply had no such section. */
  keys: number | null;
  /** A slave's replica-priority (0: never to be promoted); null for a master. */
  priority: number | null;
  /**
   * min_slaves_good_slaves: slaves that acknowledged within `min-replicas-max-lag`. Redis prints it
   * only while it enforces `min-replicas-to-write` (both settings above 0), so its presence says
   * the write fence is on, without a CONFIG GET; absent when the fence is off.
   */
  goodSlaves?: number;
  /**
   * For a master: for each slave it counts online (synced; not one still in a full sync), the
   * seconds since it last acknowledged (`slaveN:...,lag=N`). The fence goes on only while one of
   * these is within its lag bound, or it would refuse writes the moment it is set.
   */
  onlineSlaveLagsSec?: number[];
}
