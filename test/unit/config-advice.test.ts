import { describe, expect, it } from 'vitest';
import { adviseConfig, backlogCover, type CheckedInstance, type ShardWriteRate } from '../../src/model/config-advice.js';
import type { InstanceFacts } from '../../src/model/instance-facts.js';

const facts = (over: Partial<InstanceFacts> = {}): InstanceFacts => ({
  role: 'master', loading: false, aofRewriting: false, aofEnabled: false, aofRewriteFailed: false, bgsaving: false, unsavedChanges: 0,
  usedMemory: 1000, maxmemory: 0, maxmemoryPolicy: 'noeviction', systemMemory: 8 * 1024 ** 3, replOffset: 0, linkUp: null, syncing: false, ...over,
});

/** A well-configured instance, with `over` changed. */
function inst(instance: string, role: 'master' | 'slave', over: Record<string, string> = {}): CheckedInstance {
  const settings = new Map(Object.entries({ save: '', appendonly: role === 'master' ? 'yes' : 'no', maxmemory: String(1024 ** 3), 'maxmemory-policy': 'allkeys-lru', 'repl-backlog-size': String(64 * 1024 ** 2), 'repl-diskless-load': 'swapdb', ...over }));
  return { instance, shard: 's0', role, settings, facts: facts({ role }), error: null };
}

const ctx = { autoFailover: true, paused: false, downAfterMs: 3000, minBacklogSeconds: 60 };
const rate = (bytesPerSecond: number | null): ShardWriteRate[] => [{ shard: 's0', master: 'm:1', bytesPerSecond, sampledMs: 1000 }];
const codes = (i: CheckedInstance[], r = rate(0), c = ctx) => adviseConfig(i, r, c).map((w) => `${w.instance} ${w.code}`);

describe('config check', () => {
  it('has nothing to say about a well-configured shard', () => {
    expect(codes([inst('m:1', 'master'), inst('s:1', 'slave')], rate(1000))).toEqual([]);
  });

  it('warns of a master without persistence, naming the failover race, and harder when the cluster would not fail over', () => {
    const bare = inst('m:1', 'master', { appendonly: 'no' });
    const [w] = adviseConfig([bare], rate(0), ctx);
    expect(w).toMatchObject({ code: 'no-persistence', instance: 'm:1', shard: 's0' });
    expect(w!.message).toMatch(/restart brings it back empty.*down for 3000 ms.*slaves resync from it and are emptied too/);
    expect(adviseConfig([bare], rate(0), { ...ctx, paused: true })[0]!.message).toMatch(/paused, so no failover happens/);
    expect(adviseConfig([bare], rate(0), { ...ctx, autoFailover: false })[0]!.message).toMatch(/automatic failover off/);
    // A save schedule is persistence too; a slave without any is fine (it resyncs).
    expect(codes([inst('m:1', 'master', { appendonly: 'no', save: '3600 1' }), inst('s:1', 'slave')])).toEqual([]);
  });

  it('warns of an instance without persistence that loads full syncs from disk', () => {
    expect(codes([inst('s:1', 'slave', { 'repl-diskless-load': 'disabled' })])).toEqual(['s:1 disk-load-without-persistence']);
    expect(codes([inst('s:1', 'slave', { 'repl-diskless-load': 'disabled', save: '60 1' })])).toEqual([]);
  });

  it('warns of maxmemory unset, above the host, and noeviction with maxmemory set', () => {
    expect(codes([inst('s:1', 'slave', { maxmemory: '0' })])).toEqual(['s:1 maxmemory-unset']);
    expect(codes([inst('s:1', 'slave', { maxmemory: String(16 * 1024 ** 3) })])).toEqual(['s:1 maxmemory-above-host']);
    expect(codes([inst('s:1', 'slave', { 'maxmemory-policy': 'noeviction' })])).toEqual(['s:1 noeviction']);
    expect(codes([inst('s:1', 'slave', { maxmemory: '0', 'maxmemory-policy': 'noeviction' })])).toEqual(['s:1 maxmemory-unset']);
  });

  it('measures the disconnection each backlog covers at the write rate, and warns below the minimum', () => {
    const shard = [inst('m:1', 'master', { 'repl-backlog-size': '1048576' }), inst('s:1', 'slave')];
    expect(backlogCover(shard, rate(1024 * 1024 / 10))).toEqual([
      { shard: 's0', instance: 'm:1', backlogBytes: 1048576, seconds: 10 },
      { shard: 's0', instance: 's:1', backlogBytes: 64 * 1024 ** 2, seconds: 640 },
    ]);
    const [w] = adviseConfig(shard, rate(1024 * 1024 / 10), ctx);
    expect(w).toMatchObject({ code: 'backlog-small', instance: 'm:1' });
    expect(w!.message).toMatch(/covers 10\.0 s of disconnection.*at least 6291456 bytes \(6\.0 MiB\) would cover 60 s/);
    expect(backlogCover(shard, rate(0))[0]!.seconds).toBeNull(); // no writes: any disconnection is covered
    expect(codes(shard, rate(0))).toEqual([]);
    expect(codes(shard, rate(null))).toEqual([]);
  });

  it('says which instances it could not check', () => {
    const gone: CheckedInstance = { instance: 's:1', shard: 's0', role: 'slave', settings: null, facts: null, error: 'connection refused' };
    expect(adviseConfig([gone], rate(0), ctx)).toEqual([{ code: 'unreachable', shard: 's0', instance: 's:1', message: 's:1 did not answer (connection refused): not checked' }]);
  });
});
