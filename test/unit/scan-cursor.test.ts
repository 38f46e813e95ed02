import { describe, expect, it } from 'vitest';
import { decodeScanCursor, encodeScanCursor, nextScanCursor, scanTarget, type ScanPosition } from '../../src/proxy/scan-cursor.js';

/** What redis-py and go-redis do with a cursor: parse it as an integer, send that integer back. */
const throughIntegerClient = (cursor: string) => BigInt(cursor).toString();

describe('the proxy SCAN cursor', () => {
  it('round-trips the shard id and the shard cursor through an integer parse', () => {
    const ids = ['s0', 's1', 's12', 'a', 'z', '9', 'shard-with-a-long-id-0123456789a', 'x-1'];
    const inners = [0n, 1n, 7n, 12345n, 2n ** 32n, 2n ** 64n - 1n];
    for (const shardId of ids) {
      for (const inner of inners) {
        const cursor = encodeScanCursor({ shardId, inner });
        expect(cursor).toMatch(/^[1-9]\d*$/);
        expect(cursor).not.toBe('0');
        expect(decodeScanCursor(throughIntegerClient(cursor))).toEqual({ shardId, inner });
      }
    }
  });

  it('is distinct for every (shard, inner) pair, including ids that are prefixes of each other', () => {
    const seen = new Set<string>();
    for (const shardId of ['s', 's0', 's00', '0', '00', 'a', 'aa', 'a-']) {
      for (let inner = 0n; inner < 50n; inner++) seen.add(encodeScanCursor({ shardId, inner }));
    }
    expect(seen.size).toBe(8 * 50);
  });

  it('fits in 64 bits for default shard ids while the shard cursor is below 2^43', () => {
    expect(BigInt(encodeScanCursor({ shardId: 's99', inner: 2n ** 43n - 1n }))).toBeLessThan(2n ** 64n);
  });

  it('treats 0 as the start, and refuses what it cannot have made', () => {
    expect(decodeScanCursor('0')).toBe('start');
    expect(decodeScanCursor('000')).toBe('start');
    for (const bad of ['', '-1', 'abc', '1.5', ' 1', '33', '66', '9'.repeat(91)]) expect(decodeScanCursor(bad), bad).toBeNull();
    // len 1, id '-' (digit 0): no shard id starts with '-'.
    expect(decodeScanCursor('1')).toBeNull();
    expect(decodeScanCursor('34')).toEqual({ shardId: '0', inner: 0n });
  });

  it('walks shards in id order, whatever their order in the route', () => {
    const route = ['s2', 's0', 'b', 's1'];
    const visited: string[] = [];
    let at: ScanPosition | 'start' = 'start';
    for (;;) {
      const target = scanTarget(route, at);
      if (!target) break;
      expect(target.inner).toBe(0n);
      visited.push(target.shardId);
      const next = nextScanCursor(route, target.shardId, 0n);
      if (next === '0') break;
      at = decodeScanCursor(next) as ScanPosition;
    }
    expect(visited).toEqual(['b', 's0', 's1', 's2']);
  });

  it('stays on its shard when a shard is added before it, and goes on with the next id when its shard is gone', () => {
    const cursor = nextScanCursor(['s0', 's1', 's2'], 's1', 42n);
    const at = decodeScanCursor(cursor) as ScanPosition;
    expect(scanTarget(['a0', 's0', 's1', 's2'], at)).toEqual({ shardId: 's1', inner: 42n });
    expect(scanTarget(['s2', 's0'], at)).toEqual({ shardId: 's2', inner: 0n });
    expect(scanTarget(['s0'], at)).toBeNull();
    // Moving on from a finished shard names the next one, added or not.
    expect(decodeScanCursor(nextScanCursor(['s0', 's1', 's1a', 's2'], 's1', 0n))).toEqual({ shardId: 's1a', inner: 0n });
    expect(nextScanCursor(['s0', 's1'], 's1', 0n)).toBe('0');
    expect(scanTarget([], 'start')).toBeNull();
  });
});
