/**
 * Whether a master that the route no longer names (an old master come back, a slave someone
 * promoted by hand) holds writes that the route's master lacks, judged from replication histories.
 *
 * A replication offset only means something together with its replication id: two masters on
 * different histories number their bytes independently, so comparing their raw offsets says
 * nothing (a master restarted from AOF reports offset 0 with all its data in it). What does say
 * something: a promoted slave keeps the id of the history it left (`master_replid2`) and the first
 * offset it no longer shares with it (`second_repl_offset`, the promotion offset + 1). An old
 * master still on that history whose offset is before that point has nothing the new master
 * lacks; one past it took writes after the branch.
 */
import type { ReplicationInfo } from '../model/replication-info.js';

export type LineageVerdict =
  | { safe: true; why: string }
  | {
      safe: false;
      kind: 'ahead' | 'branched' | 'unrelated';
      /** A few words for status displays. */
      summary: string;
      why: string;
    };

/** Short words for `cfgctl cluster show`, by kind of refusal. */
export const REFUSAL_SUMMARY = {
  ahead: 'holds writes the master lacks',
  branched: 'holds writes the master lacks',
  unrelated: 'holds data from another replication history',
} as const;

/**
 * Judges `old` (a master the route names a slave, at `oldAddress`) against `master` (what the
 * route's master reports, at `masterAddress`): safe means making `old` a slave of `master` loses
 * nothing that `old` alone holds.
 */
export function judgeReturningMaster(oldAddress: string, old: ReplicationInfo, masterAddress: string, master: ReplicationInfo): LineageVerdict {
  // The processed offset, not master_repl_offset: for a route master still a slave (about to be
  // promoted) only what it applied counts.
  const masterOffset = master.offset;

  if (old.replId !== null && old.replId === master.replId) {
    if (old.offset <= masterOffset) return { safe: true, why: `${oldAddress} is on the same replication history as ${masterAddress}, at offset ${old.offset} of its ${masterOffset}` };
    return refuse(
      'ahead',
      `${oldAddress}, on the replication history of ${masterAddress}, is a master with replication offset ${old.offset}, ahead of the route's master ${masterAddress} at ${masterOffset}`,
    );
  }

  if (old.replId !== null && old.replId === master.replId2 && master.secondReplOffset !== null) {
    const branchedAt = master.secondReplOffset - 1;
    if (old.offset <= branchedAt) {
      return { safe: true, why: `${masterAddress} branched from the history of ${oldAddress} at offset ${branchedAt}, and ${oldAddress} is at ${old.offset}: it holds nothing ${masterAddress} lacks` };
    }
    return refuse(
      'branched',
      `${oldAddress} is a master with replication offset ${old.offset} on the history that ${masterAddress} branched from at offset ${branchedAt}: it took ${old.offset - branchedAt} bytes of writes after the branch that ${masterAddress} never received`,
    );
  }

  // `old` left the route master's history by promotion (a slave promoted by hand, or by a
  // controller reading a stale route): it lacks nothing only if it wrote nothing since.
  if (old.replId2 !== null && old.replId2 === master.replId && old.secondReplOffset !== null) {
    const branchedAt = old.secondReplOffset - 1;
    if (old.offset <= branchedAt && branchedAt <= masterOffset) {
      return { safe: true, why: `${oldAddress} branched from the history of ${masterAddress} at offset ${branchedAt} and took no writes since` };
    }
    if (old.offset > branchedAt) {
      return refuse('branched', `${oldAddress} is a master that branched from the history of ${masterAddress} at offset ${branchedAt} and took ${old.offset - branchedAt} bytes of writes since`);
    }
    return refuse('ahead', `${oldAddress} branched from the history of ${masterAddress} at offset ${branchedAt}, ahead of ${masterAddress} at ${masterOffset}`);
  }

  // Unrelated histories (either side restarted with a fresh id, or another data set altogether):
  // only the key count can tell whether anything would be lost.
  if (old.keys === 0) return { safe: true, why: `${oldAddress} is on a replication history unrelated to that of ${masterAddress}, but holds no key` };
  const held = old.keys === null ? 'an unknown number of keys (its INFO had no keyspace section)' : `${old.keys} keys`;
  return refuse('unrelated', `${oldAddress} is a master holding ${held} on a replication history unrelated to that of ${masterAddress} (restarted from AOF or RDB, or another data set)`);
}

function refuse(kind: 'ahead' | 'branched' | 'unrelated', why: string): LineageVerdict {
  return { safe: false, kind, summary: REFUSAL_SUMMARY[kind], why };
}
