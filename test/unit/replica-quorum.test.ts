import { describe, expect, it } from 'vitest';
import { controllerConfigSchema } from '../../src/controller/config.js';
import { stallAfterMs } from '../../src/controller/controller.js';
import { HOLD_MS, HeldCount } from '../../src/controller/replica-quorum.js';
import { replicaBase } from '../../src/model/replicas.js';

describe('replicaBase', () => {
  it('is the configured count when there is one, whatever was seen or is registered', () => {
    expect(replicaBase(3, 5, 1)).toMatchObject({ replicas: 3, source: 'configured (cfgctl replicas set 3)' });
    expect(replicaBase(1, 3, 3).replicas).toBe(1);
  });

  it('without one, is the most seen together, or the number registered now if more', () => {
    expect(replicaBase(null, 3, 1).replicas).toBe(3);
    expect(replicaBase(null, 2, 4).replicas).toBe(4);
    expect(replicaBase(null, null, 2).replicas).toBe(2);
    expect(replicaBase(null, 3, 1).source).toContain('not configured');
  });

  it('a single replica with nothing recorded is 1: the playground decides alone', () => {
    expect(replicaBase(null, null, 1).replicas).toBe(1);
    expect(replicaBase(null, null, 0).replicas).toBe(1);
  });
});

describe('HeldCount', () => {
  it('counts k replicas only once at least k were registered for the whole hold time', () => {
    const held = new HeldCount(10_000);
    expect(held.observe(1, 0)).toBe(0);
    expect(held.observe(3, 1000)).toBe(0);
    expect(held.observe(3, 10_000)).toBe(1);
    expect(held.observe(3, 10_999)).toBe(1);
    expect(held.observe(3, 11_000)).toBe(3);
  });

  it('a moment with one replica too many (a killed one whose lease still lives) is not counted', () => {
    const held = new HeldCount(10_000);
    held.observe(3, 0);
    held.observe(4, 20_000); // a restarted replica beside the dead one's registration
    expect(held.observe(3, 22_000)).toBe(3);
    expect(held.observe(3, 40_000)).toBe(3);
  });

  it('a drop below k restarts the run of k', () => {
    const held = new HeldCount(10_000);
    held.observe(2, 0);
    held.observe(1, 5000);
    expect(held.observe(2, 12_000)).toBe(1);
    expect(held.observe(2, 15_000)).toBe(1);
    expect(held.observe(2, 22_000)).toBe(2);
  });

  it('holds longer than any lease the controller config allows', () => {
    expect(controllerConfigSchema.safeParse({ leaseTtlSeconds: Math.ceil(HOLD_MS / 1000) }).success).toBe(false);
  });
});

describe('stallAfterMs', () => {
  it('is the down window plus two probe periods, never under 10 s', () => {
    expect(stallAfterMs({ intervalMs: 200, timeoutMs: 200, downAfterMs: 1000 })).toBe(10_000);
    expect(stallAfterMs({ intervalMs: 1000, timeoutMs: 500, downAfterMs: 30_000 })).toBe(33_000);
  });
});
