/**
 * deploy/kubernetes checked offline: every object against the Kubernetes API's own schemas (the
 * `kubernetes-models` package ships them, generated from Kubernetes's OpenAPI document; kubeconform
 * and PyPI's kubernetes-validate could not be installed here), and what the processes need of the
 * manifests: flags that `cfgserver controller` / `proxy` accept (from their --help), variables,
 * ConfigMap and Secret keys, volumes, ports, probes, selectors.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments, parse } from 'yaml';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';

const root = join(import.meta.dirname, '..', '..');
const k8sDir = join(root, 'deploy', 'kubernetes');

type Obj = Record<string, any>;

const files = readdirSync(k8sDir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
const objects: { file: string; obj: Obj }[] = files.flatMap((file) =>
  parseAllDocuments(readFileSync(join(k8sDir, file), 'utf8')).map((doc) => {
    if (doc.errors.length) throw new Error(`${file}: ${doc.errors[0]!.message}`);
    return { file, obj: doc.toJS() as Obj };
  }),
);
const ofKind = (kind: string) => objects.filter((o) => o.obj['kind'] === kind).map((o) => o.obj);

/** The API version of each kind used, as Kubernetes serves it today. */
const API_VERSIONS: Record<string, string> = { Namespace: 'v1', ConfigMap: 'v1', Secret: 'v1', Service: 'v1', Deployment: 'apps/v1', PodDisruptionBudget: 'policy/v1' };

/** The schema-checked model of each kind: `validate()` throws with the path of what is wrong. */
const MODELS: Record<string, new (obj: any) => { validate(): void }> = { Namespace, ConfigMap, Secret, Service, Deployment, PodDisruptionBudget };

/** The long flags a cfgserver subcommand accepts, read from its --help (the built CLI). */
function flagsOf(command: string): Set<string> {
  const help = execFileSync(process.execPath, [join(root, 'dist', 'cli', 'cfgserver.js'), command, '--help'], { encoding: 'utf8' });
  return new Set(help.match(/--[a-z][a-z0-9-]*/g) ?? []);
}

