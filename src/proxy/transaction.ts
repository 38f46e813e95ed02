/**
 * MULTI / EXEC / DISCARD / WATCH / UNWATCH for one client session.
 *
 * Commands after MULTI are checked and queued by the proxy (all keys in one slot), then sent as
 * one block — MULTI, the commands, EXEC — to the master of that slot when EXEC comes, so nothing
 * can interleave. WATCH needs the watched keys' master to remember this client, so it travels on
 * the client's pinned connection, and so does the block of the EXEC that follows. A WATCH that
 * the proxy cannot keep (the master changed, the connection broke) makes EXEC answer null, as a
 * watched key that changed would: the client's optimistic-locking loop simply retries.
 */
import type { BackendConnection } from './backend.js';
import type { CommandInfo } from './commands.js';
import { encodeFor, reply, type ParsedCommand } from './resp.js';
import { noOwner, type Pending, type RouteView, type TransactionClient } from './client.js';

/** Commands that run at once even inside MULTI (as in Redis). */
const RUN_AT_ONCE = new Set(['EXEC', 'DISCARD', 'MULTI', 'WATCH', 'QUIT', 'RESET']);
/** Answered by the proxy outside a transaction, but harmless to queue and let Redis answer in one. */
const QUEUEABLE_LOCAL = new Set(['PING', 'ECHO', 'TIME']);

interface Watch {
  connection: BackendConnection;
  slot: number;
}

const MULTI = Buffer.from('*1\r\n$5\r\nMULTI\r\n');
const EXEC = Buffer.from('*1\r\n$4\r\nEXEC\r\n');
const UNWATCH = Buffer.from('*1\r\n$7\r\nUNWATCH\r\n');
const EMPTY_ARRAY = Buffer.from('*0\r\n');

export class TransactionState {
  /** Copies of the commands queued since MULTI; null when no MULTI is open. */
  private queued: Buffer[] | null = null;
  private slot: number | null = null;
  private aborted = false;
  private watch: Watch | null = null;
  /** The WATCH can no longer be honoured: the next EXEC answers null. */
  private watchLost = false;

  get open(): boolean {
    return this.queued !== null;
  }

  runsAtOnce(name: string): boolean {
    return RUN_AT_ONCE.has(name);
  }

  /** A command refused inside MULTI makes EXEC fail (EXECABORT), as in Redis. */
  abort(): void {
    if (this.queued) this.aborted = true;
  }

  /** The pinned connection closed: a WATCH on it is gone. */
  pinnedLost(): void {
    if (this.watch) this.watchLost = true;
  }

  /** Whether commands for `slot` belong on the pinned connection of the WATCH. */
  watchesSlotOf(session: RouteView, slot: number): boolean {
    return this.watch !== null && !this.watchLost && session.ctx.router().poolForSlot(slot)?.address === this.watch.connection.address;
  }

  enqueue(session: TransactionClient, p: Pending, info: CommandInfo, cmd: ParsedCommand): void {
    const { name, handling } = info;
    const refuse = (message: string) => {
      this.aborted = true;
      session.answer(p, reply.error(message));
    };
    // Redis has no such bound, but it keeps a MULTI queue in its own memory: the proxy keeps it
    // in one client's, and one client must not make the proxy hold without bound.
    const max = session.ctx.limits.maxMultiCommands;
    if (max > 0 && this.queued!.length >= max) return refuse(`ERR proxy: a transaction may queue at most ${max} commands (--max-multi-commands)`);
    if (handling.kind === 'refused') return refuse(`ERR proxy: ${handling.reason}`);
    if (handling.kind === 'local' && !QUEUEABLE_LOCAL.has(name)) return refuse(`ERR proxy: ${name} cannot be used inside MULTI through the proxy`);
    if (handling.kind === 'subscription' || handling.kind === 'transaction') return refuse(`ERR proxy: ${name} cannot be used inside MULTI through the proxy`);
    if (handling.kind !== 'local') {
      const slot = session.slotOfAny(info, cmd);
      if (slot === -1 || (slot !== null && this.slot !== null && slot !== this.slot)) return refuse("CROSSSLOT Keys in request don't hash to the same slot");
      if (slot !== null) this.slot = slot;
    }
    // A transaction already doomed to EXECABORT need not keep its commands.
    if (!this.aborted) this.queued!.push(Buffer.from(cmd.raw));
    session.answer(p, reply.queued);
  }

  command(session: TransactionClient, name: string, cmd: ParsedCommand): void {
    switch (name) {
      case 'MULTI':
        return this.multi(session);
      case 'EXEC':
        return this.exec(session, cmd);
      case 'DISCARD':
        return this.discard(session);
      case 'WATCH':
        return this.watchKeys(session, cmd);
      case 'UNWATCH':
        this.unwatch();
        return session.answer(session.reply(), reply.ok);
    }
  }

