import { describe, expect, it } from 'vitest';
import { heavyReason, planRoll, rollOrder, type HeavyChange, type RollInstance, type RollShard } from '../../src/controller/config-roll.js';
import { busyReason, type InstanceFacts } from '../../src/model/instance-facts.js';
import { parseInstanceFacts } from '../../src/redis/info.js';

const idle = (over: Partial<InstanceFacts> = {}): InstanceFacts => ({
  role: 'slave',
  loading: false,
  aofRewriting: false,
  aofEnabled: false,
  aofRewriteFailed: false,
  bgsaving: false,
  unsavedChanges: 0,
  usedMemory: 1_000_000,
  maxmemory: 0,
  maxmemoryPolicy: 'noeviction',
  systemMemory: 0,
  replOffset: 0,
  linkUp: true,
  syncing: false,
  ...over,
});

const aofOn: HeavyChange = { key: 'appendonly', from: 'no', to: 'yes', reason: 'desired changed', drift: false, heavy: 'AOF' };

function inst(instance: string, role: 'master' | 'slave', heavy: HeavyChange[] = [aofOn], facts: Partial<InstanceFacts> | null = {}): RollInstance {
  return { instance, role, heavy, facts: facts === null ? null : idle({ role, linkUp: role === 'slave' ? true : null, ...facts }) };
}

function shard(id: string, host: string): RollShard {
  return { shard: id, instances: [inst(`${host}:1`, 'master'), inst(`${host}:3`, 'slave'), inst(`${host}:2`, 'slave')] };
}

describe('heavy settings', () => {
  it('turning the AOF on is heavy, turning it off is not', () => {
    expect(heavyReason({ key: 'appendonly', from: 'no', to: 'yes' }, idle())).toMatch(/fork/);
    expect(heavyReason({ key: 'appendonly', from: 'yes', to: 'no' }, idle())).toBeNull();
  });

  it('maxmemory is heavy only below the memory in use (or when that is not known)', () => {
    expect(heavyReason({ key: 'maxmemory', from: '0', to: '100mb' }, idle({ usedMemory: 50 * 1024 * 1024 }))).toBeNull();
    expect(heavyReason({ key: 'maxmemory', from: '0', to: '10mb' }, idle({ usedMemory: 50 * 1024 * 1024 }))).toMatch(/evicts/);
    expect(heavyReason({ key: 'maxmemory', from: '10mb', to: '0' }, idle())).toBeNull();
    expect(heavyReason({ key: 'maxmemory', from: '5242880', to: '10mb' }, idle({ usedMemory: 50 * 1024 * 1024 }))).toBeNull(); // raised: less to evict
    expect(heavyReason({ key: 'maxmemory', from: '0', to: '10mb' }, null)).not.toBeNull();
  });

  it('a save schedule is heavy only with unsaved changes', () => {
    expect(heavyReason({ key: 'save', from: '', to: '60 1' }, idle({ unsavedChanges: 5 }))).toMatch(/BGSAVE/);
    expect(heavyReason({ key: 'save', from: '', to: '60 1' }, idle())).toBeNull();
    expect(heavyReason({ key: 'save', from: '60 1', to: '' }, idle({ unsavedChanges: 5 }))).toBeNull();
    expect(heavyReason({ key: 'hz', from: '10', to: '100' }, idle())).toBeNull();
  });

  it('an instance is busy while it loads, rewrites, saves, syncs or evicts; a failed rewrite or a down link needs somebody', () => {
    expect(busyReason(idle())).toBeNull();
    expect(busyReason(idle({ aofRewriting: true }))).toEqual({ reason: 'is rewriting its AOF', settling: true });
    expect(busyReason(idle({ loading: true }))?.settling).toBe(true);
    expect(busyReason(idle({ bgsaving: true }))?.settling).toBe(true);
    expect(busyReason(idle({ syncing: true }))?.settling).toBe(true);
    expect(busyReason(idle({ linkUp: false }))?.settling).toBe(false);
    expect(busyReason(idle({ aofEnabled: true, aofRewriteFailed: true }))?.settling).toBe(false);
    const full = { usedMemory: 200, maxmemory: 100, maxmemoryPolicy: 'allkeys-lru' };
    expect(busyReason(idle({ role: 'master', linkUp: null, ...full }))?.reason).toMatch(/evicting/);
    expect(busyReason(idle(full))).toBeNull(); // a slave does not evict
    expect(busyReason(idle({ role: 'master', linkUp: null, ...full, maxmemoryPolicy: 'noeviction' }))).toBeNull();
  });
});

