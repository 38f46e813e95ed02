/**
 * Runs each cluster's unfinished migration on the leader, in the background: a migration lasts
 * many cycles, while the leader goes on probing and failing over (a failover of a source or target
 * is what the migration then waits for). One run per cluster per replica; a run ends when the
 * migration does, or when this replica stops leading — a new leader carries on from `next`.
 */
import { NotLeaderError, errorMessage } from '../../model/errors.js';
import { MigrationRun, type MigrationDeps } from './run-migration.js';

export class MigrationDriver {
  private readonly running = new Map<string, Promise<void>>();

  constructor(private readonly deps: MigrationDeps) {}

  /** Starts the cluster's unfinished migration unless it runs here already; says what it did, or null. */
  async carryOn(cluster: string): Promise<string | null> {
    if (this.running.has(cluster)) return null;
    const active = await this.deps.migrations.active(cluster);
    if (!active) return null;
    const run = new MigrationRun(this.deps, active)
      .run()
      .catch((err) => {
        if (err instanceof NotLeaderError) return;
        // Retried from its recorded step at the next cycle.
        this.deps.log.error(`migration ${active.migration.id} stopped: ${errorMessage(err)}; carrying on at the next cycle`, { cluster });
      })
      .finally(() => this.running.delete(cluster));
    this.running.set(cluster, run);
    return `migration ${active.migration.id}: carrying on at step ${active.migration.next}`;
  }

  /** Waits (at most `ms`) for the runs to end: they end at their next step once this replica no longer leads. */
  async settle(ms = 2000): Promise<void> {
    await Promise.race([Promise.all(this.running.values()), new Promise((r) => setTimeout(r, ms).unref())]);
  }

  close(): void {
    this.deps.mover.close();
    this.deps.bigKeys.close();
  }
}
