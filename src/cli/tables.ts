/**
 * Human-readable renderings of what cfgctl prints. cli-table3 does the layout.
 */
import Table from 'cli-table3';
import type { ControllerStatus } from '../store/controller-registry.js';
import type { ClusterStatus, ClusterSummary, ReplicaStatus } from '../service/admin-service.js';
import type { MigrationView } from '../service/migration-service.js';
import type { KeyPlace } from '../model/route.js';
import { isTerminal, type HistoryEntry, type ProxyInfo, type Route, type Task } from '../model/schemas.js';
import { countSlots, rangesText } from '../model/route.js';
import { movesText } from '../model/migration.js';
import type { SplitRecord, SplitSyncProgress } from '../model/split.js';
import type { ConfigSettings, RedisConfig } from '../model/redis-config.js';
import type { ConfigCheckReport, ConfigDiffInstance } from '../service/config-service.js';

const PLAIN = Object.fromEntries(
  ['top', 'top-mid', 'top-left', 'top-right', 'bottom', 'bottom-mid', 'bottom-left', 'bottom-right', 'left', 'left-mid', 'mid', 'mid-mid', 'right', 'right-mid', 'middle'].map((k) => [k, '']),
);

function table(head: string[], rows: (string | number)[][]): string {
  // kubectl-like: no borders, columns separated by two spaces.
  const t = new Table({ head, chars: PLAIN, style: { head: [], border: [], 'padding-left': 0, 'padding-right': 2 } });
  t.push(...rows.map((r) => r.map(String)));
  return t.toString();
}

