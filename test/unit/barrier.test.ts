import { describe, expect, it } from 'vitest';
import { BarrierTally, describeBarrier } from '../../src/controller/barrier.js';
import { MalformedValueError } from '../../src/model/errors.js';
import type { ProxyInfo } from '../../src/model/schemas.js';
import type { ProxyRegistration } from '../../src/store/proxy-registry.js';

function at(id: string, epoch: number | null): ProxyRegistration {
  const info: ProxyInfo = { id, cluster: 'c', address: '127.0.0.1:1', metrics: null, pid: 1, version: 'v', epoch, kind: 'cfgserver', startedAt: 't', updatedAt: 't' };
  return { id, info };
}

const malformed = (id: string): ProxyRegistration => ({ id, problem: new MalformedValueError(`/p/${id}`, 'not JSON') });

describe('BarrierTally', () => {
  it('is settled with no proxy at all', () => {
    const t = new BarrierTally(7);
    t.resync([], 0);
    expect(t.settled()).toBe(true);
    expect(t.outcome(1, false)).toMatchObject({ acknowledged: [], gone: [], pending: [], malformed: [] });
  });

  it('waits for a proxy behind until it registers the epoch or a newer one', () => {
    const t = new BarrierTally(7);
    t.resync([at('a', 7), at('b', 6), at('c', null)], 0);
    expect(t.settled()).toBe(false);
    t.seen('b', at('b', 8), 3);
    expect(t.settled()).toBe(false);
    t.seen('c', at('c', 7), 5);
    expect(t.settled()).toBe(true);
    expect(t.outcome(5, false).acknowledged).toEqual([
      { id: 'a', afterMs: 0 },
      { id: 'b', afterMs: 3 },
      { id: 'c', afterMs: 5 },
    ]);
  });

  it('counts a proxy behind whose key went away as gone, one that drained then left as acknowledged', () => {
    const t = new BarrierTally(7);
    t.resync([at('a', 7), at('b', 6)], 0);
    t.seen('a', null, 10);
    t.seen('b', null, 2900);
    expect(t.settled()).toBe(true);
    const o = t.outcome(2900, false);
    expect(o.acknowledged).toEqual([{ id: 'a', afterMs: 0 }]);
    expect(o.gone).toEqual([{ id: 'b', afterMs: 2900 }]);
  });

  it('waits again for a proxy that re-registers behind (restarted under the same id)', () => {
    const t = new BarrierTally(7);
    t.resync([at('a', 7)], 0);
    t.seen('a', at('a', 6), 4);
    expect(t.settled()).toBe(false);
    expect(t.outcome(4, true).pending).toEqual([{ id: 'a', epoch: 6 }]);
  });

  it('reports a malformed registration without waiting on it', () => {
    const t = new BarrierTally(7);
    t.resync([malformed('x'), at('a', 7)], 0);
    expect(t.settled()).toBe(true);
    expect(t.outcome(0, false).malformed).toEqual([{ id: 'x', problem: 'malformed value at /p/x: not JSON' }]);
  });

  it('after a re-read, a key no longer there went away', () => {
    const t = new BarrierTally(7);
    t.resync([at('a', 6), at('b', 6)], 0);
    t.resync([at('b', 7)], 40);
    expect(t.outcome(40, false)).toMatchObject({ gone: [{ id: 'a', afterMs: 40 }], acknowledged: [{ id: 'b', afterMs: 40 }], pending: [] });
  });
});

describe('describeBarrier', () => {
  const base = { epoch: 7, acknowledged: [], gone: [], pending: [], malformed: [], timedOut: false, durationMs: 4 };

  it('says how many proxies drained and how long it took', () => {
    const ack = [1, 2, 3].map((i) => ({ id: `p${i}`, afterMs: 1 }));
    expect(describeBarrier({ ...base, acknowledged: ack })).toBe('3 proxies drained epoch 7 in 4 ms (p1, p2, p3)');
  });

  it('names ten proxies at most', () => {
    const ack = Array.from({ length: 12 }, (_, i) => ({ id: `p${i}`, afterMs: 1 }));
    expect(describeBarrier({ ...base, acknowledged: ack })).toBe('12 proxies drained epoch 7 in 4 ms (p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, and 2 more)');
  });

  it('says when there was no proxy to wait for', () => {
    expect(describeBarrier(base)).toBe('no proxy to wait for: epoch 7 (4 ms)');
  });

  it('names a proxy that left the registry and when', () => {
    expect(describeBarrier({ ...base, acknowledged: [{ id: 'p1', afterMs: 0 }], gone: [{ id: 'p2', afterMs: 2950 }], durationMs: 2951 })).toBe(
      '1 proxy drained epoch 7 (p1); p2 left the registry (lease expired or proxy stopped) after 2950 ms; done in 2951 ms',
    );
  });

  it('warns of a timeout, naming the proxies behind', () => {
    expect(describeBarrier({ ...base, timedOut: true, durationMs: 6000, pending: [{ id: 'p2', epoch: 6 }], acknowledged: [{ id: 'p1', afterMs: 2 }], malformed: [{ id: 'x', problem: 'bad' }] })).toBe(
      'warning: timed out after 6000 ms waiting for epoch 7: p2 (drained 6) had not drained it; 1 proxy drained it (p1); x has a malformed registration, not waited on (bad)',
    );
  });
});
