/**
 * Commands whose answer is per shard: sent to every shard's master and merged. A shard may hold
 * keys of slots it does not own (copied there by a migration not trimmed yet, or written by hand):
 * whatever lists or counts keys only counts those of slots the shard owns in the route.
 */
import { keySlot } from '../model/slot.js';
import { arrayElements, bulkValue, encodeCommand, encodeFor, integerReply, isError, reply } from './resp.js';
import type { Router } from './router.js';
import type { FanOutClient, Pending } from './client.js';
import { exactDbsize, firstOwnedKey } from './owned-keys.js';

/**
 * Sends `command` to the masters of the given shards (default: every shard) and combines the
 * replies, in shard order; an error from any shard is the answer.
 */
export function fanOut(
  session: FanOutClient,
  p: Pending,
  command: Buffer,
  combine: (replies: Buffer[], shards: number[], router: Router) => Buffer,
  only?: (router: Router, shard: number) => boolean,
): void {
  const router = session.ctx.router();
  const pools = router.masters();
  const shards = pools.map((_, i) => i).filter((i) => !only || only(router, i));
  const finish = (replies: Buffer[]) => {
    const failed = replies.find(isError);
    if (failed) return session.answer(p, failed);
    try {
      session.answer(p, combine(replies, shards, router));
    } catch {
      session.answer(p, reply.error('ERR proxy: unexpected reply from a shard'));
    }
  };
  if (shards.length === 0) return finish([]);
  const replies: Buffer[] = new Array(shards.length);
  let left = shards.length;
  shards.forEach((shard, k) =>
    session.sendTo(pools[shard]!, command, (r) => {
      replies[k] = r;
      if (--left === 0) finish(replies);
    }),
  );
}

const owningSlots = (router: Router, shard: number) => router.holdsAny(shard);

/** The elements (bulk replies, as received) of an array of keys that the shard owns. */
export function ownedKeys(router: Router, shard: number, keys: Buffer[]): Buffer[] {
  return keys.filter((k) => router.mayHold(shard, keySlot(bulkValue(k)!, router.slotCount)));
}

/** KEYS pattern: every shard that owns slots, merged. */
export function keys(session: FanOutClient, p: Pending, argv: Buffer[]): void {
  fanOut(session, p, encodeCommand(argv), (replies, shards, router) => reply.array(replies.flatMap((r, k) => ownedKeys(router, shards[k]!, arrayElements(r)))), owningSlots);
}

/**
 * The sum of the DBSIZE of the shards that own slots: exact as long as no shard holds keys of
 * slots it does not own. While the route marks shards as trimming (a split, from its hold to the
 * end of its trim) those shards' keys are counted by SCAN instead (owned-keys.ts): exact, but as
 * slow as a scan of them. Outside that window DBSIZE stays an O(1) command.
 */
export function dbsize(session: FanOutClient, p: Pending): void {
  const router = session.ctx.router();
  if (router.trimming.includes(true)) return exactDbsize(session, p, router, router.masters().map((_, i) => i).filter((i) => owningSlots(router, i)));
  fanOut(
    session,
    p,
    encodeCommand(['DBSIZE']),
    (replies) =>
      reply.integer(
        replies.reduce((n, r) => {
          const size = integerReply(r);
          if (size === null) throw new Error('DBSIZE is not an integer');
          return n + size;
        }, 0),
      ),
    owningSlots,
  );
}

const RANDOMKEY = encodeCommand(['RANDOMKEY']);
const RANDOMKEY_ATTEMPTS = 10;

/**
 * RANDOMKEY of a random shard, asked again (another random shard) while the key that comes back
 * is of a slot that shard does not own; nil when every shard is empty. When the attempts run out
 * on shards that are trimming (half their keys may be foreign), the first owned key a SCAN of them
 * finds; otherwise nil (shards holding mostly foreign keys outside a trim: keys written by hand).
 */
export function randomKey(session: FanOutClient, p: Pending): void {
  const router = session.ctx.router();
  const candidates = router.masters().map((_, i) => i).filter((i) => owningSlots(router, i));
  const attempt = (left: number): void => {
    if (candidates.length === 0) return session.answer(p, session.nullReply());
    if (left === 0) {
      return firstOwnedKey(session, router, candidates.filter((i) => router.trimming[i]), (error, key) => session.answer(p, error ?? (key ? reply.bulk(key) : session.nullReply())));
    }
    const pick = Math.floor(Math.random() * candidates.length);
    const shard = candidates[pick]!;
    session.sendTo(router.masters()[shard]!, RANDOMKEY, (r) => {
      if (isError(r)) return session.answer(p, r);
      let key: Buffer | null;
      try {
        key = bulkValue(r);
      } catch {
        return session.answer(p, reply.error('ERR proxy: unexpected RANDOMKEY reply from a shard'));
      }
      if (key === null) {
        candidates.splice(pick, 1); // an empty shard stays empty for this purpose
        return attempt(left);
      }
      if (router.mayHold(shard, keySlot(key, router.slotCount))) return session.answer(p, r);
      attempt(left - 1);
    });
  };
  attempt(RANDOMKEY_ATTEMPTS);
}

