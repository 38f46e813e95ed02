// One cluster's page, drawn from GET /v1/clusters/:name/overview. Pure: data in, nodes out.
// Buttons carry data-action and what it needs; app.js handles every click in one place.
import { ago, badge, bytes, duration, h, number, ranges, seconds, section, table, when } from './dom.js';

const TERMINAL_TASK = new Set(['done', 'failed', 'refused', 'cancelled']);
const FINISHED_MIGRATION = new Set(['done', 'failed', 'cancelled']);
const FINISHED_SPLIT = new Set(['done', 'failed', 'cancelled']);
const OUTCOME_KIND = { done: 'ok', failed: 'bad', refused: 'warn', cancelled: 'warn', info: '' };

export function clusterView(o) {
  const { status } = o;
  return h(
    'div',
    { class: 'cluster', dataset: { cluster: status.spec.name } },
    header(o),
    o.problems.length ? section('Problems', h('ul', { class: 'problems' }, o.problems.map((p) => h('li', {}, p)))) : null,
    section('Shards', shards(o), { id: 'shards' }),
    section('Proxies', proxies(o), { id: 'proxies' }),
    section('Migrations', migrations(o), { id: 'migrations' }),
    section('Shard splits', splits(o), { id: 'splits' }),
    section('Tasks: failovers and switchovers', tasks(o), { id: 'tasks' }),
    section(`History (newest ${o.history.length})`, history(o), { id: 'history' }),
  );
}

function button(label, action, data = {}, attrs = {}) {
  return h('button', { type: 'button', class: 'action', dataset: { action, ...data }, ...attrs }, label);
}

function header(o) {
  const { spec, route } = o.status;
  const leader = o.controllers.find((c) => c.leader);
  return h(
    'div',
    { class: 'cluster-head' },
    h('h1', {}, spec.name),
    spec.paused ? badge('paused: no automatic failover or repair', 'warn') : badge('automatic actions on', 'ok'),
    o.status.unassignedSlots ? badge(`${o.status.unassignedSlots} slots unassigned`, 'bad') : null,
    h(
      'dl',
      { class: 'facts' },
      h('dt', {}, 'route epoch'), h('dd', { id: 'route-epoch' }, String(route.epoch)),
      h('dt', {}, 'slots'), h('dd', {}, `${spec.slotCount} (${spec.hash})`),
      route.migrating?.length ? [h('dt', {}, 'slots moving'), h('dd', { class: 'warn' }, movingText(route.migrating))] : null,
      h('dt', {}, 'leader'), h('dd', {}, leader ? leader.id : 'none'),
      h('dt', {}, 'controllers'), h('dd', {}, o.controllers.map((c) => c.id).join(', ') || 'none'),
      h('dt', {}, 'probe'), h('dd', {}, `every ${spec.probe.intervalMs} ms, down after ${spec.probe.downAfterMs} ms`),
      h('dt', {}, 'auto failover'), h('dd', {}, spec.failover.auto ? `on, at most ${spec.failover.maxPerWindow} per ${seconds(Math.round(spec.failover.windowMs / 1000))}` : 'off'),
      o.status.failoverBudget ? [h('dt', {}, 'failover budget'), budgetCell(o.status.failoverBudget)] : null,
    ),
    h('div', { class: 'buttons' }, spec.paused ? button('Resume cluster', 'resume') : button('Pause cluster', 'pause')),
  );
}

/** Failovers used in the window (as cfgctl cluster show): red when spent, with when one frees up. */
function budgetCell(b) {
  const frees = b.freesAt ? `; one frees at ${new Date(b.freesAt).toLocaleTimeString()}` : '';
  return h('dd', { id: 'failover-budget', ...(b.used >= b.max ? { class: 'bad' } : {}) }, `${b.used} of ${b.max} used${frees}`);
}

