/**
 * deploy/prometheus and deploy/grafana against the code: every metric a rule or a panel names is
 * one a registry exports; the rules, the Prometheus config and every panel's query pass promtool
 * (`promtool check` and the rules' own tests, alerts.test.yml); docs/metrics.md describes every
 * metric.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { isOwnMetric, namesIn, registryMetrics, seriesNames } from '../helpers/metric-names.js';

const root = join(import.meta.dirname, '..', '..');
const prometheusDir = join(root, 'deploy', 'prometheus');
const known = seriesNames();
const dir = mkdtempSync(join(tmpdir(), 'cfgserver-monitoring-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Rule {
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

function rules(): Rule[] {
  const doc = parse(readFileSync(join(prometheusDir, 'alerts.yml'), 'utf8')) as { groups: { name: string; rules: Rule[] }[] };
  return doc.groups.flatMap((g) => g.rules);
}

interface Panel {
  id: number;
  type: string;
  title: string;
  targets?: { expr: string }[];
  gridPos: { h: number; w: number; x: number; y: number };
}

function dashboard(): { uid: string; panels: Panel[]; templating: { list: { name: string; query?: unknown; definition?: string }[] } } {
  return JSON.parse(readFileSync(join(root, 'deploy', 'grafana', 'cfgserver.json'), 'utf8'));
}

/** Grafana's variables replaced by what Prometheus accepts, to check a panel's query as PromQL. */
function asPromQL(expr: string): string {
  return expr.replaceAll('$__rate_interval', '5m').replaceAll('$__interval', '1m').replaceAll('$cluster', '.*');
}

