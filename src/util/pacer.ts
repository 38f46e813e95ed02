/**
 * Paces work to at most `rate()` units per second, read afresh on every call (an operator may
 * change it while the work runs). Callers report what they just did with `took(n)` and wait for
 * the promise: it resolves once doing n units at the rate would have taken the time. The first
 * batch goes at once; a null rate means no limit.
 */
export class Pacer {
  /** When the work reported so far may be considered done at the rate. */
  private nextFree = 0;

  constructor(
    private readonly rate: () => number | null,
    private readonly now: () => number = () => performance.now(),
    private readonly sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
  ) {}

  /** The wait, in ms, that `n` more units need (0 when not limited or behind schedule). */
  took(n: number): Promise<void> {
    const rate = this.rate();
    const now = this.now();
    if (rate === null || rate <= 0 || n <= 0) {
      this.nextFree = now;
      return Promise.resolve();
    }
    // Idle time earns no credit: a pause or a slow source does not allow a burst afterwards.
    this.nextFree = Math.max(this.nextFree, now) + (n * 1000) / rate;
    const wait = this.nextFree - now;
    return wait >= 1 ? this.sleep(wait) : Promise.resolve();
  }
}
