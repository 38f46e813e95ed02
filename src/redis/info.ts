/**
 * Parsing of `INFO replication`. A Redis that answers something else (or nonsense) gets a
 * RedisError, never a half-filled record.
 */
import { RedisError } from '../model/errors.js';

export interface ReplicationInfo {
  role: 'master' | 'slave';
  /** For a slave: "host:port" of its master. */
  masterAddress: string | null;
  /** For a slave: whether its link to the master is up. */
  linkUp: boolean | null;
  /** For a slave whose link is down: seconds since it went down (-1 if it never was up). */
  linkDownSinceSec: number | null;
  /** master_repl_offset for a master; the processed offset for a slave. */
  offset: number;
  connectedSlaves: number;
  replId: string | null;
  /** A slave's replica-priority (0: never to be promoted); null for a master. */
  priority: number | null;
}

export function parseInfoFields(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    if (!line || line.startsWith('#')) continue;
    const i = line.indexOf(':');
    if (i > 0) fields.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return fields;
}

function intField(fields: Map<string, string>, name: string): number {
  const raw = fields.get(name);
  if (raw === undefined || !/^-?\d+$/.test(raw)) throw new RedisError(`INFO replication: field ${name} is ${raw === undefined ? 'missing' : `not an integer (${raw})`}`);
  return Number(raw);
}

export function parseReplicationInfo(text: unknown): ReplicationInfo {
  if (typeof text !== 'string') throw new RedisError(`INFO replication: expected text, got ${typeof text}`);
  const fields = parseInfoFields(text);
  const role = fields.get('role');
  if (role === 'master') {
    return {
      role,
      masterAddress: null,
      linkUp: null,
      linkDownSinceSec: null,
      offset: intField(fields, 'master_repl_offset'),
      connectedSlaves: intField(fields, 'connected_slaves'),
      replId: fields.get('master_replid') ?? null,
      priority: null,
    };
  }
  if (role === 'slave') {
    const host = fields.get('master_host');
    const port = intField(fields, 'master_port');
    const link = fields.get('master_link_status');
    if (!host) throw new RedisError('INFO replication: a slave without master_host');
    if (link !== 'up' && link !== 'down') throw new RedisError(`INFO replication: master_link_status is ${link ?? 'missing'}`);
    return {
      role,
      masterAddress: `${host.toLowerCase()}:${port}`,
      linkUp: link === 'up',
      linkDownSinceSec: link === 'down' ? intField(fields, 'master_link_down_since_seconds') : null,
      offset: fields.has('slave_repl_offset') ? intField(fields, 'slave_repl_offset') : intField(fields, 'master_repl_offset'),
      connectedSlaves: fields.has('connected_slaves') ? intField(fields, 'connected_slaves') : 0,
      replId: fields.get('master_replid') ?? null,
      priority: fields.has('slave_priority') ? intField(fields, 'slave_priority') : null,
    };
  }
  throw new RedisError(`INFO replication: unknown role ${role ?? '(missing)'}`);
}
