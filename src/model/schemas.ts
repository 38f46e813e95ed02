/**
 * Schemas of everything cfgserver reads from outside: CLI flags, HTTP bodies, YAML files and
 * etcd values. One definition each; types are inferred from them.
 */
import { z } from 'zod';
import { parseHostPort } from './address.js';
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

/**
 * An address in its one spelling ("H:06379" is "h:6379", the one Redis reports in INFO), or null
 * when it is not HOST:PORT with a port in 1..65535.
 */
function normalizeAddress(raw: string): string | null {
  const parsed = parseHostPort(raw.trim().toLowerCase());
  if (parsed === null || !hostPattern.test(parsed.host) || parsed.port < 1 || parsed.port > 65535) return null;
  return `${parsed.host}:${parsed.port}`;
}

/**
 * Every proxy decodes the whole route on every change, a thousand addresses for 500 shards, and
 * they are the same addresses from one change to the next: each is checked once (bounded: a
 * flood of new ones empties the memo rather than growing it).
 */
const normalizedAddresses = new Map<string, string | null>();
const ADDRESS_MEMO_MAX = 50_000;

/** "host:port" of a Redis instance; the host is lower-cased so that comparisons are exact. */
export const address = z.string().transform((raw, ctx) => {
  let normalized = normalizedAddresses.get(raw);
  if (normalized === undefined) {
    normalized = normalizeAddress(raw);
    if (normalizedAddresses.size >= ADDRESS_MEMO_MAX) normalizedAddresses.clear();
    normalizedAddresses.set(raw, normalized);
  }
  if (normalized === null) {
    ctx.addIssue({ code: 'custom', message: 'an instance address is HOST:PORT with a port in 1..65535' });
    return z.NEVER;
  }
  return normalized;
});

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

/**
 * A slot on its way from one shard to another (docs/migration.md). `prepare`: proxies hold the
 * slot's commands (so that no proxy still writes to `from` once keys start to move); `moving`:
 * proxies move a key from `from` to `to` before running a command on it, at `to`. The route's owner
 * of the slot is one of the two until the move is committed.
 */
export const MIGRATION_PHASES = ['prepare', 'moving'] as const;
export const migrationSchema = z.strictObject({
  slot: z.number().int().min(0),
  from: shardId,
  to: shardId,
  phase: z.enum(MIGRATION_PHASES),
});
export type SlotMigration = z.infer<typeof migrationSchema>;