/** The route's migrating slots, by direction and phase: "40 s0 → s1 (moving)". */
function movingText(migrating) {
  const groups = new Map();
  for (const m of migrating) {
    const key = `${m.from} → ${m.to} (${m.phase})`;
    groups.set(key, (groups.get(key) ?? 0) + 1);
  }
  return [...groups].map(([key, n]) => `${n} ${key}`).join(', ');
}

/** The offset to compare with: read from Redis now when it answered, else the view's (older). */
function offsetOf(inst) {
  if (inst.live && inst.live.offset !== null) return inst.live.offset;
  return inst.health ? inst.health.offset : null;
}

function shards(o) {
  const { status } = o;
  if (status.shards.length === 0) return h('p', { class: 'muted' }, 'No shards.');
  return status.shards.map((shard) => {
    const master = shard.instances[0];
    const masterOffset = master ? offsetOf(master) : null;
    const busy = o.tasks.find((t) => t.shard === shard.id && !TERMINAL_TASK.has(t.state));
    const heads = ['instance', 'route role', 'seen as', 'link', 'offset', 'lag', ...o.views.map((v) => `${v.controller}${v.leader ? ' (leader)' : ''}${v.live ? '' : ' (gone)'}`), 'config', ''];
    const rows = shard.instances.map((inst) => instanceRow(o, shard, inst, masterOffset, Boolean(busy)));
    return h(
      'div',
      { class: 'shard', dataset: { shard: shard.id, master: master ? master.address : '' } },
      h(
        'div',
        { class: 'shard-head' },
        h('h3', {}, shard.id),
        h('span', { class: 'muted' }, `${shard.slotCount} slots: ${ranges(shard.slots)}`),
        busy ? badge(`${busy.kind} ${busy.state}: ${busy.next}`, 'warn') : null,
        button('Switchover', 'switchover', { shard: shard.id }, { disabled: shard.instances.length < 2 || Boolean(busy), title: 'planned switchover to the best slave, losing no acknowledged write' }),
      ),
      table(heads, rows),
    );
  });
}

function instanceRow(o, shard, inst, masterOffset, busy) {
  const health = inst.health;
  const seen = health ? (health.reachable ? health.role : 'unreachable') : 'not seen';
  const wrongRole = health && health.reachable && health.role !== inst.expectedRole;
  const offset = offsetOf(inst);
  const lag = inst.expectedRole === 'slave' && offset !== null && masterOffset !== null ? Math.max(0, masterOffset - offset) : null;
  return h(
    'tr',
    { dataset: { instance: inst.address, role: inst.expectedRole, seen } },
    h('td', { class: 'mono' }, inst.address),
    h('td', {}, inst.expectedRole),
    h('td', { class: wrongRole || seen === 'unreachable' ? 'bad' : '' }, seen),
    h('td', {}, link(shard, inst)),
    h('td', { class: 'num', title: inst.live ? `read ${ago(inst.live.at)}` : health ? `as of ${ago(health.observedAt)}` : '' }, number(offset)),
    h('td', { class: 'num' }, inst.expectedRole === 'slave' ? bytes(lag) : ''),
    o.views.map((v) => verdictCell(v.instances.find((i) => i.address === inst.address))),
    h('td', {}, configCell(inst.config)),
    h(
      'td',
      {},
      inst.refused ? h('div', { class: 'bad', title: inst.refused.reason }, `refused: ${inst.refused.summary}`) : null,
      inst.expectedRole === 'slave' ? button('Make master', 'switchover', { shard: shard.id, to: inst.address }, { title: 'planned switchover to this slave', disabled: busy || seen !== 'slave' }) : null,
    ),
  );
}

function link(shard, inst) {
  const health = inst.health;
  if (!health || !health.reachable || inst.expectedRole !== 'slave') return '';
  if (health.role !== 'slave') return '';
  const from = health.masterAddress === shard.instances[0].address ? '' : ` from ${health.masterAddress}`;
  if (health.linkUp) return h('span', { class: from ? 'bad' : 'ok' }, `up${from}`);
  return h('span', { class: 'bad' }, `down${health.linkDownSinceSec !== null ? ` ${health.linkDownSinceSec} s` : ''}${from}`);
}

