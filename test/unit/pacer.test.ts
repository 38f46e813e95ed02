import { describe, expect, it } from 'vitest';
import { Pacer } from '../../src/util/pacer.js';

/** A pacer on a clock the test moves: sleeps advance it. */
function paced(rate: () => number | null) {
  let clock = 0;
  const waits: number[] = [];
  const pacer = new Pacer(rate, () => clock, async (ms) => {
    waits.push(ms);
    clock += ms;
  });
  return { pacer, waits, advance: (ms: number) => (clock += ms), clock: () => clock };
}

describe('Pacer', () => {
  it('holds the average to the rate: 1000 units at 500/s take 2 s', async () => {
    const { pacer, clock } = paced(() => 500);
    for (let i = 0; i < 10; i++) await pacer.took(100);
    expect(clock()).toBe(2000);
  });

  it('does not wait without a limit, and reads the rate afresh on every call', async () => {
    let rate: number | null = null;
    const { pacer, waits } = paced(() => rate);
    await pacer.took(1000);
    expect(waits).toEqual([]);
    rate = 100;
    await pacer.took(50);
    expect(waits).toEqual([500]);
    rate = null;
    await pacer.took(50);
    expect(waits).toEqual([500]);
  });

  it('gives no credit for idle time: after a long pause the next batch still waits its share', async () => {
    const { pacer, waits, advance } = paced(() => 100);
    await pacer.took(10);
    advance(60_000);
    await pacer.took(10);
    expect(waits).toEqual([100, 100]);
  });
});