  /** RESET: no transaction, nothing watched. */
  reset(): void {
    this.queued = null;
    this.aborted = false;
    this.unwatch();
  }

  private multi(session: TransactionClient): void {
    const p = session.reply();
    if (this.queued) return session.answer(p, reply.error('ERR MULTI calls can not be nested'));
    this.queued = [];
    this.slot = null;
    this.aborted = false;
    session.answer(p, reply.ok);
  }

  private discard(session: TransactionClient): void {
    const p = session.reply();
    if (!this.queued) return session.answer(p, reply.error('ERR DISCARD without MULTI'));
    this.queued = null;
    this.unwatch();
    session.answer(p, reply.ok);
  }

  private watchKeys(session: TransactionClient, cmd: ParsedCommand): void {
    if (this.queued) return session.answer(session.reply(), reply.error('ERR WATCH inside MULTI is not allowed'));
    const info = { name: 'WATCH', handling: { kind: 'keyed' }, arity: -2, singleFirstKey: false, write: false } as const;
    const slot = session.slotOfAny(info, cmd);
    if (slot === null || slot === -1) return session.answer(session.reply(), reply.error("CROSSSLOT Keys in request don't hash to the same slot"));
    if (this.watch && !this.watchLost && !this.watchesSlotOf(session, slot)) {
      return session.answer(session.reply(), reply.error('ERR proxy: every key a client watches must be on one shard (use a hash tag)'));
    }
    const connection = session.enterPinnedLane(slot, cmd);
    if (connection === false) return; // held until the commands in flight are answered
    const p = session.reply();
    if (connection === null) return session.answer(p, noOwner(session.ctx.router(), slot));
    if (!this.watch || this.watchLost) {
      this.watch = { connection, slot };
      this.watchLost = false;
    }
    connection.send(cmd.raw, (r) => session.answer(p, r));
  }

  /** Forgets the WATCH, telling its master so when the connection is still there. */
  private unwatch(): void {
    if (this.watch && !this.watch.connection.isClosed) this.watch.connection.send(UNWATCH, () => undefined);
    this.watch = null;
    this.watchLost = false;
  }

  private exec(session: TransactionClient, cmd: ParsedCommand): void {
    if (!this.queued) return session.answer(session.reply(), reply.error('ERR EXEC without MULTI'));
    if (this.aborted) {
      this.queued = null;
      this.unwatch();
      return session.answer(session.reply(), reply.error('EXECABORT Transaction discarded because of previous errors.'));
    }
    const router = session.ctx.router();
    if (this.watch) {
      if (this.watchLost || (this.slot !== null && !this.watchesSlotOf(session, this.slot))) {
        const lost = this.watchLost;
        this.queued = null;
        this.unwatch();
        if (lost) return session.answer(session.reply(), encodeFor(session.proto).nullArray);
        return session.answer(session.reply(), reply.error("CROSSSLOT Keys in request don't hash to the same slot as the watched keys"));
      }
      const connection = session.enterPinnedLane(this.watch.slot, cmd);
      if (connection === false) return; // held; the transaction stays as it is until then
      return this.sendBlock(session, connection, noOwner(router, this.watch.slot), this.watch.slot);
    }
    if (this.queued.length === 0) {
      this.queued = null;
      return session.answer(session.reply(), EMPTY_ARRAY);
    }
    const slot = this.slot ?? router.firstSlot();
    if (!session.enterSharedLane(cmd)) return;
    if (slot === null) return this.sendBlock(session, null, reply.error('CLUSTERDOWN proxy: the cluster has no shard'), -1);
    const pool = router.poolForSlot(slot);
    // One connection, one synchronous burst: nothing else can interleave with the block.
    return this.sendBlock(session, pool ? pool.connectionFor(session.id, session.proto) : null, noOwner(router, slot), slot);
  }

  /** MULTI, the queued commands, EXEC; EXEC's success passes the session's checks (checkedSuccess). */
  private sendBlock(session: TransactionClient, connection: BackendConnection | null, noConnection: Buffer, slot: number): void {
    const queued = this.queued!;
    this.queued = null;
    this.watch = null;
    this.watchLost = false;
    const p = session.reply();
    if (!connection) return session.answer(p, noConnection);
    connection.send(MULTI, () => undefined);
    for (const q of queued) connection.send(q, () => undefined);
    const { epoch } = session.ctx.router();
    const pool = session.ctx.router().poolForSlot(slot);
    connection.send(EXEC, (r) => session.answer(p, session.checkedSuccess(r, slot, epoch, pool)));
  }
}
