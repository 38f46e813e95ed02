/**
 * What the proxy does with each command: where its keys are (from Redis's own key specs, see
 * command-table.ts) and how it is handled — routed by slot, split across shards, answered by the
 * proxy, or refused with a clear reason.
 */
import type { CommandSpec } from './command-spec.js';
import { COMMAND_TABLE } from './command-table.js';

export type { CommandSpec, KeySpec } from './command-spec.js';

export type Handling =
  /** Keys (if several, all in one slot) decide the shard; the command is forwarded as received. */
  | { kind: 'keyed' }
  /** One key per sub-command: MGET, DEL, EXISTS, ... (step 1) or MSET (step 2); split by shard, merged. */
  | { kind: 'split'; step: 1 | 2; merge: 'array' | 'sum' | 'ok' }
  /** Answered by the proxy itself. */
  | { kind: 'local' }
  /** MULTI / EXEC / DISCARD / WATCH / UNWATCH: the session's transaction. */
  | { kind: 'transaction' }
  /** Blocks until data comes: sent on a backend connection of the client's own (pinned). */
  | { kind: 'blocking' }
  /** (P|S)SUBSCRIBE, (P|S)UNSUBSCRIBE: the session's subscriptions. */
  | { kind: 'subscription' }
  /** PUBLISH: routed by the slot of its channel, where subscribers of that channel listen. */
  | { kind: 'channel' }
  /** WAIT: after the client's earlier commands, on every master (wait.ts). */
  | { kind: 'wait' }
  | { kind: 'refused'; reason: string };

const SPLIT: Record<string, Handling> = {
  MGET: { kind: 'split', step: 1, merge: 'array' },
  MSET: { kind: 'split', step: 2, merge: 'ok' },
  DEL: { kind: 'split', step: 1, merge: 'sum' },
  UNLINK: { kind: 'split', step: 1, merge: 'sum' },
  EXISTS: { kind: 'split', step: 1, merge: 'sum' },
  TOUCH: { kind: 'split', step: 1, merge: 'sum' },
};

const LOCAL = new Set([
  'PING', 'ECHO', 'QUIT', 'SELECT', 'AUTH', 'HELLO', 'INFO', 'COMMAND', 'TIME', 'CLIENT', 'READONLY', 'READWRITE', 'RESET',
  // Fanned out to every shard's master (fan-out.ts, scan.ts).
  'DBSIZE', 'SCAN', 'KEYS', 'RANDOMKEY', 'FLUSHALL', 'FLUSHDB', 'SCRIPT', 'FUNCTION', 'PUBSUB',
]);
const TRANSACTION = new Set(['MULTI', 'EXEC', 'DISCARD', 'WATCH', 'UNWATCH']);
const SUBSCRIPTION = new Set(['SUBSCRIBE', 'UNSUBSCRIBE', 'PSUBSCRIBE', 'PUNSUBSCRIBE', 'SSUBSCRIBE', 'SUNSUBSCRIBE']);
/** Container commands whose key is their third word (OBJECT ENCODING key, XINFO STREAM key, ...). */
const KEY_AFTER_SUBCOMMAND = new Set(['OBJECT', 'XINFO', 'XGROUP', 'MEMORY']);

export function handlingOf(name: string): Handling {
  const split = SPLIT[name];
  if (split) return split;
  if (LOCAL.has(name)) return { kind: 'local' };
  if (TRANSACTION.has(name)) return { kind: 'transaction' };
  if (SUBSCRIPTION.has(name)) return { kind: 'subscription' };
  if (name === 'PUBLISH') return { kind: 'channel' };
  if (name === 'SPUBLISH') return { kind: 'keyed' };
  const spec = table[name];
  if (!spec) return { kind: 'refused', reason: `unknown command '${name}'` };
  // Behind the proxy only database 0 exists: MOVE would hide the key in another one.
  if (name === 'MOVE') return { kind: 'refused', reason: 'only database 0 exists behind the proxy: MOVE to another database is refused' };
  if (name === 'WAIT') return { kind: 'wait' };
  if (spec.flags.includes('pubsub') || spec.acl.includes('@pubsub')) return { kind: 'refused', reason: `${name} is not supported through the proxy` };
  // XREAD and XREADGROUP block only with BLOCK among their options: decided per command.
  if (spec.flags.includes('blocking') && name !== 'XREAD' && name !== 'XREADGROUP') return { kind: 'blocking' };
  // SORT is @dangerous only for the keys its patterns may read: those are checked per command.
  if (name !== 'SORT' && name !== 'SORT_RO' && (spec.flags.includes('admin') || spec.acl.includes('@dangerous') || spec.acl.includes('@admin'))) {
    return { kind: 'refused', reason: `${name} is refused by the proxy: it would act on one shard only, or on the servers; run it on the instances (cfgserver manages them)` };
  }
  if (spec.container && !KEY_AFTER_SUBCOMMAND.has(name)) return { kind: 'refused', reason: `${name} is not supported through the proxy` };
  if (spec.keys.length === 0 && !spec.container) return { kind: 'refused', reason: `${name} has no key to route by` };
  return { kind: 'keyed' };
}