export const routeSchema = z
  .strictObject({
    format: z.literal(ROUTE_FORMAT),
    cluster: clusterName,
    epoch: z.number().int().min(1),
    slotCount,
    hash: z.literal('crc16'),
    shards: z.array(shardSchema),
    migrating: z.array(migrationSchema).default([]),
    /**
     * Shards whose masters may hold keys of slots they do not own: a split's two shards from its
     * hold until its trim has deleted the other side's keys (docs/split.md). Whatever lists or
     * counts keys counts only owned slots' keys there. Absent when no shard is in that state.
     */
    trimming: z.array(shardId).optional(),
    /**
     * Shards whose master has one replica that is not one of their slaves: a split's new master,
     * from when its link to the source is up until the split's commit (docs/split.md). WAIT through
     * a proxy asks such a master for one replica more and answers one fewer. Absent when none.
     */
    feedingSplit: z.array(shardId).optional(),
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

export const failoverPolicy = z.strictObject({
  /** Fail over automatically when a master is down (false: report only). */
  auto: z.boolean().default(true),
  /** At most this many automatic failovers per cluster per window; then report only. */
  maxPerWindow: z.number().int().min(0).max(1000).default(3),
  windowMs: z.number().int().min(1000).max(30 * 86_400_000).default(3_600_000),
  /**
   * A slave whose link to its master has been down longer than this is too stale to promote.
   * null: Sentinel's rule, 10 × the down window + the time since the master went down.
   */
  maxLinkDownMs: z.number().int().min(0).nullable().default(null),
  /** Planned switchover: the longest writes may stay paused while the target catches up. */
  switchoverTimeoutMs: z.number().int().min(100).max(60_000).default(5000),
  /** Planned switchover: refuse a target more than this many bytes behind, unless forced. */
  switchoverMaxLagBytes: z.number().int().min(0).default(1_048_576),
  /**
   * A failover or switchover that has not reached its point of no return this long after a leader
   * took it is ended, undoing what it did (see docs/failover.md, "Tasks that cannot finish").
   */
  taskTimeoutMs: z.number().int().min(1000).max(3_600_000).default(30_000),
  /**
   * After a failover publishes a new route: the longest the task waits for every live proxy to
   * report the new epoch drained, or to leave the registry. Twice the proxy's lease TTL (3 s): a
   * proxy that died or was cut off just after its last keep-alive leaves the registry one TTL
   * later, plus etcd's lease-expiry check (every 500 ms, later on a loaded etcd); the second TTL
   * is the margin. A live proxy with a command stuck on a stalled old master drains only at its
   * --backend-timeout (10 s): the barrier then ends as timed out, naming it (docs/failover.md).
   */
  barrierTimeoutMs: z.number().int().min(100).max(600_000).default(6000),
  /**
   * Keep `min-replicas-to-write 1` on every master that has a live slave (0 on one that has none),
   * so that a master cut off from its slaves stops acknowledging writes (docs/failover.md).
   * false: the controller turns the setting off (0) wherever it finds it on.
   */
  writeFence: z.boolean().default(true),
  /**
   * `min-replicas-max-lag` while the fence is on: a master refuses writes once no slave has
   * acknowledged for longer than this. Redis counts whole seconds and slaves acknowledge once a
   * second, so 1 refuses writes on ordinary jitter; 2 is the smallest safe value and, with the
   * default 3 s down window, stops a cut-off master at about the time its failover can complete.
   */
  writeFenceLagSeconds: z.number().int('the write fence lag is whole seconds (Redis counts in seconds)').min(1).max(60).default(2),
});
export type FailoverPolicy = z.infer<typeof failoverPolicy>;

/**
 * What clients of a cluster go through (docs/twemproxy.md): cfgserver's own proxies, which route by
 * slot, or twemproxy (nutcracker), which places keys by its own hash over the shards, with a
 * `cfgserver twemproxy-agent` beside each one. Slots then mean nothing to where keys are, so such a
 * cluster cannot migrate slots.
 */
export const PROXY_KINDS = ['cfgserver', 'twemproxy'] as const;
export const proxyKind = z.enum(PROXY_KINDS);
export type ProxyKind = z.infer<typeof proxyKind>;

export const clusterSpecSchema = z.strictObject({
  name: clusterName,
  slotCount,
  hash: z.literal('crc16'),
  paused: z.boolean().default(false),
  proxy: proxyKind.default('cfgserver'),
  probe: probeSettings.default(() => probeSettings.parse({})),
  failover: failoverPolicy.default(() => failoverPolicy.parse({})),
  createdAt: z.string(),
});
export type ClusterSpec = z.infer<typeof clusterSpecSchema>;

/** The YAML an operator writes for `cfgctl cluster create -f`. */
export const clusterFileSchema = z.strictObject({
  name: clusterName.optional(),
  slots: slotCount.optional(),
  proxy: proxyKind.optional(),
  probe: probeSettings.partial().optional(),
  failover: failoverPolicy.partial().optional(),
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
  /** This replica's own judgement: no good probe for the whole down window. */
  down: z.boolean().default(false),
  role: z.enum(['master', 'slave', 'unknown']),
  masterAddress: z.string().nullable(),
  linkUp: z.boolean().nullable(),
  linkDownSinceSec: z.number().nullable(),
  offset: z.number().nullable(),
  connectedSlaves: z.number().nullable(),
  /** replica-priority of a slave (0: never promote). */
  priority: z.number().nullable().default(null),
  replId: z.string().nullable().default(null),
  error: z.string().nullable(),
  /** When the instance last answered a probe (ISO time), null if never. */
  lastOkAt: z.string().nullable(),
  /** Since when the reachable/role/master state has been what it is. */
  since: z.string(),
  /**
   * The probe this view was written from: views are written only when the state (or the down
   * verdict) changes, so the offset and error above are as old as this.
   */
  observedAt: z.string(),
  controller: z.string(),
});
export type InstanceHealth = z.infer<typeof instanceHealthSchema>;

export const controllerInfoSchema = z.strictObject({
  id: z.string(),
  address: z.string().nullable(),
  /** The HTTP API speaks https (written only when true, so older readers keep decoding plain replicas). */
  tls: z.literal(true).optional(),
  version: z.string(),
  pid: z.number(),
  startedAt: z.string(),
  /** The version of each cluster's Redis credentials this replica uses (docs/redis-auth.md). */
  auth: z.record(z.string(), z.number()).optional(),
});
export type ControllerInfo = z.infer<typeof controllerInfoSchema>;

/** The most controller replicas a deployment may declare: far above any sensible count (3 or 5). */
export const MAX_REPLICAS = 99;
export const replicaCount = z.number().int().min(1).max(MAX_REPLICAS);

/** `settings/replicas`: how many controller replicas the deployment runs, as the operator said. */
export const replicasSettingSchema = z.strictObject({
  replicas: replicaCount,
  setAt: z.string(),
});
export type ReplicasSetting = z.infer<typeof replicasSettingSchema>;

/** `status/replicas-seen`: the most replicas registered together for a while, kept by the leader. */
export const replicasSeenSchema = z.strictObject({
  count: replicaCount,
  at: z.string(),
  by: z.string(),
});
export type ReplicasSeen = z.infer<typeof replicasSeenSchema>;

export const proxyInfoSchema = z.strictObject({
  id: z.string(),
  cluster: clusterName,
  address: z.string(),
  metrics: z.string().nullable(),
  pid: z.number(),
  version: z.string(),
  /** The route epoch this proxy has applied. */
  epoch: z.number().nullable(),
  /** The version of the cluster's Redis credentials this proxy uses, null for none (docs/redis-auth.md). */
  authVersion: z.number().nullable().optional(),
  /** cfgserver's own proxy, or a twemproxy agent (its address is then nutcracker's). */
  kind: proxyKind.default('cfgserver'),
  startedAt: z.string(),
  updatedAt: z.string(),
});
export type ProxyInfo = z.infer<typeof proxyInfoSchema>;
/** A registration as written: `kind` may be left out (cfgserver's own proxy). */
export type ProxyInfoInput = z.input<typeof proxyInfoSchema>;

export const historyEntrySchema = z.strictObject({
  at: z.string(),
  cluster: clusterName,
  controller: z.string(),
  action: z.string(),
  shard: z.string().nullable().default(null),
  target: z.string().nullable().default(null),
  reason: z.string(),
  outcome: z.enum(['done', 'failed', 'refused', 'cancelled', 'info']),
  durationMs: z.number().nullable().default(null),
  detail: z.record(z.string(), z.unknown()).optional(),
});
export type HistoryEntry = z.infer<typeof historyEntrySchema>;

export const taskStepSchema = z.strictObject({
  step: z.string(),
  at: z.string(),
  durationMs: z.number().nullable(),
  detail: z.string(),
});
export type TaskStep = z.infer<typeof taskStepSchema>;

export const TERMINAL_TASK_STATES = ['done', 'failed', 'refused', 'cancelled'] as const;

/**
 * A multi-step operation on one shard, persisted so that any leader can carry it on: `next` is
 * the step to do next, written before (or with) the side effect of the step before it.
 */
export const taskSchema = z.strictObject({
  id: z.string(),
  cluster: clusterName,
  kind: z.enum(['failover', 'switchover']),
  shard: shardId,
  state: z.enum(['pending', 'running', ...TERMINAL_TASK_STATES]),
  next: z.string(),
  /** The master when the task began. */
  oldMaster: address,
  /** The instance to promote: asked for (switchover --to) or chosen. */
  target: address.nullable(),
  force: z.boolean().default(false),
  reason: z.string(),
  requestedBy: z.string(),
  controller: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
  epochBefore: z.number().nullable().default(null),
  epochAfter: z.number().nullable().default(null),
  steps: z.array(taskStepSchema).default([]),
  error: z.string().nullable().default(null),
  /** An admin asked to end the task: the leader undoes what it did and ends it `cancelled`. */
  cancel: z.strictObject({ by: z.string(), at: z.string() }).nullable().default(null),
});
export type Task = z.infer<typeof taskSchema>;

export function isTerminal(task: Pick<Task, 'state'>): boolean {
  return (TERMINAL_TASK_STATES as readonly string[]).includes(task.state);
}

/** Structural rules of a route that a schema cannot express field by field. */
export function routeProblems(route: {
  slotCount: number;
  shards: { id: string; master: string; slaves: string[]; slots: [number, number][] }[];
  migrating?: { slot: number; from: string; to: string }[];
  trimming?: string[];
  feedingSplit?: string[];
}): string[] {
  const problems: string[] = [];
  if (!Number.isInteger(route.slotCount) || route.slotCount < 1 || route.slotCount > MAX_SLOTS) return [`slot count ${route.slotCount} is outside 1..${MAX_SLOTS}`];
  // Slot -> index of its owner in route.shards (-1: none). A typed array, not a Map: a route of
  // 16384 slots is checked by every proxy on every change (bench/scale-route.ts).
  const owner = new Int32Array(route.slotCount).fill(-1);
  const ownerOf = (slot: number): string | undefined => (slot >= 0 && slot < route.slotCount && owner[slot]! >= 0 ? route.shards[owner[slot]!]!.id : undefined);
  const shardIds = new Set<string>();
  const instances = new Map<string, string>();
  for (const [index, shard] of route.shards.entries()) {
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
      for (let s = Math.max(0, first); s <= last; s++) {
        const prev = owner[s]!;
        if (prev >= 0) {
          problems.push(`slot ${s} is owned by both ${route.shards[prev]!.id} and ${shard.id}`);
          break;
        }
        owner[s] = index;
      }
    }
  }
  const moving = new Set<number>();
  for (const m of route.migrating ?? []) {
    if (moving.has(m.slot)) problems.push(`slot ${m.slot} is migrating twice`);
    moving.add(m.slot);
    if (m.slot >= route.slotCount) problems.push(`migrating slot ${m.slot} is outside 0..${route.slotCount - 1}`);
    if (!shardIds.has(m.from) || !shardIds.has(m.to)) problems.push(`slot ${m.slot} migrates between unknown shards ${m.from} -> ${m.to}`);
    else if (m.from === m.to) problems.push(`slot ${m.slot} migrates from ${m.from} to itself`);
    else if (ownerOf(m.slot) !== m.from && ownerOf(m.slot) !== m.to) problems.push(`slot ${m.slot} migrates ${m.from} -> ${m.to} but is owned by ${ownerOf(m.slot) ?? 'no shard'}`);
  }
  for (const mark of ['trimming', 'feedingSplit'] as const) {
    const listed = new Set<string>();
    for (const id of route[mark] ?? []) {
      if (listed.has(id)) problems.push(`shard ${id} is listed twice in ${mark}`);
      listed.add(id);
      if (!shardIds.has(id)) problems.push(`${mark} names unknown shard ${id}`);
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