function containers(d: Obj): Obj[] {
  return d['spec']['template']['spec']['containers'];
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

describe('deploy/kubernetes', () => {
  it('every object has a known kind with its apiVersion, a DNS-1123 name and the cfgserver namespace', () => {
    expect(objects.length).toBeGreaterThanOrEqual(8);
    for (const { file, obj } of objects) {
      const where = `${file}: ${obj['kind']} ${obj['metadata']?.['name']}`;
      expect(API_VERSIONS[obj['kind']], where).toBeDefined();
      expect(obj['apiVersion'], where).toBe(API_VERSIONS[obj['kind']]);
      expect(obj['metadata']['name'], where).toMatch(DNS_LABEL);
      expect(obj['metadata']['name'].length, where).toBeLessThanOrEqual(63);
      if (obj['kind'] !== 'Namespace') expect(obj['metadata']['namespace'], where).toBe('cfgserver');
    }
    expect(ofKind('Namespace').map((n) => n['metadata']['name'])).toEqual(['cfgserver']);
  });

  it("every object is valid against the Kubernetes API's schema of its kind", () => {
    for (const { file, obj } of objects) {
      const Model = MODELS[obj['kind']];
      expect(Model, `${file}: a model for ${obj['kind']}`).toBeDefined();
      expect(() => new Model!(obj).validate(), `${file}: ${obj['kind']} ${obj['metadata']?.['name']}`).not.toThrow();
    }
    // The check can fail: a port given as a word, a replica count as text.
    const deployment = ofKind('Deployment')[0]!;
    const broken = structuredClone(deployment);
    broken['spec']['template']['spec']['containers'][0]['ports'] = [{ containerPort: 'http' }];
    expect(() => new Deployment(broken).validate()).toThrow(/containerPort/);
    expect(() => new Deployment({ ...structuredClone(deployment), spec: { ...structuredClone(deployment['spec']), replicas: 'two' } }).validate()).toThrow(/replicas/);
  });

  it('the kustomization lists every manifest', () => {
    const k = parse(readFileSync(join(k8sDir, 'kustomization.yaml'), 'utf8')) as Obj;
    expect([...k['resources']].sort()).toEqual([...files].sort());
  });

  it('a controller Deployment and a proxy Deployment whose selectors match their pods, with a Service each that selects them on a declared port', () => {
    const deployments = ofKind('Deployment');
    const component = (d: Obj) => d['spec']['template']['metadata']['labels']['app.kubernetes.io/component'];
    expect(deployments.map(component).sort()).toEqual(['controller', 'proxy']);
    for (const d of deployments) {
      const labels = d['spec']['template']['metadata']['labels'];
      for (const [k, v] of Object.entries(d['spec']['selector']['matchLabels'])) expect(labels[k], `${d['metadata']['name']} ${k}`).toBe(v);
    }
    for (const svc of ofKind('Service')) {
      const target = deployments.find((d) => Object.entries(svc['spec']['selector']).every(([k, v]) => d['spec']['template']['metadata']['labels'][k] === v));
      expect(target, `Service ${svc['metadata']['name']} selects a Deployment`).toBeDefined();
      const declared = containers(target!).flatMap((c) => c['ports'] ?? []);
      for (const port of svc['spec']['ports']) expect(declared.some((p: Obj) => p['name'] === port['targetPort'] || p['containerPort'] === port['targetPort']), `${svc['metadata']['name']} -> ${port['targetPort']}`).toBe(true);
    }
    for (const pdb of ofKind('PodDisruptionBudget')) {
      const target = deployments.find((d) => Object.entries(pdb['spec']['selector']['matchLabels']).every(([k, v]) => d['spec']['template']['metadata']['labels'][k] === v));
      expect(target, `PodDisruptionBudget ${pdb['metadata']['name']}`).toBeDefined();
      expect(pdb['spec']['minAvailable']).toBeLessThan(target!['spec']['replicas']);
    }
  });

  it("every container's args are a cfgserver subcommand with flags it accepts, and what they need is defined", () => {
    const configMaps = new Map(ofKind('ConfigMap').map((c) => [c['metadata']['name'], c['data'] ?? {}]));
    const secrets = new Map(ofKind('Secret').map((s) => [s['metadata']['name'], { ...(s['data'] ?? {}), ...(s['stringData'] ?? {}) }]));
    for (const d of ofKind('Deployment')) {
      const pod = d['spec']['template']['spec'];
      for (const c of containers(d)) {
        const where = `${d['metadata']['name']}/${c['name']}`;
        const [command, ...args] = c['args'] as string[];
        expect(['controller', 'proxy'], where).toContain(command);
        const accepted = flagsOf(command!);
        const flags = new Map(args.map((a) => [a.split('=')[0]!, a.slice(a.indexOf('=') + 1)]));
        for (const a of args) expect(a, `${where}: flags are written --flag=value`).toMatch(/^--[a-z][a-z0-9-]*=.+$/);
        for (const flag of flags.keys()) expect(accepted, `${where}: ${flag}`).toContain(flag);
        // What every process needs: its etcd, a stable id; the proxy its cluster and metrics port.
        for (const flag of ['--etcd', '--id', '--listen', '--prefix']) expect(flags.has(flag), `${where}: ${flag}`).toBe(true);
        if (command === 'proxy') for (const flag of ['--cluster', '--metrics']) expect(flags.has(flag), `${where}: ${flag}`).toBe(true);

        // Every $(VAR) is defined in env, from the pod, a ConfigMap key or a Secret key that exist.
        const env = new Map((c['env'] as Obj[]).map((e) => [e['name'], e]));
        for (const v of args.join(' ').matchAll(/\$\(([A-Z_][A-Z0-9_]*)\)/g)) expect(env.has(v[1]), `${where}: $(${v[1]})`).toBe(true);
        for (const e of env.values()) {
          const from = e['valueFrom'] ?? {};
          if (from['configMapKeyRef']) expect(configMaps.get(from['configMapKeyRef']['name'])?.[from['configMapKeyRef']['key']], `${where}: ${e['name']}`).toBeDefined();
          if (from['secretKeyRef']) expect(secrets.get(from['secretKeyRef']['name'])?.[from['secretKeyRef']['key']], `${where}: ${e['name']}`).toBeDefined();
          if (from['fieldRef']) expect(['metadata.name', 'status.podIP', 'metadata.namespace'], where).toContain(from['fieldRef']['fieldPath']);
        }

        // The ports it listens on are declared; probes use declared ports.
        const ports = new Map((c['ports'] as Obj[]).map((p) => [p['name'], p['containerPort']]));
        for (const flag of ['--listen', '--metrics']) {
          if (!flags.has(flag)) continue;
          expect([...ports.values()], `${where}: ${flag}`).toContain(Number(flags.get(flag)!.split(':').pop()));
        }
        for (const probe of [c['readinessProbe'], c['livenessProbe']]) {
          const port = probe?.['httpGet']?.['port'] ?? probe?.['tcpSocket']?.['port'];
          expect(ports.has(port) || [...ports.values()].includes(port), `${where}: probe port ${port}`).toBe(true);
        }
        // An HTTP probe of /healthz on the port that serves it (the API's, or the proxy's metrics port).
        const healthPort = c['readinessProbe']['httpGet']['port'];
        expect(c['readinessProbe']['httpGet']['path']).toBe('/healthz');
        expect(flags.get(command === 'proxy' ? '--metrics' : '--listen')).toMatch(new RegExp(`:${ports.get(healthPort)}$`));

        // Files named by flags are mounted, from volumes the pod has, backed by existing Secrets.
        const volumes = new Map((pod['volumes'] as Obj[]).map((v) => [v['name'], v]));
        for (const [flag, value] of flags) {
          if (!flag.endsWith('-file')) continue;
          const mount = (c['volumeMounts'] as Obj[]).find((m) => value.startsWith(`${m['mountPath']}/`));
          expect(mount, `${where}: ${flag} ${value} is mounted`).toBeDefined();
          const secret = volumes.get(mount!['name'])?.['secret'];
          expect(secrets.get(secret?.['secretName'])?.[value.slice(mount!['mountPath'].length + 1)], `${where}: ${value} in its Secret`).toBeDefined();
        }
        // The image's user (deploy/Dockerfile), no root.
        expect(pod['securityContext']).toMatchObject({ runAsNonRoot: true, runAsUser: 10001 });
        // Prometheus finds it (docs/metrics.md): the annotation names the metrics port.
        const annotations = d['spec']['template']['metadata']['annotations'];
        expect(annotations['prometheus.io/scrape']).toBe('true');
        expect(flags.get(command === 'proxy' ? '--metrics' : '--listen')).toMatch(new RegExp(`:${annotations['prometheus.io/port']}$`));
      }
    }
  });
});
