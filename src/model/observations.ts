/**
 * What the controller knows of the instances: this replica's own probe results, and the views
 * every replica published. Plain data, so that the decisions made on them stay pure.
 */
import type { ReplicationInfo } from './replication-info.js';
import type { InstanceHealth } from './schemas.js';

/** One probe of one instance by this replica. */
export interface Observation {
  address: string;
  at: Date;
  latencyMs: number;
  info: ReplicationInfo | null;
  error: string | null;
}

export type Observations = Map<string, Observation>;

/** controller id → instance address → what that controller saw. */
export type HealthViews = Map<string, Map<string, InstanceHealth>>;
