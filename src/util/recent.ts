import { performance } from 'node:perf_hooks';

/**
 * A read shared by every caller within `maxAgeMs` of the call that started it: the leader's
 * cycles of many clusters run at about the same moment, and what is not cluster-specific (the
 * registered replicas, the replica count) is read once for all of them. A failed read is not kept.
 */
export class Recent<T> {
  private last: { at: number; value: Promise<T> } | null = null;

  constructor(
    private readonly load: () => Promise<T>,
    private readonly maxAgeMs: number,
  ) {}

  get(now = performance.now()): Promise<T> {
    if (this.last && now - this.last.at < this.maxAgeMs) return this.last.value;
    const value = this.load();
    const entry = { at: now, value };
    this.last = entry;
    value.catch(() => {
      if (this.last === entry) this.last = null;
    });
    return value;
  }
}
