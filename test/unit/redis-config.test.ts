import { describe, expect, it } from 'vitest';
import { desiredPerInstance, planInstanceConfig } from '../../src/controller/config-plan.js';
import {
  MANAGED_KEYS,
  effectiveConfig,
  filterConfig,
  memoryBytes,
  redisConfigSchema,
  sameValue,
  valueProblem,
  withScopeSettings,
  type RedisConfig,
} from '../../src/model/redis-config.js';

const config: RedisConfig = {
  global: { 'maxmemory-policy': 'allkeys-lru', maxmemory: '100mb' },
  roles: { slave: { 'maxmemory-policy': 'noeviction' } },
  shards: { s1: { maxmemory: '1gb' } },
};

describe('the desired config schema', () => {
  it('fills in empty scopes and refuses unknown fields, patterns and non-string values', () => {
    expect(redisConfigSchema.parse({ global: { hz: '20' } })).toEqual({ global: { hz: '20' }, roles: {}, shards: {} });
    expect(redisConfigSchema.safeParse({ nodes: {} }).success).toBe(false);
    expect(redisConfigSchema.safeParse({ global: { 'max*': '1' } }).success).toBe(false);
    expect(redisConfigSchema.safeParse({ global: { hz: 20 } }).success).toBe(false);
    expect(redisConfigSchema.safeParse({ roles: { leader: {} } }).success).toBe(false);
  });

  it('names a reason for every managed key, the role and fencing keys among them', () => {
    for (const key of ['replicaof', 'slaveof', 'dir', 'min-replicas-to-write', 'requirepass']) expect(MANAGED_KEYS[key]).toMatch(/\w/);
    expect(MANAGED_KEYS['maxmemory']).toBeUndefined();
  });
});

describe('values of known kinds', () => {
  it('reads memory sizes in Redis units', () => {
    expect(memoryBytes('4096')).toBe(4096);
    expect(memoryBytes('100mb')).toBe(100 * 1024 * 1024);
    expect(memoryBytes('1GB')).toBe(1024 ** 3);
    expect(memoryBytes('2k')).toBe(2000);
    expect(memoryBytes('lots')).toBeNull();
    expect(memoryBytes('10tb')).toBeNull();
  });

  it('says what is wrong with a value, and accepts what it does not know', () => {
    expect(valueProblem('maxmemory', '100mb')).toBeNull();
    expect(valueProblem('maxmemory', 'a lot')).toMatch(/memory size/);
    expect(valueProblem('appendonly', 'true')).toMatch(/yes or no/);
    expect(valueProblem('hz', '10.5')).toMatch(/integer/);
    expect(valueProblem('maxmemory-policy', 'lru')).toMatch(/one of/);
    expect(valueProblem('maxmemory-policy', 'ALLKEYS-LRU')).toBeNull();
    expect(valueProblem('notify-keyspace-events', 'Ex')).toBeNull();
  });

  it('compares memory sizes in bytes and other values without case', () => {
    expect(sameValue('maxmemory', '100mb', '104857600')).toBe(true);
    expect(sameValue('maxmemory', '100mb', '100000000')).toBe(false);
    expect(sameValue('appendonly', 'YES', 'yes')).toBe(true);
    expect(sameValue('hz', '10', '20')).toBe(false);
    // Redis's own spellings: save by its numbers, output limits class by class in bytes (as redis 7.0.15 answers).
    expect(sameValue('save', ' 3600 1  300 100', '3600 1 300 100')).toBe(true);
    expect(sameValue('save', '3600 1', '3600 1 300 100')).toBe(false);
    const limits = 'normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60';
    expect(sameValue('client-output-buffer-limit', 'replica 256mb 64mb 60', limits)).toBe(true);
    expect(sameValue('client-output-buffer-limit', 'pubsub 32mb 8mb 60 normal 0 0 0', limits)).toBe(true);
    expect(sameValue('client-output-buffer-limit', 'replica 512mb 64mb 60', limits)).toBe(false);
    expect(sameValue('client-output-buffer-limit', 'replica 256mb', limits)).toBe(false);
  });
});