/** Runs promtool; its output is the failure message. */
function promtool(...args: string[]): string {
  try {
    return execFileSync('promtool', args, { cwd: prometheusDir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { code?: string; stdout?: string; stderr?: string; message: string };
    if (e.code === 'ENOENT') throw new Error('promtool is not installed: apt-get install prometheus (scripts/setup does)');
    throw new Error(`promtool ${args.join(' ')} failed:\n${e.stdout ?? ''}${e.stderr ?? e.message}`);
  }
}

describe('deploy/prometheus/alerts.yml', () => {
  it('every rule is an alert with a severity, a summary and an expression naming only metrics the code exports', () => {
    const all = rules();
    expect(all.length).toBeGreaterThanOrEqual(10);
    for (const rule of all) {
      expect(rule.alert, rule.expr).toMatch(/^Cfgserver[A-Za-z]+$/);
      expect(['critical', 'warning', 'info'], rule.alert).toContain(rule.labels?.['severity']);
      expect(rule.annotations?.['summary'], rule.alert).toBeTruthy();
      expect(rule.annotations?.['description'], rule.alert).toBeTruthy();
      const unknown = namesIn(rule.expr).filter((n) => !known.has(n));
      expect(unknown, `${rule.alert}: ${rule.expr}`).toEqual([]);
    }
    expect(new Set(all.map((r) => r.alert)).size).toBe(all.length);
  });

  it('has the alerts the operators asked for: leader missing, failover failed, proxy epoch lag for 30 s, instances down, budget exhausted', () => {
    const byName = new Map(rules().map((r) => [r.alert, r]));
    expect(byName.get('CfgserverLeaderMissing')?.expr).toContain('cfgserver_controller_leader');
    expect(byName.get('CfgserverFailoverFailed')?.expr).toContain('cfgserver_failovers_total');
    expect(byName.get('CfgserverProxyEpochLag')).toMatchObject({ for: '30s' });
    expect(byName.get('CfgserverProxyEpochLag')?.expr).toContain('cfgserver_proxy_epoch_lag');
    expect(byName.get('CfgserverInstancesDown')?.expr).toContain('cfgserver_instances_down');
    expect(byName.get('CfgserverFailoverBudgetExhausted')?.expr).toContain('cfgserver_failover_budget_remaining');
  });

  it('passes promtool check rules, and its tests (alerts.test.yml) pass promtool test rules', () => {
    expect(promtool('check', 'rules', 'alerts.yml')).toMatch(/SUCCESS: \d+ rules found/);
    expect(promtool('test', 'rules', 'alerts.test.yml')).toMatch(/SUCCESS/);
  });

  it('prometheus.yml passes promtool check config, scrapes the compose services and loads the rules', () => {
    expect(promtool('check', 'config', 'prometheus.yml')).toMatch(/SUCCESS: 1 rule files found/);
    const config = parse(readFileSync(join(prometheusDir, 'prometheus.yml'), 'utf8')) as { rule_files: string[]; scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[] };
    expect(config.rule_files).toEqual(['alerts.yml']);
    const targets = Object.fromEntries(config.scrape_configs.map((s) => [s.job_name, s.static_configs.flatMap((c) => c.targets)]));
    const compose = parse(readFileSync(join(root, 'docker-compose.yml'), 'utf8')) as { services: Record<string, { command?: string[] }> };
    // Every controller and proxy of the compose file is scraped, at the port it listens on.
    const listening = (flag: string, kind: string) =>
      Object.entries(compose.services)
        .filter(([, s]) => s.command?.[0] === kind)
        .map(([name, s]) => `${name}:${s.command![s.command!.indexOf(flag) + 1]!.split(':')[1]}`);
    expect(targets['cfgserver-controller']).toEqual(listening('--listen', 'controller'));
    expect(targets['cfgserver-proxy']).toEqual(listening('--metrics', 'proxy'));
  });
});

describe('deploy/grafana/cfgserver.json', () => {
  it('is a dashboard whose panels have unique ids, fit the grid, and query only metrics the code exports', () => {
    const d = dashboard();
    expect(d.uid).toBe('cfgserver');
    const ids = d.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const queried = d.panels.filter((p) => p.type !== 'row');
    expect(queried.length).toBeGreaterThanOrEqual(15);
    for (const p of d.panels) expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
    for (const p of queried) {
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets!) expect(namesIn(t.expr).filter((n) => !known.has(n)), `${p.title}: ${t.expr}`).toEqual([]);
    }
    const cluster = d.templating.list.find((v) => v.name === 'cluster');
    expect(namesIn(cluster?.definition ?? '').every((n) => known.has(n))).toBe(true);
  });

  it("shows the leader's view and the failover metrics: every one of them is on a panel", () => {
    const used = new Set(dashboard().panels.flatMap((p) => (p.targets ?? []).flatMap((t) => namesIn(t.expr))));
    for (const name of ['cfgserver_controller_leader', 'cfgserver_leader_changes_total', 'cfgserver_failovers_total', 'cfgserver_switchovers_total', 'cfgserver_failover_duration_seconds_bucket', 'cfgserver_switchover_duration_seconds_bucket', 'cfgserver_route_epoch', 'cfgserver_proxy_epoch_lag', 'cfgserver_instances_down', 'cfgserver_tasks_running', 'cfgserver_failover_budget_remaining']) {
      expect(used, name).toContain(name);
    }
  });

  it("every panel's query is valid PromQL (promtool, as recording rules)", () => {
    const exprs = dashboard().panels.flatMap((p) => (p.targets ?? []).map((t) => asPromQL(t.expr)));
    const file = join(dir, 'panels.yml');
    writeFileSync(file, JSON.stringify({ groups: [{ name: 'panels', rules: exprs.map((expr, i) => ({ record: `cfgserver:panel_${i}`, expr })) }] }));
    expect(promtool('check', 'rules', file)).toMatch(new RegExp(`SUCCESS: ${exprs.length} rules found`));
  });
});

describe('docs/metrics.md', () => {
  it("describes every metric of the controller's and the proxy's registries", () => {
    const doc = readFileSync(join(root, 'docs', 'metrics.md'), 'utf8');
    const missing = registryMetrics().map((m) => m.name).filter((n) => isOwnMetric(n) && !doc.includes(`\`${n}\``));
    expect(missing).toEqual([]);
  });
});
