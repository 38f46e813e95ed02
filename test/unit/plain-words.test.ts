import { describe, expect, it } from 'vitest';
import { plainEtcdReason } from '../../src/store/etcd.js';
import { closest } from '../../src/util/suggest.js';

describe('plain words for operators', () => {
  it("turns gRPC's etcd errors into a short reason", () => {
    expect(plainEtcdReason(new Error('14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:2379. Resolution note: '))).toBe('connection refused (127.0.0.1:2379)');
    expect(plainEtcdReason(new Error('4 DEADLINE_EXCEEDED: Deadline exceeded after 3.001s'))).toBe('no answer within the deadline');
    expect(plainEtcdReason(new Error('14 UNAVAILABLE: etcdserver: no leader'))).toMatch(/^the etcd member has no leader/);
    expect(plainEtcdReason(new Error('7 PERMISSION_DENIED: etcdserver: permission denied. More text'))).toBe('etcdserver: permission denied');
  });

  it('suggests the nearest known names for a typo', () => {
    expect(closest('shop-cache', ['shop-cahce', 'orders', 'shop-cache-eu'])).toEqual(['shop-cache-eu', 'shop-cahce']);
    expect(closest('orders', ['ordres', 'billing'])).toEqual(['ordres']);
    expect(closest('x', ['billing'])).toEqual([]);
  });
});
