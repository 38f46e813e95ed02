/**
 * Multi-key commands across shards: MGET, MSET, DEL, UNLINK, EXISTS, TOUCH are split into one
 * command per shard and the answers merged back in the client's key order. (So MSET across
 * shards is not atomic, as in Redis Cluster clients.)
 */
import { keySlot } from '../model/slot.js';
import type { BackendPool } from './backend.js';
import type { Handling } from './commands.js';
import { arrayElements, encodeCommand, integerReply, isError, reply } from './resp.js';
import { noOwner, type ClientSession, type Pending } from './session.js';

type Split = Extract<Handling, { kind: 'split' }>;

interface Part {
  pool: BackendPool;
  /** Index (in key order) of each key this part carries. */
  positions: number[];
  args: Buffer[];
}

export function dispatchSplit(session: ClientSession, p: Pending, name: string, handling: Split, argv: Buffer[]): void {
  const router = session.ctx.router();
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
      if (--left === 0) session.answer(p, merge(handling, all, replies, keyCount));
    });
  });
}

function merge(handling: Split, parts: Part[], replies: Buffer[], keyCount: number): Buffer {
  const failed = replies.find(isError);
  if (failed) return failed;
  if (handling.merge === 'ok') return reply.ok;
  if (handling.merge === 'sum') {
    let sum = 0;
    for (const r of replies) {
      const n = integerReply(r);
      if (n === null) return reply.error('ERR proxy: unexpected reply from a shard');
      sum += n;
    }
    return reply.integer(sum);
  }
  const values: Buffer[] = new Array(keyCount);
  parts.forEach((part, i) => {
    const elements = arrayElements(replies[i]!);
    part.positions.forEach((pos, j) => (values[pos] = elements[j]!));
  });
  return reply.array(values);
}