/** Commands whose only key is their first argument (GET, SET, HSET, INCR, ...): the hot path. */
function singleFirstKeyCommands(t: Record<string, CommandSpec>): Set<string> {
  return new Set(
    Object.entries(t)
      .filter(([, spec]) => {
        const [only] = spec.keys;
        return spec.keys.length === 1 && !spec.flags.includes('movablekeys') && only && 'index' in only.begin && only.begin.index === 1 && 'lastkey' in only.find && only.find.lastkey === 0;
      })
      .map(([name]) => name),
  );
}

/** The table in use: the backends' own (command-source.ts) once read, the built-in one until then. */
let table: Record<string, CommandSpec> = COMMAND_TABLE;
let SINGLE_FIRST_KEY = singleFirstKeyCommands(table);

export function commandTable(): Readonly<Record<string, CommandSpec>> {
  return table;
}

/** Switches to another table; every lookup derived from the old one is dropped with it. */
export function useCommandTable(next: Record<string, CommandSpec>): void {
  table = next;
  SINGLE_FIRST_KEY = singleFirstKeyCommands(next);
  INFO.clear();
  BY_BYTES.clear();
}

/**
 * Argument indexes of the keys of a command, following Redis's key specs; null when they cannot
 * be found (an unknown spec, or a malformed count), so that the command is refused, not misrouted.
 */
export function keyIndexes(name: string, argv: readonly Buffer[]): number[] | null {
  const argc = argv.length;
  if (name === 'SORT' || name === 'SORT_RO') return sortKeyIndexes(argv);
  const container = table[name];
  const sub = container?.subcommands && argc >= 2 ? container.subcommands[argv[1]!.toString().toUpperCase()] : undefined;
  if (sub) return keysBySpecs(sub, argv);
  if (KEY_AFTER_SUBCOMMAND.has(name)) {
    if (argc < 3) return [];
    const sub = argv[1]!.toString().toUpperCase();
    // MEMORY USAGE key is the only MEMORY subcommand with a key; XGROUP HELP and the like have none.
    if (name === 'MEMORY' && sub !== 'USAGE') return [];
    if (sub === 'HELP') return [];
    return [2];
  }
  const spec = table[name];
  if (!spec) return null;
  return keysBySpecs(spec, argv);
}

function keysBySpecs(spec: CommandSpec, argv: readonly Buffer[]): number[] | null {
  const argc = argv.length;
  const out: number[] = [];
  for (const ks of spec.keys) {
    let start: number;
    const begin = ks.begin;
    if ('index' in begin) {
      start = begin.index;
    } else if ('keyword' in begin) {
      const found = findKeyword(argv, begin.keyword, begin.startfrom);
      if (found === -1) continue;
      start = found + 1;
    } else {
      return null;
    }
    if (start >= argc) continue;
    const find = ks.find;
    if ('lastkey' in find) {
      let last: number;
      if (find.lastkey >= 0) last = start + find.lastkey;
      else if (find.limit > 1) last = start + Math.floor((argc - start) / find.limit) - 1;
      else last = argc + find.lastkey;
      for (let i = start; i <= last && i < argc; i += find.step) out.push(i);
    } else if ('keynumidx' in find) {
      const raw = argv[start + find.keynumidx]?.toString();
      if (raw === undefined || !/^\d+$/.test(raw)) return null;
      const count = Number(raw);
      const first = start + find.firstkey;
      if (first + (count - 1) * find.step >= argc && count > 0) return null;
      for (let k = 0; k < count; k++) out.push(first + k * find.step);
    } else {
      return null;
    }
  }
  return out;
}