function allOk(): Buffer {
  return reply.ok;
}

function refuseFlush(session: FanOutClient, p: Pending, what: string): boolean {
  if (session.ctx.allowFlush) return false;
  session.answer(p, reply.error(`ERR proxy: ${what} is refused: it would empty every shard. Start the proxy with --allow-flush to allow it`));
  return true;
}

/** FLUSHALL / FLUSHDB [ASYNC|SYNC]: every master, even one without slots (its keys are stale). */
export function flush(session: FanOutClient, p: Pending, name: string, argv: Buffer[]): void {
  if (refuseFlush(session, p, name)) return;
  fanOut(session, p, encodeCommand(argv), allOk);
}

/** SCRIPT LOAD / EXISTS / FLUSH on every master, so that EVALSHA works whatever shard a key is in. */
export function script(session: FanOutClient, p: Pending, argv: Buffer[]): void {
  const sub = argv[1]!.toString().toUpperCase();
  const command = encodeCommand(argv);
  switch (sub) {
    case 'LOAD':
      return fanOut(session, p, command, (replies) => {
        const sha = replies[0];
        if (!sha) return reply.error('ERR proxy: the cluster has no shard');
        if (replies.some((r) => !r.equals(sha))) return reply.error('ERR proxy: the shards answered SCRIPT LOAD with different digests');
        return sha;
      });
    case 'EXISTS':
      return fanOut(session, p, command, (replies) => {
        const each = replies.map(arrayElements);
        const shas = argv.length - 2;
        const out: Buffer[] = [];
        for (let i = 0; i < shas; i++) out.push(reply.integer(each.length > 0 && each.every((e) => integerReply(e[i]!) === 1) ? 1 : 0));
        return reply.array(out);
      });
    case 'FLUSH':
      if (refuseFlush(session, p, 'SCRIPT FLUSH')) return;
      return fanOut(session, p, command, allOk);
    default:
      return session.answer(p, reply.error(`ERR proxy: SCRIPT ${sub} is not supported through the proxy (SCRIPT LOAD, EXISTS and FLUSH are)`));
  }
}

/** FUNCTION FLUSH on every master; the other FUNCTION subcommands are run on the instances. */
export function functionCommand(session: FanOutClient, p: Pending, argv: Buffer[]): void {
  const sub = argv[1]!.toString().toUpperCase();
  if (sub !== 'FLUSH') return session.answer(p, reply.error(`ERR proxy: FUNCTION ${sub} is not supported through the proxy: run it on each master`));
  if (refuseFlush(session, p, 'FUNCTION FLUSH')) return;
  fanOut(session, p, encodeCommand(argv), allOk);
}

/**
 * PUBSUB introspection over every master: CHANNELS and SHARDCHANNELS merge the channel lists (a
 * channel is listed once), NUMSUB and SHARDNUMSUB add up each channel's subscribers, NUMPAT is the
 * largest count of any master (the proxy subscribes each pattern on every master, so a sum would
 * count every proxy client once per master).
 */
export function pubsub(session: FanOutClient, p: Pending, argv: Buffer[]): void {
  const sub = argv[1]?.toString().toUpperCase();
  const command = encodeCommand(argv);
  switch (sub) {
    case 'CHANNELS':
    case 'SHARDCHANNELS':
      return fanOut(session, p, command, (replies) => {
        const seen = new Map<string, Buffer>();
        for (const r of replies) for (const ch of arrayElements(r)) seen.set(ch.toString('latin1'), ch);
        return reply.array([...seen.values()]);
      });
    case 'NUMSUB':
    case 'SHARDNUMSUB':
      return fanOut(session, p, command, (replies) => {
        const counts = argv.slice(2).map(() => 0);
        for (const r of replies) {
          const pairs = arrayElements(r);
          counts.forEach((_, i) => (counts[i]! += integerReply(pairs[2 * i + 1]!) ?? 0));
        }
        return encodeFor(session.proto).map(argv.slice(2).map((ch, i): [Buffer, Buffer] => [reply.bulk(ch), reply.integer(counts[i]!)]));
      });
    case 'NUMPAT':
      return fanOut(session, p, command, (replies) => reply.integer(Math.max(0, ...replies.map((r) => integerReply(r) ?? 0))));
    default:
      return session.answer(p, reply.error(`ERR proxy: PUBSUB ${sub ?? ''} is not supported through the proxy`));
  }
}
