/**
 * Schemas of everything cfgserver reads from outside: CLI flags, HTTP bodies, YAML files and
 * etcd values. One definition each; types are inferred from them.
 */
import { z } from 'zod';
import { ValidationError } from './errors.js';

export const MAX_SLOTS = 16384;
export const DEFAULT_SLOTS = 1024;
export const ROUTE_FORMAT = 1;

export const clusterName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'a cluster name is 1-63 characters of a-z, 0-9 and "-", not starting with "-"');

export const shardId = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'a shard id is 1-32 characters of a-z, 0-9 and "-", not starting with "-"');

const hostPattern = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;

/** "host:port" of a Redis instance; the host is lower-cased so that comparisons are exact. */
export const address = z
  .string()
  .transform((s) => s.trim().toLowerCase())
  .refine((s) => {
    const i = s.lastIndexOf(':');
    if (i <= 0) return false;
    const port = Number(s.slice(i + 1));
    return hostPattern.test(s.slice(0, i)) && /^\d+$/.test(s.slice(i + 1)) && port >= 1 && port <= 65535;
  }, 'an instance address is HOST:PORT with a port in 1..65535');

export const slotCount = z.number().int().min(1).max(MAX_SLOTS);

/** An inclusive slot range [first, last]. */
export const slotRange = z.tuple([z.number().int().min(0), z.number().int().min(0)]).refine(([a, b]) => a <= b, 'a slot range is [first, last] with first <= last');

export const shardSchema = z.strictObject({
  id: shardId,
  master: address,
  slaves: z.array(address).default([]),
  slots: z.array(slotRange).default([]),
});
export type Shard = z.infer<typeof shardSchema>;

export const migrationSchema = z.strictObject({
  slot: z.number().int().min(0),
  from: shardId,
  to: shardId,
});

export const routeSchema = z
  .strictObject({
    format: z.literal(ROUTE_FORMAT),
    cluster: clusterName,
    epoch: z.number().int().min(1),
    slotCount,
    hash: z.literal('crc16'),
    shards: z.array(shardSchema),
    migrating: z.array(migrationSchema).default([]),
    updatedAt: z.string(),
  })
  .superRefine((route, ctx) => {
    for (const problem of routeProblems(route)) ctx.addIssue({ code: 'custom', message: problem });
  });
export type Route = z.infer<typeof routeSchema>;

export const probeSettings = z.strictObject({
  intervalMs: z.number().int().min(100).max(60_000).default(1000),
  timeoutMs: z.number().int().min(50).max(30_000).default(500),
  downAfterMs: z.number().int().min(500).max(600_000).default(3000),
});
export type ProbeSettings = z.infer<typeof probeSettings>;

export const clusterSpecSchema = z.strictObject({
  name: clusterName,
  slotCount,
  hash: z.literal('crc16'),
  paused: z.boolean().default(false),
  probe: probeSettings.default(() => probeSettings.parse({})),
  createdAt: z.string(),
});
export type ClusterSpec = z.infer<typeof clusterSpecSchema>;

/** The YAML an operator writes for `cfgctl cluster create -f`. */
export const clusterFileSchema = z.strictObject({
  name: clusterName.optional(),
  slots: slotCount.optional(),
  probe: probeSettings.partial().optional(),
  shards: z
    .array(
      z.strictObject({
        id: shardId.optional(),
        master: address,
        slaves: z.array(address).default([]),
      }),
    )
    .default([]),
});
export type ClusterFile = z.infer<typeof clusterFileSchema>;

/** What one controller replica saw of one instance; written to etcd when it changes. */
export const instanceHealthSchema = z.strictObject({
  address,
  reachable: z.boolean(),
  role: z.enum(['master', 'slave', 'unknown']),
  masterAddress: z.string().nullable(),
  linkUp: z.boolean().nullable(),
  linkDownSinceSec: z.number().nullable(),
  offset: z.number().nullable(),
  connectedSlaves: z.number().nullable(),
  error: z.string().nullable(),
  /** When the instance last answered a probe (ISO time), null if never. */
  lastOkAt: z.string().nullable(),
  /** Since when the reachable/role/master state has been what it is. */
  since: z.string(),
  observedAt: z.string(),
  controller: z.string(),
});
export type InstanceHealth = z.infer<typeof instanceHealthSchema>;

export const controllerInfoSchema = z.strictObject({
  id: z.string(),
  address: z.string().nullable(),
  version: z.string(),
  pid: z.number(),
  startedAt: z.string(),
});
export type ControllerInfo = z.infer<typeof controllerInfoSchema>;

export const historyEntrySchema = z.strictObject({
  at: z.string(),
  cluster: clusterName,
  controller: z.string(),
  action: z.string(),
  shard: z.string().nullable().default(null),
  target: z.string().nullable().default(null),
  reason: z.string(),
  outcome: z.enum(['done', 'failed', 'refused', 'info']),
  durationMs: z.number().nullable().default(null),
  detail: z.record(z.string(), z.unknown()).optional(),
});
export type HistoryEntry = z.infer<typeof historyEntrySchema>;

/** Structural rules of a route that a schema cannot express field by field. */
export function routeProblems(route: { slotCount: number; shards: { id: string; master: string; slaves: string[]; slots: [number, number][] }[] }): string[] {
  const problems: string[] = [];
  const owner = new Map<number, string>();
  const shardIds = new Set<string>();
  const instances = new Map<string, string>();
  for (const shard of route.shards) {
    if (shardIds.has(shard.id)) problems.push(`shard id ${shard.id} appears twice`);
    shardIds.add(shard.id);
    for (const addr of [shard.master, ...shard.slaves]) {
      const other = instances.get(addr);
      if (other !== undefined) problems.push(`instance ${addr} is in shard ${other} and in shard ${shard.id}`);
      instances.set(addr, shard.id);
    }
    for (const [first, last] of shard.slots) {
      if (last >= route.slotCount) {
        problems.push(`shard ${shard.id}: slot range [${first}, ${last}] is outside 0..${route.slotCount - 1}`);
        continue;
      }
      for (let s = first; s <= last; s++) {
        const prev = owner.get(s);
        if (prev !== undefined) {
          problems.push(`slot ${s} is owned by both ${prev} and ${shard.id}`);
          break;
        }
        owner.set(s, shard.id);
      }
    }
  }
  return problems;
}

/** Parses untrusted input with a schema, turning schema failures into one readable ValidationError. */
export function parseInput<T extends z.ZodType>(schema: T, value: unknown, what: string): z.infer<T> {
  const result = schema.safeParse(value);
  if (!result.success) throw new ValidationError(`invalid ${what}: ${describeIssues(result.error)}`);
  return result.data;
}

export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => (issue.path.length ? `${issue.path.join('.')}: ${issue.message}` : issue.message))
    .join('; ');
}
