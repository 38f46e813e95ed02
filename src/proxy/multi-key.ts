/**
 * Multi-key commands across shards: MGET, MSET, DEL, UNLINK, EXISTS, TOUCH are split into one
 * command per shard and the answers merged back in the client's key order. (So MSET across
 * shards is not atomic, as in Redis Cluster clients.)
 */
import { keySlot } from '../model/slot.js';
import type { BackendPool } from './backend.js';
import type { Handling } from './commands.js';
import { arrayElements, encodeCommand, integerReply, isError, reply } from './resp.js';
import { noOwner, type MasterSender, type Pending } from './client.js';

type Split = Extract<Handling, { kind: 'split' }>;

interface Part {
  pool: BackendPool;
  /** Index (in key order) of each key this part carries. */
  positions: number[];
  args: Buffer[];
}

/** `router`: the route the command was dispatched under (a split command whose keys were moved first keeps it). */
export function dispatchSplit(session: MasterSender, p: Pending, name: string, handling: Split, argv: Buffer[], router = session.ctx.router()): void {
  const nameArg = argv[0]!;
  const parts = new Map<BackendPool, Part>();
  const keyCount = (argv.length - 1) / handling.step;
  if (!Number.isInteger(keyCount) || keyCount < 1) return session.answer(p, reply.error(`ERR wrong number of arguments for '${name.toLowerCase()}' command`));
  for (let k = 0; k < keyCount; k++) {
    const at = 1 + k * handling.step;
    const slot = keySlot(argv[at]!, router.slotCount);
    const pool = router.poolForSlot(slot);
    if (!pool) return session.answer(p, noOwner(router, slot));
    let part = parts.get(pool);
    if (!part) parts.set(pool, (part = { pool, positions: [], args: [nameArg] }));
    part.positions.push(k);
    for (let j = 0; j < handling.step; j++) part.args.push(argv[at + j]!);
  }
  const all = [...parts.values()];
  const replies: Buffer[] = new Array(all.length);
  let left = all.length;
  all.forEach((part, i) => {
    session.sendTo(part.pool, encodeCommand(part.args), (r) => {
      replies[i] = r;
      if (--left === 0) session.answer(p, merge(name, handling, all, replies, keyCount));
    });
  });
}

/**
 * One answer from the parts' answers. When some parts failed (a shard down, a wrong type), the
 * parts that ran still count: MGET gives each failed key its shard's error in place of a value;
 * DEL, UNLINK, EXISTS, TOUCH and MSET answer an error that says what the other shards did, so a
 * client learns both that the command partly failed and how far it got.
 */
function merge(name: string, handling: Split, parts: Part[], replies: Buffer[], keyCount: number): Buffer {
  const failures = parts.flatMap((part, i) => (isError(replies[i]!) ? [`${part.pool.address}: ${errorText(replies[i]!)}`] : []));
  if (failures.length === parts.length) return replies[0]!; // nothing ran: the shard's own error, as Redis would give it
  if (handling.merge === 'array') {
    const values: Buffer[] = new Array(keyCount);
    parts.forEach((part, i) => {
      const r = replies[i]!;
      const elements = isError(r) ? null : arrayElements(r);
      part.positions.forEach((pos, j) => (values[pos] = elements ? elements[j]! : r));
    });
    return reply.array(values);
  }
  let sum = 0;
  let keysDone = 0;
  parts.forEach((part, i) => {
    const r = replies[i]!;
    if (isError(r)) return;
    keysDone += part.positions.length;
    if (handling.merge === 'sum') sum += integerReply(r) ?? 0;
  });
  if (failures.length === 0) return handling.merge === 'ok' ? reply.ok : reply.integer(sum);
  const done = handling.merge === 'ok' ? `${keysDone} of ${keyCount} keys were set` : `the shards of ${keysDone} of ${keyCount} keys answered ${sum}`;
  return reply.error(`ERR proxy: ${name} partly failed: ${done}; ${failures.join('; ')}`);
}

function errorText(r: Buffer): string {
  return r.toString('latin1', 1).trim();
}