/** One replica's verdict on one instance: its own probe, its own "down". */
function verdictCell(h0) {
  if (!h0) return h('td', { class: 'muted' }, '—');
  const text = h0.down ? 'DOWN' : h0.reachable ? 'ok' : 'unreachable';
  const kind = h0.down ? 'bad' : h0.reachable ? 'ok' : 'warn';
  const tip = [`since ${when(h0.since)}`, h0.error ? `error: ${h0.error}` : '', `last answer ${ago(h0.lastOkAt)}`].filter(Boolean).join('\n');
  return h('td', { class: kind, title: tip, dataset: { verdict: text } }, text);
}

function configCell(mark) {
  if (!mark) return h('span', { class: 'muted' }, '—');
  if (mark.state === 'drifted') {
    return h('span', { class: 'bad' }, 'drift: ', mark.drifted.map((d) => `${d.key} wants ${d.desired}, is ${d.actual ?? '?'}`).join('; '));
  }
  if (mark.state === 'unreachable') return h('span', { class: 'warn', title: mark.error || '' }, 'unreachable');
  return h('span', { class: mark.state === 'in-sync' ? 'ok' : 'muted' }, mark.state);
}

function proxies(o) {
  const epoch = o.status.route.epoch;
  if (o.proxies.length === 0) return h('p', { class: 'muted' }, 'No proxy registered.');
  return table(
    ['proxy', 'address', 'applied epoch', '', 'version', 'updated'],
    o.proxies.map((p) => {
      const state = p.epoch === null ? 'not applied yet' : p.epoch === epoch ? 'current' : p.epoch < epoch ? `${epoch - p.epoch} behind` : 'ahead';
      return h(
        'tr',
        { dataset: { proxy: p.id, epoch: String(p.epoch) } },
        h('td', { class: 'mono' }, p.id),
        h('td', { class: 'mono' }, p.address),
        h('td', { class: 'num' }, p.epoch === null ? '—' : String(p.epoch)),
        h('td', { class: state === 'current' ? 'ok' : 'warn' }, state),
        h('td', {}, p.version),
        h('td', {}, ago(p.updatedAt)),
      );
    }),
  );
}

function migrations(o) {
  if (o.migrations.length === 0) return h('p', { class: 'muted' }, 'No migration.');
  return table(
    ['id', 'state', 'next step', 'moves', 'progress', 'keys/s', 'time left', 'rate', 'asked', ''],
    o.migrations.map((m) => {
      const finished = FINISHED_MIGRATION.has(m.state);
      const pct = m.keysSeen > 0 ? Math.min(100, Math.round((m.keysMoved / m.keysSeen) * 100)) : finished && m.state === 'done' ? 100 : 0;
      const state = m.reverse && !finished ? `${m.state}, cancelling` : m.pause && m.state === 'running' ? 'pausing' : m.state;
      return h(
        'tr',
        { dataset: { migration: m.id, state: m.state, moved: String(m.keysMoved) } },
        h('td', { class: 'mono' }, m.id),
        h('td', { class: m.state === 'failed' ? 'bad' : '' }, state, m.error ? h('div', { class: 'bad' }, m.error) : null),
        h('td', {}, finished ? '' : m.next),
        h('td', {}, m.moves.map((mv) => h('div', {}, `${mv.from} → ${mv.to}: ${ranges(mv.slots)}`))),
        h('td', {}, h('progress', { max: 100, value: pct }), ` ${number(m.keysMoved)} keys moved${m.keysSeen ? ` of ${number(m.keysSeen)} seen` : ''}`),
        h('td', { class: 'num' }, number(m.keysPerSecond)),
        h('td', { class: 'num' }, seconds(m.secondsLeft)),
        h('td', { class: 'num' }, m.rate ? `${number(m.rate)}/s` : 'no limit'),
        h('td', {}, `${m.requestedBy}, ${ago(m.createdAt)}`, h('div', { class: 'muted' }, m.reason)),
        h(
          'td',
          {},
          finished ? null : m.pause || m.state === 'paused' ? button('Resume', 'migration', { id: m.id, op: 'resume' }) : button('Pause', 'migration', { id: m.id, op: 'pause' }, { disabled: m.reverse }),
          finished || m.reverse ? null : button('Cancel', 'migration', { id: m.id, op: 'cancel' }),
        ),
      );
    }),
  );
}

