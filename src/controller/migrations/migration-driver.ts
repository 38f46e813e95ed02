/**
 * Runs each cluster's unfinished migration on the leader, in the background: a migration lasts
 * many cycles, while the leader goes on probing and failing over (a failover of a source or target
 * is what the migration then waits for). One run per cluster per replica (record-run.ts).
 */
import { RecordDriver } from '../record-run.js';
import { MigrationRun, type MigrationDeps } from './run-migration.js';

export class MigrationDriver extends RecordDriver {
  constructor(private readonly deps: MigrationDeps) {
    super(deps.log, async (cluster) => {
      const active = await deps.migrations.active(cluster);
      if (!active) return null;
      const run = new MigrationRun(deps, active);
      return { label: run.label, inline: false, run: () => run.run(), said: () => `migration ${active.record.id}: carrying on at step ${active.record.next}` };
    });
  }

  close(): void {
    this.deps.mover.close();
    this.deps.bigKeys.close();
  }
}
