/**
 * The results table: one row per fault kind. Things that happen at a time (an acknowledgement, a
 * write gap, a new leader, a finished task) are charged to the fault whose window holds that time.
 * A window starts REPLICATION_LAG_MS before its fault (a write acknowledged just before a master
 * dies is the one that fault can lose) and ends where the next one starts.
 */
import type { LostWrite } from './checks.js';
import type { FaultRun } from './faults.js';
import type { Load, WriteGap } from './load.js';
import { FAULT_KINDS } from './profile.js';

const REPLICATION_LAG_MS = 1000;
const NO_FAULT = '(no fault: warm-up)';

export interface TimedEvents {
  leaderChanges: number[];
  failovers: number[];
  switchovers: number[];
}

interface Row {
  kind: string;
  runs: number;
  acked: number;
  lost: number;
  longestGapMs: number;
  leaderChanges: number;
  failovers: number;
  switchovers: number;
}

export function windowKind(faults: FaultRun[], at: number): string {
  let kind = NO_FAULT;
  for (const f of faults) if (at >= f.startedAt - REPLICATION_LAG_MS) kind = f.kind;
  return kind;
}

export function resultRows(faults: FaultRun[], load: Load, lost: LostWrite[], events: TimedEvents): Row[] {
  const rows = new Map<string, Row>();
  const row = (kind: string) => {
    let r = rows.get(kind);
    if (!r) rows.set(kind, (r = { kind, runs: 0, acked: 0, lost: 0, longestGapMs: 0, leaderChanges: 0, failovers: 0, switchovers: 0 }));
    return r;
  };
  row(NO_FAULT);
  for (const k of FAULT_KINDS) if (faults.some((f) => f.kind === k)) row(k);
  for (const f of faults) row(f.kind).runs++;
  for (const w of load.all) for (const t of w.ackTimes) row(windowKind(faults, t)).acked++;
  for (const l of lost) row(windowKind(faults, l.ackedAt)).lost++;
  const gaps: WriteGap[] = load.all.flatMap((w) => w.gaps);
  for (const g of gaps) {
    const r = row(windowKind(faults, g.from));
    r.longestGapMs = Math.max(r.longestGapMs, g.to - g.from);
  }
  for (const t of events.leaderChanges) row(windowKind(faults, t)).leaderChanges++;
  for (const t of events.failovers) row(windowKind(faults, t)).failovers++;
  for (const t of events.switchovers) row(windowKind(faults, t)).switchovers++;
  const all = [...rows.values()];
  const total: Row = {
    kind: 'total',
    runs: faults.length,
    acked: sum(all, (r) => r.acked),
    lost: sum(all, (r) => r.lost),
    longestGapMs: Math.max(0, ...all.map((r) => r.longestGapMs)),
    leaderChanges: sum(all, (r) => r.leaderChanges),
    failovers: sum(all, (r) => r.failovers),
    switchovers: sum(all, (r) => r.switchovers),
  };
  return [...all, total];
}

function sum(rows: Row[], pick: (r: Row) => number): number {
  return rows.reduce((n, r) => n + pick(r), 0);
}

/** A Markdown table, so that it can go into docs/reliability.md as printed. */
export function markdownTable(rows: Row[]): string {
  const header = ['fault', 'runs', 'acknowledged writes', 'lost (goal 0)', 'longest write gap ms', 'leader changes', 'failovers done', 'switchovers done'];
  const cells = rows.map((r) => [r.kind, String(r.runs), String(r.acked), String(r.lost), String(r.longestGapMs), String(r.leaderChanges), String(r.failovers), String(r.switchovers)]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => `| ${c.map((x, i) => x.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n');
}

/** Longest gap between two acknowledged writes, per writer. */
export function gapsPerWriter(load: Load): string {
  return load.all.map((w) => `${w.name}→:${w.proxyPort} ${Math.max(0, ...w.gaps.map((g) => g.to - g.from))} ms`).join(', ');
}
