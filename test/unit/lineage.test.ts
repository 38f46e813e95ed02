import { describe, expect, it } from 'vitest';
import { judgeReturningMaster } from '../../src/controller/lineage.js';
import type { ReplicationInfo } from '../../src/model/replication-info.js';

const OLD = '127.0.0.1:7001';
const NEW = '127.0.0.1:7002';
// Replication ids as redis-server 7.0 prints them.
const HISTORY_A = 'e058e2f9b133640e932c70a92fc5e8509b220069';
const HISTORY_B = '8294a81b5683cf970e0a31198dc06ec93a27872d';
const HISTORY_C = '46f40e62b83d98a6e4249f8d3bc1304b07193a90';

function masterInfo(o: Partial<ReplicationInfo>): ReplicationInfo {
  return {
    role: 'master',
    masterAddress: null,
    linkUp: null,
    linkDownSinceSec: null,
    offset: 0,
    connectedSlaves: 0,
    replId: HISTORY_A,
    replId2: null,
    secondReplOffset: null,
    masterReplOffset: o.offset ?? 0,
    keys: 1,
    priority: null,
    ...o,
  };
}

/** The new master: a slave of history A promoted at offset 50 (Redis then says second_repl_offset 51). */
const promotedAt50 = masterInfo({ replId: HISTORY_B, replId2: HISTORY_A, secondReplOffset: 51, offset: 120, keys: 1 });

describe('judgeReturningMaster', () => {
  it('same history, behind the new master: nothing to lose', () => {
    const v = judgeReturningMaster(OLD, masterInfo({ replId: HISTORY_B, offset: 100 }), NEW, promotedAt50);
    expect(v).toMatchObject({ safe: true });
  });

  it('same history, ahead of the new master: refused', () => {
    const v = judgeReturningMaster(OLD, masterInfo({ replId: HISTORY_B, offset: 500 }), NEW, promotedAt50);
    expect(v).toMatchObject({ safe: false, kind: 'ahead', summary: 'holds writes the master lacks' });
    if (!v.safe) expect(v.why).toMatch(/offset 500, ahead of the route's master 127\.0\.0\.1:7002 at 120/);
  });

  it('the history the new master branched from, at the branch point: nothing to lose, whatever the raw offsets', () => {
    // The new master's own offset (120) says nothing about history A; only the branch point does.
    const v = judgeReturningMaster(OLD, masterInfo({ replId: HISTORY_A, offset: 50 }), NEW, promotedAt50);
    expect(v).toMatchObject({ safe: true });
    if (v.safe) expect(v.why).toMatch(/branched from the history of 127\.0\.0\.1:7001 at offset 50/);
  });

  it('the history the new master branched from, before the branch point: nothing to lose', () => {
    expect(judgeReturningMaster(OLD, masterInfo({ replId: HISTORY_A, offset: 10 }), NEW, promotedAt50)).toMatchObject({ safe: true });
  });

  it('branched, with writes after the branch point: refused, even when its raw offset is below the new master', () => {
    // Offset 78 < 120: the old raw-offset rule would have wiped these 28 bytes of writes.
    const v = judgeReturningMaster(OLD, masterInfo({ replId: HISTORY_A, offset: 78 }), NEW, promotedAt50);
    expect(v).toMatchObject({ safe: false, kind: 'branched', summary: 'holds writes the master lacks' });
    if (!v.safe) expect(v.why).toMatch(/took 28 bytes of writes after the branch/);
  });

  it('one byte past the branch point is a write the new master lacks', () => {
    expect(judgeReturningMaster(OLD, masterInfo({ replId: HISTORY_A, offset: 51 }), NEW, promotedAt50)).toMatchObject({ safe: false, kind: 'branched' });
  });

  it('unrelated history with data (restarted from AOF: new id, offset 0): refused', () => {
    const v = judgeReturningMaster(OLD, masterInfo({ replId: HISTORY_C, offset: 0, keys: 7 }), NEW, promotedAt50);
    expect(v).toMatchObject({ safe: false, kind: 'unrelated', summary: 'holds data from another replication history' });
    if (!v.safe) expect(v.why).toMatch(/holding 7 keys on a replication history unrelated/);
  });

  it('unrelated history and empty (restarted without persistence): safe to make a slave', () => {
    expect(judgeReturningMaster(OLD, masterInfo({ replId: HISTORY_C, offset: 0, keys: 0 }), NEW, promotedAt50)).toMatchObject({ safe: true });
  });

  it('unrelated history with an unknown key count: refused', () => {
    const v = judgeReturningMaster(OLD, masterInfo({ replId: HISTORY_C, keys: null }), NEW, promotedAt50);
    expect(v).toMatchObject({ safe: false, kind: 'unrelated' });
    if (!v.safe) expect(v.why).toMatch(/unknown number of keys/);
  });

  it('a new master that was itself restarted (fresh id, no previous history): the old one is unrelated', () => {
    const restarted = masterInfo({ replId: HISTORY_C, offset: 0, keys: 3 });
    expect(judgeReturningMaster(OLD, masterInfo({ replId: HISTORY_A, offset: 40, keys: 5 }), NEW, restarted)).toMatchObject({ safe: false, kind: 'unrelated' });
    expect(judgeReturningMaster(OLD, masterInfo({ replId: HISTORY_A, offset: 40, keys: 0 }), NEW, restarted)).toMatchObject({ safe: true });
  });

  it('a slave promoted by hand that took no writes since: safe; one that took writes: refused', () => {
    const routeMaster = masterInfo({ replId: HISTORY_A, offset: 90 });
    const quiet = masterInfo({ replId: HISTORY_B, replId2: HISTORY_A, secondReplOffset: 81, offset: 80 });
    expect(judgeReturningMaster(OLD, quiet, NEW, routeMaster)).toMatchObject({ safe: true });
    const written = { ...quiet, offset: 95 };
    expect(judgeReturningMaster(OLD, written, NEW, routeMaster)).toMatchObject({ safe: false, kind: 'branched' });
    // It branched at 100, past everything the route's master has (90).
    expect(judgeReturningMaster(OLD, { ...quiet, secondReplOffset: 101, offset: 100 }, NEW, routeMaster)).toMatchObject({ safe: false, kind: 'ahead' });
  });

  it('a master without a replication id is judged by its keys', () => {
    expect(judgeReturningMaster(OLD, masterInfo({ replId: null, keys: 0 }), NEW, promotedAt50)).toMatchObject({ safe: true });
    expect(judgeReturningMaster(OLD, masterInfo({ replId: null, keys: 2 }), NEW, promotedAt50)).toMatchObject({ safe: false });
  });
});
