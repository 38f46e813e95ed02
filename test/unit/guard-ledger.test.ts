import { describe, expect, it } from 'vitest';
import { GuardLedger } from '../../src/api/guard-ledger.js';
import { behind } from '../../src/controller/guarded-proxies.js';

describe('GuardLedger', () => {
  it("keeps each proxy's latest question per cluster, with how long ago, and forgets it after minutes", () => {
    let now = 1_000_000;
    const ledger = new GuardLedger(() => now);
    ledger.note('a', 'p1', 5, 2000);
    ledger.note('b', 'p1', 9, 2000);
    now += 300;
    ledger.note('a', 'p1', 6, 2000);
    ledger.note('a', 'p2', 4, 3000);
    now += 200;
    expect(ledger.of('a')).toEqual([
      { proxy: 'p1', epoch: 6, ttlMs: 2000, agoMs: 200 },
      { proxy: 'p2', epoch: 4, ttlMs: 3000, agoMs: 200 },
    ]);
    expect(ledger.of('b')).toEqual([{ proxy: 'p1', epoch: 9, ttlMs: 2000, agoMs: 500 }]);
    now += 10 * 60_000;
    expect(ledger.of('a')).toEqual([]);
  });
});

describe('behind', () => {
  it('names the proxies that asked within their TTL and had not drained the epoch, by their latest report across controllers', () => {
    expect(
      behind(
        [
          { proxy: 'p1', epoch: 9, ttlMs: 2000, agoMs: 900 }, // an older report to another controller
          { proxy: 'p1', epoch: 10, ttlMs: 2000, agoMs: 100 }, // the latest: drained
          { proxy: 'p2', epoch: 9, ttlMs: 2000, agoMs: 400 }, // behind, still forwarding
          { proxy: 'p3', epoch: 3, ttlMs: 2000, agoMs: 2500 }, // quiet past its TTL: its guard refuses to forward
        ],
        10,
      ),
    ).toEqual(['p2']);
  });
});