/** Every step done, with its time, duration and what it did, folded under "N steps, last: X". */
function stepList(steps) {
  return h(
    'details',
    {},
    h('summary', {}, `${steps.length} steps${steps.length ? `, last: ${steps[steps.length - 1].step}` : ''}`),
    h('ol', {}, steps.map((s) => h('li', {}, `${when(s.at)} ${s.step}${s.durationMs !== null ? ` (${duration(s.durationMs)})` : ''}: ${s.detail}`))),
  );
}

// A split's progress as its record holds it (docs/split.md): the leader writes the sync's and the
// trim's progress about once a second, the hold at the commit.
function splits(o) {
  if (!o.splits || o.splits.length === 0) return h('p', { class: 'muted' }, 'No split.');
  return table(
    ['id', 'state', 'next step', 'split', 'sync', 'hold', 'trim', 'asked', 'steps', ''],
    o.splits.map((s) => {
      const finished = FINISHED_SPLIT.has(s.state);
      const state = s.cancel && !finished ? `${s.state}, cancelling` : s.pause && s.state === 'running' ? 'pausing' : s.state;
      return h(
        'tr',
        { dataset: { split: s.id, state: s.state, next: s.next } },
        h('td', { class: 'mono' }, s.id),
        h('td', { class: s.state === 'done' ? 'ok' : finished ? 'bad' : 'warn' }, state, s.error ? h('div', { class: 'bad' }, s.error) : null),
        h('td', {}, finished ? '' : s.next),
        h('td', {}, `${s.source} → ${s.shard.id}: ${ranges(s.slots)}`, h('div', { class: 'mono muted' }, `${s.sourceMaster} → ${s.shard.master}`)),
        h('td', { class: 'sync' }, syncProgress(s)),
        h('td', { class: 'num hold', dataset: { hold: s.holdMs === null ? '' : String(s.holdMs) } }, s.holdMs === null ? '—' : duration(s.holdMs)),
        h('td', { class: 'trim' }, s.steps.some((x) => x.step === 'commit') ? [trimProgress(s, 'source', s.source), trimProgress(s, 'shard', s.shard.id)] : '—'),
        h('td', {}, `${s.requestedBy}, ${ago(s.createdAt)}`, h('div', { class: 'muted' }, s.reason)),
        h('td', {}, stepList(s.steps)),
        h('td', {}, finished ? null : splitButtons(s)),
      );
    }),
  );
}

/**
 * Pause or Resume, and Cancel while it would still undo the split (before its commit: the server's
 * `cancelRefusal` says why not after, shown on the disabled button).
 */
function splitButtons(s) {
  const pauseOrResume = s.pause || s.state === 'paused' ? button('Resume', 'split', { id: s.id, op: 'resume' }) : button('Pause', 'split', { id: s.id, op: 'pause' }, { disabled: Boolean(s.cancel) });
  if (s.cancel) return pauseOrResume;
  const refused = s.cancelRefusal ?? null;
  return [pauseOrResume, button('Cancel', 'split', { id: s.id, op: 'cancel' }, refused ? { disabled: true, title: refused } : {})];
}