describe('scopes', () => {
  it('gives each instance global, then role, then shard settings', () => {
    expect(effectiveConfig(config, 's0', 'master')).toEqual({ 'maxmemory-policy': 'allkeys-lru', maxmemory: '100mb' });
    expect(effectiveConfig(config, 's0', 'slave')).toEqual({ 'maxmemory-policy': 'noeviction', maxmemory: '100mb' });
    expect(effectiveConfig(config, 's1', 'slave')).toEqual({ 'maxmemory-policy': 'noeviction', maxmemory: '1gb' });
  });

  it('drops a scope left empty, and filters keys by glob', () => {
    expect(withScopeSettings(config, { role: 'slave' }, {}).roles).toEqual({});
    expect(withScopeSettings(config, { shard: 's2' }, { hz: '5' }).shards).toEqual({ s1: { maxmemory: '1gb' }, s2: { hz: '5' } });
    expect(filterConfig(config, 'maxmemory-*')).toEqual({ global: { 'maxmemory-policy': 'allkeys-lru' }, roles: { slave: { 'maxmemory-policy': 'noeviction' } }, shards: { s1: {} } });
  });

  it('lists every instance of the route with its role', () => {
    const route = { shards: [{ id: 's0', master: 'a:1', slaves: ['b:1'], slots: [] as [number, number][] }] };
    expect(desiredPerInstance(route, config).map((t) => [t.instance, t.role, t.settings['maxmemory-policy']])).toEqual([
      ['a:1', 'master', 'allkeys-lru'],
      ['b:1', 'slave', 'noeviction'],
    ]);
  });
});

describe('planning an instance', () => {
  const target = { instance: 'a:1', shard: 's0', role: 'master' as const, settings: { 'maxmemory-policy': 'allkeys-lru', maxmemory: '100mb' } };

  it('changes nothing when Redis has the desired values, in its own spelling', () => {
    const plan = planInstanceConfig(target, new Map([['maxmemory-policy', 'allkeys-lru'], ['maxmemory', '104857600']]));
    expect(plan.changes).toEqual([]);
    expect(plan.inForce.map((k) => k.key)).toEqual(['maxmemory-policy', 'maxmemory']);
  });

  it('says "desired changed" for a value it never saw in force', () => {
    const plan = planInstanceConfig(target, new Map([['maxmemory-policy', 'noeviction'], ['maxmemory', '104857600']]));
    expect(plan.changes).toEqual([expect.objectContaining({ key: 'maxmemory-policy', from: 'noeviction', to: 'allkeys-lru', drift: false })]);
    expect(plan.changes[0]!.reason).toMatch(/^desired changed: maxmemory-policy noeviction -> allkeys-lru/);
  });

  it('says "drift" for a value that was in force and changed since', () => {
    const confirmed = new Map([['maxmemory-policy', { desired: 'allkeys-lru', actual: 'allkeys-lru' }]]);
    const plan = planInstanceConfig(target, new Map([['maxmemory-policy', 'volatile-ttl'], ['maxmemory', '104857600']]), confirmed);
    expect(plan.changes).toEqual([expect.objectContaining({ key: 'maxmemory-policy', drift: true })]);
    expect(plan.changes[0]!.reason).toMatch(/^drift: maxmemory-policy was volatile-ttl/);
  });

  it('takes the spelling Redis gave right after a set as in force', () => {
    const odd = { ...target, settings: { 'client-output-buffer-limit': 'pubsub 32mb 8mb 60' } };
    const confirmed = new Map([['client-output-buffer-limit', { desired: 'pubsub 32mb 8mb 60', actual: 'normal 0 0 0 pubsub 33554432 8388608 60' }]]);
    expect(planInstanceConfig(odd, new Map([['client-output-buffer-limit', 'normal 0 0 0 pubsub 33554432 8388608 60']]), confirmed).changes).toEqual([]);
  });
});