/**
 * SORT's keys: the sorted key and its STORE destination. Its BY and GET patterns name other keys
 * too; like Redis Cluster, they are accepted only when they hash to the sorted key's slot (a
 * pattern is returned as a key position so that the one-slot check covers it), or are `#` / have
 * no `*` (which reads no other key).
 */
function sortKeyIndexes(argv: readonly Buffer[]): number[] | null {
  const out = [1];
  for (let i = 2; i < argv.length; i++) {
    const word = argv[i]!.toString().toUpperCase();
    if (word === 'LIMIT') i += 2;
    else if (word === 'STORE' || word === 'BY' || word === 'GET') {
      const value = argv[i + 1];
      if (value === undefined) return out; // a syntax error: Redis will say so
      const pattern = value.toString();
      if (word === 'STORE' || (pattern !== '#' && pattern.includes('*') && !(word === 'BY' && pattern.toLowerCase() === 'nosort'))) out.push(i + 1);
      i++;
    }
  }
  return out;
}

/**
 * XREAD / XREADGROUP block only if BLOCK is among their options (before STREAMS): a stream key
 * named "block" does not make them block.
 */
export function streamReadBlocks(name: string, argv: readonly Buffer[]): boolean {
  let i = name === 'XREADGROUP' ? 4 : 1;
  while (i < argv.length) {
    const word = argv[i]!.toString().toUpperCase();
    if (word === 'STREAMS') return false;
    if (word === 'BLOCK') return true;
    i += word === 'COUNT' ? 2 : 1;
  }
  return false;
}

function findKeyword(argv: readonly Buffer[], keyword: string, startfrom: number): number {
  const argc = argv.length;
  if (startfrom >= 0) {
    for (let i = startfrom; i < argc; i++) if (argv[i]!.toString().toUpperCase() === keyword) return i;
  } else {
    for (let i = argc + startfrom; i > 0; i--) if (argv[i]!.toString().toUpperCase() === keyword) return i;
  }
  return -1;
}


/** Everything the proxy needs to know about a command name, looked up once per spelling. */
export interface CommandInfo {
  /** Upper-cased. */
  name: string;
  handling: Handling;
  arity: number | undefined;
  /** Its only key is its first argument. */
  singleFirstKey: boolean;
  /** It may change data (Redis's `write` flag): its success must come from a master the route names. */
  write: boolean;
}

const INFO = new Map<string, CommandInfo>();

/** The info of a command name as the client spelled it (clients send the same few spellings). */
export function commandInfo(spelled: string): CommandInfo {
  let info = INFO.get(spelled);
  if (info === undefined) {
    const name = spelled.toUpperCase();
    info = { name, handling: handlingOf(name), arity: table[name]?.arity, singleFirstKey: SINGLE_FIRST_KEY.has(name), write: table[name]?.flags.includes('write') ?? false };
    if (INFO.size < 4096) INFO.set(spelled, info); // bounded: a client sending random names cannot grow it
  }
  return info;
}

/** Arity check as Redis does it: positive = exact, negative = at least. */
export function arityAccepts(arity: number | undefined, argc: number): boolean {
  return arity === undefined || (arity >= 0 ? argc === arity : argc >= -arity);
}

/** Short names (GET, SET, HSET, LPUSH, ...) by their bytes packed in a number: no string per command. */
const BY_BYTES = new Map<number, CommandInfo>();

/** The info of the command name at buf[start, end), as the client spelled it. */
export function commandInfoAt(buf: Buffer, start: number, end: number): CommandInfo {
  const length = end - start;
  if (length > 6) return commandInfo(buf.latin1Slice(start, end));
  // length, then the bytes: distinct names give distinct numbers below 2^51.
  let key = length;
  for (let i = start; i < end; i++) key = key * 256 + buf[i]!;
  let info = BY_BYTES.get(key);
  if (info === undefined) {
    info = commandInfo(buf.latin1Slice(start, end));
    if (BY_BYTES.size < 4096) BY_BYTES.set(key, info);
  }
  return info;
}