/** Slot ranges, cut short to fit a table column. */
export function shortRanges(ranges: [number, number][]): string {
  if (ranges.length === 0) return '-';
  const text = rangesText(ranges);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

function ago(iso: string | null, now = Date.now()): string {
  if (!iso) return '-';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  return s < 60 ? `${s}s ago` : s < 3600 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

export function clustersTable(clusters: ClusterSummary[]): string {
  if (clusters.length === 0) return 'no clusters';
  return table(
    ['CLUSTER', 'SLOTS', 'ASSIGNED', 'SHARDS', 'INSTANCES', 'EPOCH', 'PAUSED'],
    clusters.map((c) => [c.name, c.slotCount, c.assignedSlots, c.shards, c.instances, c.epoch, c.paused ? 'yes' : 'no']),
  );
}

export function clusterStatusText(status: ClusterStatus): string {
  const { spec, route } = status;
  const header = [
    `cluster ${spec.name}: ${spec.slotCount} slots (${status.unassignedSlots} unassigned), epoch ${route.epoch}${spec.paused ? ', PAUSED' : ''}${spec.proxy === 'twemproxy' ? ', behind twemproxy (no slot migration)' : ''}`,
    `probe every ${spec.probe.intervalMs} ms, timeout ${spec.probe.timeoutMs} ms, down after ${spec.probe.downAfterMs} ms`,
    budgetText(status.failoverBudget, spec.failover.auto),
    `health as seen by ${status.healthFrom ?? 'no controller yet'}; ${
      status.liveTimeoutMs !== null
        ? `offsets read from Redis now (timeout ${status.liveTimeoutMs} ms; "(Ns old)" where it did not answer: the controller's view, written when the state last changed)`
        : 'offsets from the controller\'s view, written when the state last changed: "(Ns old)" says how old'
    }`,
  ];
  const rows = status.shards.flatMap((shard) =>
    shard.instances.map((inst, i) => {
      const h = inst.health;
      const role = h ? (h.reachable ? h.role : 'down') : '?';
      const link = h?.role === 'slave' ? `${h.masterAddress} ${h.linkUp ? 'up' : 'down'}` : '-';
      return [
        i === 0 ? shard.id : '',
        i === 0 ? `${shard.slotCount} (${shortRanges(shard.slots)})` : '',
        inst.address,
        inst.expectedRole,
        role,
        link,
        offsetText(inst),
        `${h ? (h.reachable ? (inst.mismatch ? 'WRONG MASTER' : 'ok') : `${h.down ? 'DOWN' : 'unreachable'}, last ok ${ago(h.lastOkAt)}`) : 'not probed yet'}${inst.refused ? `; refused: ${inst.refused.summary}` : ''}`,
        configMarkText(inst.config),
      ];
    }),
  );
  const body = rows.length ? table(['SHARD', 'SLOTS', 'INSTANCE', 'ROUTE ROLE', 'SEEN ROLE', 'REPLICATES FROM', 'OFFSET', 'HEALTH', 'CONFIG'], rows) : 'no shards';
  // The full reason carries the command that discards the data: the operator's decision to make.
  const refusals = status.shards.flatMap((s) => s.instances.filter((i) => i.refused).map((i) => `refused since ${i.refused!.at}: ${i.refused!.reason}`));
  const mismatches = status.shards.flatMap((s) =>
    s.instances.flatMap((i) => (i.mismatch ? [`${i.address} ${i.mismatch}${spec.paused ? ' (paused: the leader leaves it so until cfgctl cluster resume)' : ' (the leader repairs it)'}`] : [])),
  );
  const drifts = status.shards.flatMap((s) =>
    s.instances.flatMap((i) => (i.config?.drifted.length && i.config.state === 'drifted' ? [`config drift on ${i.address}: ${i.config.drifted.map((k) => `${k.key} is ${k.actual ?? '(absent)'}, desired ${k.desired}`).join('; ')}`] : [])),
  );
  const m = status.migration;
  const migration = m
    ? [`migration ${m.id}: ${m.state}${m.reverse ? ' (cancelling)' : ''} at step ${m.next}; ${movesText(m.moves)}; ${m.keysMoved} keys moved${m.keysPerSecond ? `, ${m.keysPerSecond} keys/s` : ''}${m.secondsLeft !== null ? `, about ${m.secondsLeft} s left` : ''} (cfgctl migrations ${spec.name} --watch)`]
    : [];
  return [...header, ...migration, body, ...mismatches, ...refusals, ...drifts].join('\n');
}

/** "1 of 3 automatic failovers used in the last 60 min; one frees up at ... (in 42 min)". */
export function budgetText(b: ClusterStatus['failoverBudget'], auto: boolean, now = Date.now()): string {
  const window = b.windowMs % 60_000 === 0 ? `${b.windowMs / 60_000} min` : `${Math.round(b.windowMs / 1000)} s`;
  const used = `failover budget: ${b.used} of ${b.max} automatic failovers used in the last ${window}`;
  const frees = b.freesAt ? `; ${b.used >= b.max ? 'SPENT until' : 'the oldest leaves the window at'} ${b.freesAt} (in ${inWords(Date.parse(b.freesAt) - now)})` : '';
  return `${used}${frees}${auto ? '' : ' (automatic failover is off)'}`;
}

function inWords(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 60 ? `${s} s` : s < 3600 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`;
}

/** The instance's config against the desired one: in sync, drift (which keys), or why it is not known. */
function configMarkText(mark: ClusterStatus['shards'][number]['instances'][number]['config']): string {
  if (!mark) return '?';
  if (mark.state === 'drifted') return `drift: ${mark.drifted.map((k) => k.key).join(',')}`;
  return mark.state === 'in-sync' ? 'in sync' : mark.state === 'unmanaged' ? '-' : 'unreachable';
}

/** The offset read now when there is one, else the view's offset with its age. */
function offsetText(inst: ClusterStatus['shards'][number]['instances'][number]): string {
  if (inst.live?.offset != null) return String(inst.live.offset);
  const h = inst.health;
  return h?.offset != null ? `${h.offset} (${ago(h.observedAt).replace(' ago', ' old')})` : '-';
}

export function routeTable(route: Route): string {
  const head = `cluster ${route.cluster} epoch ${route.epoch}, ${route.slotCount} slots, hash ${route.hash}, updated ${route.updatedAt}`;
  if (route.shards.length === 0) return `${head}\nno shards`;
  const trimming = route.trimming?.length
    ? `\ntrimming: ${route.trimming.join(', ')} (a split's trim: their masters still hold keys of slots they do not own; proxies count and list owned keys only)`
    : '';
  const feeding = route.feedingSplit?.length
    ? `\nfeeding a split: ${route.feedingSplit.join(', ')} (their masters replicate to a split's new master; proxies do not count it for WAIT)`
    : '';
  return `${head}\n${table(
    ['SHARD', 'MASTER', 'SLAVES', 'SLOTS', 'RANGES'],
    route.shards.map((s) => [s.id, s.master, s.slaves.join(',') || '-', countSlots(s.slots), shortRanges(s.slots)]),
  )}${trimming}${feeding}`;
}

export function controllersTable(controllers: ControllerStatus[]): string {
  if (controllers.length === 0) return 'no live controllers';
  return table(
    ['CONTROLLER', 'LEADER', 'API', 'VERSION', 'PID', 'STARTED'],
    controllers.map((c) => [c.id, c.leader ? 'yes' : '', c.address ? (c.tls ? `https://${c.address}` : c.address) : '-', c.version, c.pid, c.startedAt]),
  );
}

export function replicaStatusText(s: ReplicaStatus): string {
  return [
    `configured replicas: ${s.configured ? `${s.configured.replicas} (set ${s.configured.setAt})` : 'not set'}`,
    `most seen registered together: ${s.seen ? `${s.seen.count} (recorded ${s.seen.at} by ${s.seen.by})` : 'none recorded'}`,
    `registered now: ${s.registered}`,
    `a failover needs ${s.quorum.needed} of ${s.quorum.replicas} replicas judging the master down; ${s.quorum.source}`,
  ].join('\n');
}

export function historyTable(entries: HistoryEntry[]): string {
  if (entries.length === 0) return 'no history';
  return table(
    ['AT', 'CONTROLLER', 'ACTION', 'SHARD', 'TARGET', 'OUTCOME', 'MS', 'REASON'],
    entries.map((e) => [e.at, e.controller, e.action, e.shard ?? '-', e.target ?? '-', e.outcome, e.durationMs ?? '-', wrapText(e.reason, 70)]),
  );
}

export function tasksTable(tasks: Task[]): string {
  if (tasks.length === 0) return 'no tasks';
  return table(
    ['TASK', 'KIND', 'SHARD', 'STATE', 'NEXT', 'OLD MASTER', 'TARGET', 'EPOCH', 'STEPS', 'ERROR'],
    tasks.map((t) => [t.id, t.kind, t.shard, t.state, t.next, t.oldMaster, t.target ?? '-', t.epochAfter ? `${t.epochBefore}->${t.epochAfter}` : '-', t.steps.map((s) => s.step).join(','), wrapText(t.error ?? '', 60)]),
  );
}

/** `cfgctl slot`: one line a person reads, and where the key may be while its slot moves. */
export function keyPlaceText(p: KeyPlace): string {
  const owner = p.shard ? `shard ${p.shard}, master ${p.master}` : 'no shard (the slot is unassigned)';
  const moving = p.migrating ? `\nslot ${p.slot} is migrating ${p.migrating.from} -> ${p.migrating.to} (${p.migrating.phase}): the key is on one of the two until the migration commits` : '';
  return `key ${p.key} in cluster ${p.cluster}: slot ${p.slot}, ${owner} (route epoch ${p.epoch})${moving}`;
}

/** One task whole: what it is, then every step with when it ended, how long it took and why. */
export function taskText(t: Task): string {
  const head = [
    `task ${t.id}: ${t.kind} of shard ${t.shard}, ${t.state}${isTerminal(t) ? '' : ` (next: ${t.next})`}`,
    `old master ${t.oldMaster}, target ${t.target ?? '-'}, epoch ${t.epochAfter ? `${t.epochBefore} -> ${t.epochAfter}` : t.epochBefore ?? '-'}`,
    ...(t.error ? [`error: ${t.error}`] : []),
  ];
  if (t.steps.length === 0) return [...head, 'no step yet'].join('\n');
  const steps = table(
    ['STEP', 'AT', 'TOOK', 'DETAIL'],
    t.steps.map((s) => [s.step, s.at, s.durationMs === null ? '-' : `${s.durationMs} ms`, wrapText(s.detail, 80)]),
  );
  return [...head, steps].join('\n');
}

/** Long reasons folded onto lines of at most `width` characters, at spaces, so tables stay narrow. */
export function wrapText(text: string, width: number): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines.join('\n');
}

export function proxiesTable(proxies: ProxyInfo[], routeEpoch: number): string {
  if (proxies.length === 0) return 'no live proxies';
  return table(
    ['PROXY', 'KIND', 'ADDRESS', 'EPOCH', 'CURRENT', 'METRICS', 'PID', 'STARTED'],
    proxies.map((p) => [p.id, p.kind, p.address, p.epoch ?? '-', p.epoch === routeEpoch ? 'yes' : 'NO', p.metrics ?? '-', p.pid, p.startedAt]),
  );
}

export function migrationsTable(migrations: MigrationView[]): string {
  if (migrations.length === 0) return 'no migrations';
  return table(
    ['MIGRATION', 'STATE', 'NEXT', 'MOVES', 'SLOTS', 'KEYS MOVED', 'KEYS/S', 'LEFT', 'ERROR'],
    migrations.map((m) => [
      m.id,
      m.state + (m.reverse ? ' (cancelling)' : m.pause && m.state === 'running' ? ' (pausing)' : ''),
      m.next,
      m.moves.map((x) => `${shortRanges(x.slots)} ${x.from}->${x.to}`).join(' '),
      m.slotCount,
      m.keysMoved,
      `${m.keysPerSecond ?? '-'}${m.rate === null ? '' : ` (max ${m.rate})`}`,
      m.secondsLeft === null ? '-' : `${m.secondsLeft}s`,
      m.error ?? '',
    ]),
  );
}

/** "link down, full sync 2097014 B of ?": the bytes of the full sync only while it runs (Redis says no total when it streams the RDB). */
export function splitSyncText(sync: SplitSyncProgress): string {
  const full = sync.fullSyncBytes === null ? '' : `, full sync ${sync.fullSyncBytes} B of ${sync.fullSyncTotalBytes === null ? '?' : `${sync.fullSyncTotalBytes} B`}`;
  return `${sync.linkUp ? 'link up' : 'link down'}${full}, ${sync.lagBytes} B behind${sync.keys === null ? '' : `, ${sync.keys} keys`}`;
}

export function splitsTable(splits: SplitRecord[]): string {
  if (splits.length === 0) return 'no splits';
  return table(
    ['SPLIT', 'STATE', 'NEXT', 'FROM', 'TO', 'SLOTS', 'SYNC', 'HELD', 'TRIMMED', 'ERROR'],
    splits.map((s) => [
      s.id,
      s.state,
      s.next,
      `${s.source} (${s.sourceMaster})`,
      `${s.shard.id} (${s.shard.master})`,
      shortRanges(s.slots),
      s.sync ? splitSyncText(s.sync) : '-',
      s.holdMs === null ? '-' : `${s.holdMs} ms`,
      `${s.trim.source.removed} + ${s.trim.shard.removed}${s.trim.source.done && s.trim.shard.done ? '' : ' ...'}`,
      s.error ?? '',
    ]),
  );
}

/** The desired config, one row per key and scope. */
export function configText(config: RedisConfig): string {
  const rows: string[][] = [];
  const add = (scope: string, settings: ConfigSettings | undefined) => {
    for (const [key, value] of Object.entries(settings ?? {}).sort(([a], [b]) => a.localeCompare(b))) rows.push([scope, key, value]);
  };
  add('global', config.global);
  add('role master', config.roles.master);
  add('role slave', config.roles.slave);
  for (const [id, settings] of Object.entries(config.shards)) add(`shard ${id}`, settings);
  return rows.length ? table(['SCOPE', 'KEY', 'VALUE'], rows) : 'no desired config: Redis settings are left as they are';
}

/** One row per instance and key: ok, drift (with both values) or unreachable. */
export function configDiffTable(instances: ConfigDiffInstance[]): string {
  const rows = instances.flatMap((i) =>
    i.state === 'unreachable'
      ? [[i.instance, i.shard, i.role, '-', '-', '-', `unreachable: ${i.error ?? ''}`]]
      : i.keys.map((k) => [i.instance, i.shard, i.role, k.key, k.desired, k.actual ?? '(absent)', k.state]),
  );
  return rows.length ? table(['INSTANCE', 'SHARD', 'ROLE', 'KEY', 'DESIRED', 'ACTUAL', 'STATE'], rows) : 'no desired config: nothing to compare';
}

/** Each master's write rate and the window each backlog covers, then the warnings with their reasons. */
export function configCheckText(report: ConfigCheckReport): string {
  const rows = report.rates.map((r) => {
    const covers = report.backlogs.filter((b) => b.shard === r.shard).map((b) => `${b.instance} ${b.seconds === null ? 'any (no writes seen)' : `${b.seconds.toFixed(1)} s`}`);
    return [r.shard, r.master, r.bytesPerSecond === null ? 'not measured' : `${Math.round(r.bytesPerSecond)} B/s`, covers.join(', ') || '-'];
  });
  const rates = rows.length ? table(['SHARD', 'MASTER', 'WRITES', 'DISCONNECTION EACH BACKLOG COVERS'], rows) : 'no shards';
  const head = `write rates measured over ${report.sampleMs} ms; a backlog should cover at least ${report.minBacklogSeconds} s`;
  const warnings = report.warnings.length
    ? [`${report.warnings.length} warning(s):`, ...report.warnings.map((w) => `- [${w.code}] ${w.message}`)]
    : ['no warnings'];
  return [head, rates, ...warnings].join('\n');
}