function syncProgress(s) {
  if (!s.sync) return s.next === 'attach' ? 'not started' : '—';
  const { linkUp, lagBytes, keys, at, fullSyncBytes = null, fullSyncTotalBytes = null } = s.sync;
  return h(
    'span',
    { dataset: { link: linkUp ? 'up' : 'down', lag: String(lagBytes), keys: keys === null ? '' : String(keys), fullSyncBytes: fullSyncBytes === null ? '' : String(fullSyncBytes) } },
    h('span', { class: linkUp ? 'ok' : 'warn' }, linkUp ? 'link up' : 'link down'),
    fullSyncBytes === null ? '' : `, full sync ${bytes(fullSyncBytes)}${fullSyncTotalBytes === null ? '' : ` of ${bytes(fullSyncTotalBytes)}`} so far`,
    `, ${bytes(lagBytes)} behind, ${number(keys)} keys`,
    h('div', { class: 'muted' }, `read ${ago(at)}`),
  );
}

/** One side of the trim: keys removed, and how far its scan went against the keys synced (each side scans them all). */
function trimProgress(s, side, shard) {
  const t = s.trim[side];
  const total = s.sync?.keys ?? 0;
  const pct = t.done ? 100 : total > 0 ? Math.min(99, Math.round((t.scanned / total) * 100)) : 0;
  return h(
    'div',
    { dataset: { side, removed: String(t.removed), done: String(t.done) } },
    `${shard}: `,
    h('progress', { max: 100, value: pct }),
    ` ${number(t.removed)} keys removed${t.done ? ', done' : `, ${number(t.scanned)} of ~${number(total)} scanned`}`,
  );
}

function tasks(o) {
  if (o.tasks.length === 0) return h('p', { class: 'muted' }, 'No task.');
  return table(
    ['id', 'kind', 'shard', 'state', 'master', 'epoch', 'reason', 'steps', ''],
    o.tasks.map((t) => {
      const ended = TERMINAL_TASK.has(t.state);
      return h(
        'tr',
        { dataset: { task: t.id, kind: t.kind, state: t.state, shard: t.shard } },
        h('td', { class: 'mono' }, t.id),
        h('td', {}, t.kind),
        h('td', {}, t.shard),
        h('td', { class: t.state === 'done' ? 'ok' : ended ? 'bad' : 'warn' }, ended ? t.state : `${t.state}: ${t.next}`, t.error ? h('div', { class: 'bad' }, t.error) : null),
        h('td', { class: 'mono' }, `${t.oldMaster} → ${t.target ?? '(to choose)'}`),
        h('td', { class: 'num' }, t.epochAfter !== null ? `${t.epochBefore} → ${t.epochAfter}` : String(t.epochBefore ?? '')),
        h('td', {}, t.reason, h('div', { class: 'muted' }, `${t.requestedBy}, ${ago(t.createdAt)}`)),
        h(
          'td',
          {},
          stepList(t.steps),
        ),
        h('td', {}, ended || t.cancel ? (t.cancel && !ended ? 'cancelling' : null) : button('Cancel', 'cancel-task', { id: t.id })),
      );
    }),
  );
}

function history(o) {
  if (o.history.length === 0) return h('p', { class: 'muted' }, 'Nothing recorded yet.');
  return table(
    ['at', 'action', 'shard', 'target', 'outcome', 'reason', 'took', 'by'],
    o.history.map((e) =>
      h(
        'tr',
        { dataset: { entry: e.action, outcome: e.outcome } },
        h('td', { title: e.at }, when(e.at)),
        h('td', {}, e.action),
        h('td', {}, e.shard ?? ''),
        h('td', { class: 'mono' }, e.target ?? ''),
        h('td', {}, badge(e.outcome, OUTCOME_KIND[e.outcome] ?? '')),
        h('td', { class: 'reason' }, e.reason),
        h('td', { class: 'num' }, duration(e.durationMs)),
        h('td', { class: 'mono' }, e.controller),
      ),
    ),
  );
}
