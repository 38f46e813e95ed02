/**
 * The controller's own settings: from `--config FILE.yaml`, then command-line flags on top.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ValidationError, errorMessage } from '../model/errors.js';
import { parseInput } from '../model/schemas.js';
import { DEFAULT_ETCD } from '../store/etcd.js';
import type { EtcdSecuritySettings, SettingNames } from '../store/etcd-security.js';
import { DEFAULT_PREFIX } from '../store/keys.js';

export const controllerConfigSchema = z.strictObject({
  /** Unique per replica; defaults to hostname-pid. */
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'an id is 1-63 characters of letters, digits, ".", "_" and "-"').optional(),
  etcd: z.string().default(DEFAULT_ETCD),
  prefix: z.string().startsWith('/').default(DEFAULT_PREFIX),
  /** HTTP API address, host:port; none when absent. */
  listen: z.string().regex(/^[^:]+:\d+$/, 'listen is HOST:PORT').optional(),
  /** TTL of the replica's lease, and so of the leader lock. */
  leaseTtlSeconds: z.number().int().min(2).max(60).default(3),
  /** How often the list of clusters is re-read from etcd. */
  refreshMs: z.number().int().min(100).max(60_000).default(1000),
  /** At most this many probes in flight at once, over all clusters. */
  probeConcurrency: z.number().int().min(1).max(10_000).default(64),
  /** Wait this long before repeating a repair that did not take. */
  repairBackoffMs: z.number().int().min(0).max(600_000).default(5000),
  /** How often the leader compares each cluster's instances with its desired Redis config (a CONFIG GET each). */
  configCheckMs: z.number().int().min(100).max(600_000).default(5000),
  logLevel: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
  // etcd security (docs/security.md): file names, read at start-up. No password here: a file, or
  // $CFGSERVER_ETCD_PASSWORD.
  etcdCa: z.string().min(1).optional(),
  etcdCert: z.string().min(1).optional(),
  etcdKey: z.string().min(1).optional(),
  etcdUser: z.string().min(1).optional(),
  etcdPasswordFile: z.string().min(1).optional(),
  // The HTTP API's bearer token (a file, or $CFGSERVER_API_TOKEN), whether reads need it, a
  // read-only token (a file, or $CFGSERVER_API_READ_TOKEN), and TLS.
  apiTokenFile: z.string().min(1).optional(),
  apiAuthReads: z.boolean().default(false),
  apiReadTokenFile: z.string().min(1).optional(),
  apiTlsCert: z.string().min(1).optional(),
  apiTlsKey: z.string().min(1).optional(),
});
export type ControllerConfig = z.infer<typeof controllerConfigSchema>;

/** The etcd security settings of a controller config, for loadEtcdSecurity. */
export function etcdSecuritySettingsOf(config: ControllerConfig): EtcdSecuritySettings {
  return { ca: config.etcdCa, cert: config.etcdCert, key: config.etcdKey, user: config.etcdUser, passwordFile: config.etcdPasswordFile };
}

/** Errors name both the flag and the YAML key: the setting may come from either. */
export const CONTROLLER_ETCD_SETTING_NAMES: SettingNames = {
  ca: '--etcd-ca (etcdCa)',
  cert: '--etcd-cert (etcdCert)',
  key: '--etcd-key (etcdKey)',
  user: '--etcd-user (etcdUser)',
  passwordFile: '--etcd-password-file (etcdPasswordFile)',
};

/** Settings that existed once: a file that still has one gets told what became of it. */
const REMOVED: Record<string, string> = {
  healthRefreshMs: 'health views are now written only when their state changes, never to refresh them; remove it',
};

export function loadControllerConfig(file: string | undefined, overrides: Record<string, unknown>): ControllerConfig {
  let fromFile: Record<string, unknown> = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ValidationError(`cannot read config file ${file}: ${errorMessage(err)}`);
    }
    let parsed: unknown;
    try {
      parsed = parseYaml(text);
    } catch (err) {
      throw new ValidationError(`config file ${file} is not valid YAML: ${errorMessage(err)}`);
    }
    if (parsed !== null && (typeof parsed !== 'object' || Array.isArray(parsed))) throw new ValidationError(`config file ${file} must be a YAML mapping`);
    fromFile = (parsed ?? {}) as Record<string, unknown>;
  }
  for (const key of Object.keys(fromFile)) {
    const why = REMOVED[key];
    if (why) throw new ValidationError(`controller config (${file}): ${key} is no longer a setting: ${why}`);
  }
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  return parseInput(controllerConfigSchema, { ...fromFile, ...defined }, file ? `controller config (${file})` : 'controller config');
}
