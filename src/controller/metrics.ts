/**
 * Prometheus metrics of a controller replica. A registry per replica (not the global one), so
 * that several replicas in one process — as in tests — keep separate counts.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class ControllerMetrics {
  readonly registry = new Registry();
  readonly leader = new Gauge({ name: 'cfgserver_controller_leader', help: '1 while this replica holds the leader lock', registers: [this.registry] });
  readonly clusters = new Gauge({ name: 'cfgserver_clusters', help: 'Clusters this replica watches', registers: [this.registry] });
  readonly instancesDown = new Gauge({
    name: 'cfgserver_instances_unreachable',
    help: 'Instances that failed their last probe',
    labelNames: ['cluster'],
    registers: [this.registry],
  });
  readonly probes = new Counter({ name: 'cfgserver_probes_total', help: 'Probes sent', labelNames: ['result'], registers: [this.registry] });
  readonly probeSeconds = new Histogram({
    name: 'cfgserver_probe_duration_seconds',
    help: 'INFO replication round trip',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [this.registry],
  });
  readonly actions = new Counter({
    name: 'cfgserver_actions_total',
    help: 'Actions the leader took on Redis',
    labelNames: ['action', 'outcome'],
    registers: [this.registry],
  });
  readonly cycleSeconds = new Histogram({
    name: 'cfgserver_cycle_duration_seconds',
    help: 'Duration of one probe-and-reconcile cycle of one cluster',
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [this.registry],
  });

  readonly migrationKeys = new Counter({
    name: 'cfgserver_migration_keys_total',
    help: "Keys the leader's mover moved between shards (proxies count their own moves on access)",
    labelNames: ['cluster'],
    registers: [this.registry],
  });
  readonly migrationSlotsPending = new Gauge({
    name: 'cfgserver_migration_slots_pending',
    help: 'Slots of the migration under way that have not been committed to their new shard yet (0: none under way)',
    labelNames: ['cluster'],
    registers: [this.registry],
  });
  readonly migrationSteps = new Counter({
    name: 'cfgserver_migration_steps_total',
    help: 'Migration steps recorded, by step and the state the migration was left in',
    labelNames: ['cluster', 'step', 'state'],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'cfgserver_' });
  }
}