describe('the roll', () => {
  it('goes slaves first by address, the master last', () => {
    expect(rollOrder(shard('s0', 'a').instances).map((i) => i.instance)).toEqual(['a:2', 'a:3', 'a:1']);
    const { steps, waits } = planRoll([shard('s0', 'a')]);
    expect(waits).toEqual([]);
    expect(steps).toEqual([{ shard: 's0', instance: 'a:2', role: 'slave', changes: [aofOn], after: ['a:3', 'a:1'] }]);
  });

  it('skips instances already done, and reaches the master when the slaves are', () => {
    const s = shard('s0', 'a');
    s.instances = s.instances.map((i) => (i.role === 'slave' ? { ...i, heavy: [] } : i));
    expect(planRoll([s]).steps.map((x) => x.instance)).toEqual(['a:1']);
  });

  it('waits while any instance of the shard is busy or silent, and says why', () => {
    const busy = shard('s0', 'a');
    busy.instances[1] = inst('a:3', 'slave', [], { aofRewriting: true });
    expect(planRoll([busy])).toEqual({ steps: [], waits: [{ shard: 's0', reason: 'a:3 is rewriting its AOF', settling: true }] });
    const silent = shard('s0', 'a');
    silent.instances[0] = inst('a:1', 'master', [aofOn], null);
    expect(planRoll([silent])).toEqual({ steps: [], waits: [{ shard: 's0', reason: 'a:1 does not answer', settling: false }] });
  });

  it('waits for an instance not compared this pass, and for one not in the role the route gives it', () => {
    const unknown = shard('s0', 'a');
    unknown.instances[2] = { ...inst('a:2', 'slave'), heavy: null };
    expect(planRoll([unknown])).toEqual({ steps: [], waits: [{ shard: 's0', reason: 'a:2 was not compared with the desired config this pass', settling: true }] });
    // A slave restarted empty is a master until the leader makes it a slave again: not the master's turn yet.
    const restarted = shard('s0', 'a');
    restarted.instances[1] = inst('a:3', 'slave', [aofOn], { role: 'master', linkUp: null });
    expect(planRoll([restarted])).toEqual({ steps: [], waits: [{ shard: 's0', reason: 'a:3 is a master, the route says slave', settling: true }] });
  });

  it('is derived: a rerun on the same facts plans the same step, and a finished step moves it on', () => {
    const s = shard('s0', 'a');
    expect(planRoll([s])).toEqual(planRoll([s]));
    // The first slave took it and is rewriting: nothing this pass.
    s.instances = s.instances.map((i) => (i.instance === 'a:2' ? { ...i, heavy: [], facts: { ...i.facts!, aofRewriting: true } } : i));
    expect(planRoll([s]).steps).toEqual([]);
    s.instances = s.instances.map((i) => (i.instance === 'a:2' ? { ...i, facts: { ...i.facts!, aofRewriting: false } } : i));
    expect(planRoll([s]).steps.map((x) => x.instance)).toEqual(['a:3']);
  });

  it('rolls shards on different hosts side by side, and one instance per host at a time', () => {
    expect(planRoll([shard('s1', 'b'), shard('s0', 'a')]).steps.map((x) => x.instance)).toEqual(['a:2', 'b:2']);
    const sameHost: RollShard = { shard: 's1', instances: [inst('a:11', 'master'), inst('a:12', 'slave')] };
    const { steps, waits } = planRoll([shard('s0', 'a'), sameHost]);
    expect(steps.map((x) => x.instance)).toEqual(['a:2']);
    expect(waits).toEqual([{ shard: 's1', reason: 'a:2 on the same host works first', settling: true }]);
  });
});

describe('INFO persistence memory replication', () => {
  it('reads the facts of a slave rewriting its AOF', () => {
    const text = ['# Persistence', 'loading:0', 'async_loading:0', 'rdb_changes_since_last_save:7', 'rdb_bgsave_in_progress:0', 'aof_enabled:1', 'aof_rewrite_in_progress:1', 'aof_rewrite_scheduled:0', 'aof_last_bgrewrite_status:ok', '', '# Memory', 'used_memory:2000', 'total_system_memory:8000', 'maxmemory:0', 'maxmemory_policy:noeviction', 'mem_not_counted_for_evict:500', '', '# Replication', 'role:slave', 'master_link_status:up', 'master_sync_in_progress:0', 'master_repl_offset:42', ''].join('\r\n');
    expect(parseInstanceFacts(text)).toEqual({
      role: 'slave', loading: false, aofRewriting: true, aofEnabled: true, aofRewriteFailed: false, bgsaving: false, unsavedChanges: 7,
      usedMemory: 1500, maxmemory: 0, maxmemoryPolicy: 'noeviction', systemMemory: 8000, replOffset: 42, linkUp: true, syncing: false,
    });
    expect(() => parseInstanceFacts('role:sentinel')).toThrow(/unknown role/);
  });
});
