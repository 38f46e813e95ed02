import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { RouteGuard } from '../../src/proxy/route-guard.js';

function guard(lease: { ms: number }, controllersWithoutApi = 0) {
  return new RouteGuard({
    cluster: 'c', proxyId: 'p', ttlMs: 2000, checkMs: 500, epoch: () => 7, drainedEpoch: () => 7,
    leaseRemainingMs: () => lease.ms, controllers: () => [], controllersWithoutApi: () => controllersWithoutApi,
    onRoute: () => undefined, log: silentLogger(),
  });
}

describe('RouteGuard', () => {
  it('is in doubt until a look finds the lease comfortably alive, and again once it is not', async () => {
    const lease = { ms: 1800 };
    const g = guard(lease);
    expect(g.inDoubt).toBe(true);
    await g.check();
    expect([g.inDoubt, g.blocked]).toEqual([false, false]);
    lease.ms = 900; // under two looks' time: the next look may come after the deadline
    await g.check();
    expect(g.inDoubt).toBe(true);
  });

  it('with no controller running, confirms its route past the lease; with one it cannot ask, it does not', async () => {
    const lease = { ms: 0 };
    // Each one's first confirmation (the TTL from its start) has run out.
    const lapsed = (g: RouteGuard) => ((g as unknown as { confirmedUntil: number }).confirmedUntil = Date.now() - 1);
    const alone = guard(lease);
    lapsed(alone);
    expect(alone.blocked).toBe(true);
    await alone.check();
    expect(alone.blocked).toBe(false);
    const unaskable = guard(lease, 2);
    lapsed(unaskable);
    await unaskable.check();
    expect([unaskable.inDoubt, unaskable.blocked]).toEqual([true, true]);
  });
});
