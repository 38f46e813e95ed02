/**
 * COMMAND's reply → CommandSpec. One parser for both places that read it: the proxy at start-up
 * (a RESP2 reply from a master, decoded by decodeReply) and scripts/gen-command-table.mjs, which
 * writes the built-in fallback table. Key-spec maps are flat [name, value, ...] arrays in RESP2
 * and objects in `redis-cli --json` output; both are accepted.
 */
import type { CommandSpec, KeySpec } from './command-spec.js';
import { ProtocolError } from './resp.js';

/** Only what the proxy's routing decisions read; the rest would just be carried around. */
const KEEP_FLAGS = new Set(['write', 'readonly', 'blocking', 'pubsub', 'admin', 'noscript', 'movablekeys', 'fast', 'loading', 'stale']);
const KEEP_ACL = new Set(['@dangerous', '@admin', '@pubsub', '@blocking', '@connection', '@transaction', '@scripting', '@keyspace']);

export type RespValue = string | number | null | RespValue[] | { error: string };

/** Decodes one whole RESP2 reply (simple strings, errors, integers, bulks, nested arrays). */
export function decodeReply(buf: Buffer): RespValue {
  let pos = 0;
  const line = (): string => {
    const end = buf.indexOf('\r\n', pos);
    if (end === -1) throw new ProtocolError('truncated reply');
    const s = buf.toString('utf8', pos + 1, end);
    pos = end + 2;
    return s;
  };
  const value = (): RespValue => {
    const type = buf[pos];
    const text = line();
    switch (type) {
      case 43: // +
        return text;
      case 45: // -
        return { error: text };
      case 58: // :
        return Number(text);
      case 36: {
        // $
        const len = Number(text);
        if (len < 0) return null;
        if (pos + len + 2 > buf.length) throw new ProtocolError('truncated reply');
        const s = buf.toString('utf8', pos, pos + len);
        pos += len + 2;
        return s;
      }
      case 42: {
        // *
        const n = Number(text);
        if (n < 0) return null;
        const items: RespValue[] = [];
        for (let i = 0; i < n; i++) items.push(value());
        return items;
      }
      default:
        throw new ProtocolError(`unexpected reply type '${String.fromCharCode(type ?? 0)}'`);
    }
  };
  return value();
}

type Loose = unknown;

/** A RESP2 flat map ([k1, v1, k2, v2, ...]) or an object, as an object. */
function asMap(v: Loose): Record<string, Loose> {
  if (Array.isArray(v)) {
    const out: Record<string, Loose> = {};
    for (let i = 0; i + 1 < v.length; i += 2) out[String(v[i])] = v[i + 1];
    return out;
  }
  if (v !== null && typeof v === 'object') return v as Record<string, Loose>;
  throw new Error(`expected a map, got ${JSON.stringify(v)}`);
}

function num(v: Loose, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new Error(`${what} is not an integer: ${JSON.stringify(v)}`);
  return v;
}

function strings(v: Loose, what: string): string[] {
  if (!Array.isArray(v)) throw new Error(`${what} is not a list`);
  return v.map(String);
}

function keySpec(raw: Loose): KeySpec {
  const spec = asMap(raw);
  const bs = asMap(spec['begin_search']);
  const bsSpec = bs['spec'] === undefined ? {} : asMap(bs['spec']);
  const begin: KeySpec['begin'] =
    bs['type'] === 'index'
      ? { index: num(bsSpec['index'], 'begin_search index') }
      : bs['type'] === 'keyword'
        ? { keyword: String(bsSpec['keyword']).toUpperCase(), startfrom: num(bsSpec['startfrom'], 'begin_search startfrom') }
        : { unknown: true };
  const fk = asMap(spec['find_keys']);
  const fkSpec = fk['spec'] === undefined ? {} : asMap(fk['spec']);
  const find: KeySpec['find'] =
    fk['type'] === 'range'
      ? { lastkey: num(fkSpec['lastkey'], 'range lastkey'), step: num(fkSpec['keystep'], 'range keystep'), limit: num(fkSpec['limit'], 'range limit') }
      : fk['type'] === 'keynum'
        ? { keynumidx: num(fkSpec['keynumidx'], 'keynum keynumidx'), firstkey: num(fkSpec['firstkey'], 'keynum firstkey'), step: num(fkSpec['keystep'], 'keynum keystep') }
        : { unknown: true };
  return { begin, find };
}

/**
 * One COMMAND entry: [name, arity, flags, first, last, step, acl, tips, key specs, subcommands]
 * (Redis 7). Returns its upper-cased name (for a subcommand, the part after the '|') and spec.
 */
function commandEntry(raw: Loose): [string, CommandSpec] {
  if (!Array.isArray(raw) || raw.length < 10) throw new Error(`a COMMAND entry has ${Array.isArray(raw) ? raw.length : 'no'} fields, expected 10 (Redis 7)`);
  const [name, arity, flags, , , , acl, , specs, subcommands] = raw as Loose[];
  if (typeof name !== 'string' || name === '') throw new Error('a COMMAND entry has no name');
  const fullName = name.toUpperCase();
  const spec: CommandSpec = {
    arity: num(arity, `${name} arity`),
    flags: strings(flags, `${name} flags`).filter((f) => KEEP_FLAGS.has(f)),
    acl: strings(acl, `${name} acl categories`).filter((a) => KEEP_ACL.has(a)),
    keys: (specs === null || specs === undefined ? [] : (specs as Loose[])).map(keySpec),
  };
  if (Array.isArray(subcommands) && subcommands.length > 0) {
    spec.container = true;
    spec.subcommands = {};
    for (const sub of subcommands) {
      const [subName, subSpec] = commandEntry(sub);
      spec.subcommands[subName.slice(subName.indexOf('|') + 1)] = subSpec;
    }
  }
  return [fullName, spec];
}

/**
 * The command table from COMMAND's (or COMMAND INFO's) reply, decoded. Throws on anything that
 * is not Redis 7's shape: a half-understood table must not replace a good one.
 */
export function parseCommandReply(reply: Loose): Record<string, CommandSpec> {
  if (!Array.isArray(reply)) throw new Error('COMMAND did not answer a list');
  const table: Record<string, CommandSpec> = {};
  for (const entry of reply) {
    if (entry === null) continue; // COMMAND INFO of an unknown name
    const [name, spec] = commandEntry(entry);
    table[name] = spec;
  }
  return table;
}
