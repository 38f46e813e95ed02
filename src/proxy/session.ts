/**
 * One client connection. Requests are parsed as they come, dispatched at once (pipelining), and
 * answered strictly in the order they arrived, whatever order the shards reply in. All replies
 * ready in one event-loop turn go out in one write. A client that sends faster than it reads, or
 * faster than the shards answer, is paused: memory per client stays bounded.
 *
 * Most commands travel on backend connections shared by every client ("the shared lane"). A
 * client that needs a connection of its own — a blocking pop, WATCH — gets one (its "pinned"
 * connection, to one master) for as long as it needs it. The client's order holds across the two:
 * a command that must travel on another lane than the commands still in flight waits (is held)
 * until they are answered, as the command after a BLPOP waits on a plain Redis connection.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';
import { bytesSlot, keySlot } from '../model/slot.js';
import { NOT_KNOWN, NOT_RUN, type BackendConnection, type BackendPool } from './backend.js';
import { Pending, ReadBatch, noOwner, type LocalClient, type ReplySink, type SessionContext, type Subscriber, type TransactionClient } from './client.js';
import { arityAccepts, commandInfoAt, keyIndexes, streamReadBlocks, type CommandInfo } from './commands.js';
import { flushSoon } from './flush-soon.js';
import { runLocal } from './local-commands.js';
import { moveKeys, type KeyOfSlot } from './key-move.js';
import { dispatchSplit } from './multi-key.js';
import { PubSub } from './pubsub.js';
import { ProtocolError, RequestParser, copyBytes, encodeFor, reply, type ParsedCommand } from './resp.js';
import { SLOT_HELD, SLOT_SERVED, type Router } from './router.js';
import { TransactionState } from './transaction.js';
import { waitForReplicas } from './wait.js';

/** The lane of commands that use the shared, pipelined backend connections. */
const SHARED = 'shared';

/** Answered without any backend: still served while the route may be stale. */
const CONNECTION_ONLY = new Set(['PING', 'ECHO', 'QUIT', 'AUTH', 'HELLO', 'SELECT', 'CLIENT', 'RESET', 'INFO', 'READONLY', 'READWRITE']);

/** In RESP2, a subscribed client may only send these (as Redis says). */
const ALLOWED_WHILE_SUBSCRIBED = new Set(['SUBSCRIBE', 'UNSUBSCRIBE', 'PSUBSCRIBE', 'PUNSUBSCRIBE', 'SSUBSCRIBE', 'SUNSUBSCRIBE', 'PING', 'QUIT', 'RESET']);

const READONLY = Buffer.from('-READONLY');
const LOADING = Buffer.from('-LOADING');
/** A fenced master (min-replicas-to-write) refused the write before running it. */
const NOREPLICAS = Buffer.from('-NOREPLICAS');
const BACKEND_DOWN = Buffer.from('-ERR proxy: backend');
const NOT_RUN_TAIL = Buffer.from(`${NOT_RUN}\r\n`);
/** Ready replies held while a pipeline's other replies are on their way; past this they are written. */
const HOLD_REPLY_BYTES = 64 * 1024;

/** The error reply proves the command did not run on the instance. */
function didNotRun(buf: Buffer, start: number, end: number): boolean {
  if (startsWith(buf, start, end, READONLY) || startsWith(buf, start, end, LOADING) || startsWith(buf, start, end, NOREPLICAS)) return true;
  return startsWith(buf, start, end, BACKEND_DOWN) && end - start >= NOT_RUN_TAIL.length && buf.compare(NOT_RUN_TAIL, 0, NOT_RUN_TAIL.length, end - NOT_RUN_TAIL.length, end) === 0;
}

export class ClientSession implements LocalClient, TransactionClient, Subscriber, ReplySink {
  private readonly parser = new RequestParser();
  private queue: Pending[] = [];
  private head = 0;
  private flushScheduled = false;
  private authed: boolean;
  private closeAfterFlush = false;
  private readPaused = false;
  /** The lane of the commands in flight: SHARED, or `pinned:<address>`. */
  private lane = SHARED;
  /** Requests (copies) waiting for the commands in flight to be answered, in arrival order. */
  private held: Buffer[] | null = null;
  /** Commands of moving slots whose keys are being moved, and the route epoch they were dispatched under. */
  private movesInFlight = 0;
  private movesEpoch = 0;
  /** The slot in its migration's `prepare` phase that the held requests wait on (-1: none). */
  private heldForSlot = -1;
  private holdTimer: NodeJS.Timeout | undefined;
  /** The client's own backend connection, and the slot it was opened for. */
  private pinned: BackendConnection | null = null;
  private pinnedSlot = -1;
  /** The protocol the client chose with HELLO (replies come from backends speaking the same). */
  proto: 2 | 3 = 2;
  readonly transaction = new TransactionState();
  pubsub: PubSub | null = null;
  name: string | null = null;
  // The byte bounds and the idle clock, kept apart from the reply queue's own fields.
  /** Bytes of the requests whose replies have not been written yet. */
  private requestBytes = 0;
  /** Bytes of the held requests (counted in requestBytes once they are sent). */
  private heldBytes = 0;
  /** The route epoch of the client's latest command (resends of earlier ones do not count). */
  private lastEpoch = 0;
  /** Reply positions not answered yet. */
  private unanswered = 0;
  /** The read being dispatched (see ReadBatch). */
  private batch = new ReadBatch();
  /** Ready replies wait for the rest of their read's (the flush runs again when it is answered). */
  private repliesHeld = false;
  /** Bytes of the request being dispatched, given to the first reply position it reserves. */
  private incomingBytes = 0;
  /** Bytes of replies ready but not written yet (waiting behind an earlier one, or for the flush). */
  private answeredBytes = 0;
  /** Set by every read, cleared by the idle sweep: a coarse clock, so reads never call Date.now(). */
  private heard = true;
  private lastActivity = Date.now();
  /**
   * The route guard's verdict (forwarding refused), taken once per client read rather than per
   * command: the guard reads the clock, and the requests of one read are dispatched within
   * microseconds of each other.
   */
  private guardBlocked = false;

  /**
   * With `readsIntoSharedBuffer`, the socket was made with an `onread` buffer shared by all
   * sessions and calls onData itself: nothing may keep a view of that buffer past onData.
   */
  constructor(
    readonly socket: Socket,
    readonly ctx: SessionContext<ClientSession>,
    readonly id: number,
    readsIntoSharedBuffer = false,
  ) {
    this.authed = ctx.password === null;
    this.parser.setAuthenticated(this.authed);
    // TCP_NODELAY (and keep-alive) were set when the proxy's server accepted the connection.
    if (!readsIntoSharedBuffer) socket.on('data', (chunk) => this.onData(chunk));
    socket.on('drain', () => this.maybeResume());
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closeBackends();
      ctx.onClose(this);
    });
  }

  get inFlight(): number {
    return this.queue.length - this.head;
  }

  onData(chunk: Buffer): void {
    this.heard = true;
    if (this.inFlight > 0) this.batch = new ReadBatch(); // else nothing refers to the last one: reuse it
    this.guardBlocked = this.ctx.guard.blocked;
    try {
      this.parser.feed(chunk, this.onCommand);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      // Like Redis: answer the garbage with an error, then close this connection only.
      this.answer(this.reserve(), reply.error(`ERR Protocol error: ${err.message}`));
      this.closeAfterFlush = true;
      this.socket.pause();
    }
    if (this.inFlight + (this.held?.length ?? 0) > this.ctx.maxInFlight || this.overInFlightBytes(1)) this.pauseReading();
  }

  /** The parser's callback, made once (not per read). */
  private readonly onCommand = (cmd: ParsedCommand): void => this.handle(cmd);

  /** Reserves the next reply position. */
  private reserve(): Pending {
    const p = new Pending(this);
    p.batch = this.batch;
    this.unanswered++;
    p.requestBytes = this.incomingBytes;
    this.requestBytes += this.incomingBytes;
    this.incomingBytes = 0;
    this.queue.push(p);
    return p;
  }

  /** Fills a reply position; replies leave in the order their positions were reserved. */
  answer(p: Pending, data: Buffer): void {
    this.answerRange(p, data, 0, data.length);
  }

  /** Fills a reply position with buf[start, end) (kept as a range: no Buffer made for it). */
  answerRange(p: Pending, buf: Buffer, start: number, end: number): void {
    if (p.reply !== null) return;
    this.unanswered--;
    // Sent on a shared connection (aim): its read waits for one reply fewer.
    if (p.pool !== null && --p.batch!.open === 0 && this.repliesHeld) this.scheduleFlush();
    p.reply = buf;
    p.replyStart = start;
    p.replyEnd = end;
    this.answeredBytes += end - start;
    if (this.queue[this.head] === p) this.scheduleFlush();
    else this.checkOutputLimit();
  }

  /** Sends something the client did not ask for (a pub/sub message) after what is queued. */
  push(data: Buffer): void {
    this.answer(this.reserve(), data);
  }

  private scheduleFlush(): void {
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      flushSoon(this.flush);
    }
  }

  /** Writes what is ready at once; the flush already scheduled then finds nothing to do. */
  private flushNow(): void {
    this.flush();
    this.flushScheduled = true; // still queued in flushSoon: keep it from being queued twice
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    // The ready replies at the head, gathered into one buffer for one write.
    let end = this.head;
    let bytes = 0;
    while (end < this.queue.length && this.queue[end]!.reply !== null) {
      const p = this.queue[end++]!;
      bytes += p.replyEnd - p.replyStart;
    }
    this.repliesHeld = false;
    if (end > this.head && end < this.queue.length && bytes < HOLD_REPLY_BYTES && !this.closeAfterFlush) {
      const batch = this.queue[end - 1]!.batch;
      if (batch !== null && batch.open > 0 && this.queue[end]!.batch === batch) {
        // The rest of this read's replies are on their way; the last of them flushes again.
        this.repliesHeld = true;
        return;
      }
    }
    let data: Buffer | null = null;
    if (end - this.head === 1) {
      const p = this.queue[this.head]!;
      data = p.replyStart === 0 && p.replyEnd === p.reply!.length ? p.reply! : p.reply!.subarray(p.replyStart, p.replyEnd);
    } else if (end > this.head) {
      data = Buffer.allocUnsafe(bytes);
    }
    let at = 0;
    for (let i = this.head; i < end; i++) {
      const p = this.queue[i]!;
      const r = p.reply!;
      const first = r[p.replyStart];
      if (first === 45 || first === 33) this.ctx.onError(); // - or ! (RESP3 blob error)
      if (data !== null && end - this.head > 1) at = copyBytes(r, p.replyStart, p.replyEnd, data, at);
      // Written: its request no longer counts against the byte bound.
      this.requestBytes -= p.requestBytes;
      this.queue[i] = undefined as unknown as Pending;
    }
    this.answeredBytes -= bytes;
    this.head = end;
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    if (data !== null && !this.socket.destroyed) {
      const ok = this.socket.write(data);
      if (!ok) {
        this.pauseReading();
        this.checkOutputLimit();
      }
    }
    if (this.closeAfterFlush && this.inFlight === 0) {
      this.socket.end();
      return;
    }
    if (this.held && this.inFlight === 0 && this.heldForSlot < 0) this.releaseHeld();
    this.maybeResume();
  };

  private pauseReading(): void {
    if (!this.readPaused) {
      this.readPaused = true;
      this.socket.pause();
    }
  }

  private maybeResume(): void {
    if (this.readPaused && !this.closeAfterFlush && this.inFlight + (this.held?.length ?? 0) <= this.ctx.maxInFlight / 2 && !this.overInFlightBytes(0.5) && !this.socket.writableNeedDrain) {
      this.readPaused = false;
      this.socket.resume();
    }
  }

  /**
   * Claims `lane` for a command about to be sent. False when commands of another lane are still
   * in flight: the command is then held (with every later one) until they are answered.
   */
  private enterLane(lane: string, cmd: ParsedCommand): boolean {
    if ((lane !== this.lane || this.movesCrossRouteChange()) && this.inFlight > 0) {
      this.held = [Buffer.from(cmd.raw)];
      return false;
    }
    this.lane = lane;
    return true;
  }

  /**
   * Commands of moving slots whose keys are still being moved were dispatched under another route
   * than the one in use now. Under one route, a command on a moving slot and a later one on a
   * served slot touch different keys (a key's slot decides its path), so they may run in any order,
   * as on two shards. Once the route changes, a later command on the same key may take another path
   * (straight to the new owner) and overtake the earlier one: it waits for them.
   */
  private movesCrossRouteChange(): boolean {
    return this.movesInFlight > 0 && this.ctx.router().epoch !== this.movesEpoch;
  }

  /** Runs the held requests again, in order; one of them may start holding again. */
  private releaseHeld(): void {
    const held = this.held!;
    this.held = null;
    this.heldBytes = 0;
    const replay = new RequestParser();
    this.guardBlocked = this.ctx.guard.blocked;
    for (const raw of held) {
      // handle() may have started holding again: then the rest joins the new hold, in order.
      const holding = this.held as Buffer[] | null;
      if (holding) holding.push(raw);
      else replay.feed(raw, (cmd) => this.handle(cmd));
    }
    const holding = this.held as Buffer[] | null;
    if (holding) this.heldBytes = holding.reduce((n, b) => n + b.length, 0);
  }

  /** Runs one request, and counts its bytes until its reply is written (or while it is held). */
  private handle(cmd: ParsedCommand): void {
    const bytes = cmd.end - cmd.start;
    const held = this.held?.length ?? 0;
    this.incomingBytes = bytes;
    this.dispatch(cmd);
    this.incomingBytes = 0;
    if ((this.held?.length ?? 0) > held) this.heldBytes += bytes;
  }

  /** Whether the bytes in flight (and held) are above `fraction` of the client's bound. */
  private overInFlightBytes(fraction: number): boolean {
    const max = this.ctx.limits.maxInFlightBytes;
    return max > 0 && this.requestBytes + this.heldBytes > max * fraction;
  }

  /**
   * Closes a client that lets replies pile up past its output bound (what the kernel has not
   * taken yet, and what waits to be written), as Redis's client-output-buffer-limit does: the
   * shared backend connections cannot stop reading for one client, so closing it is the bound.
   */
  private checkOutputLimit(): void {
    const limits = this.ctx.limits;
    const limit = this.pubsub?.active ? limits.pubsubOutputBytes : limits.outputBytes;
    if (limit <= 0 || this.socket.destroyed) return;
    const bytes = this.socket.writableLength + this.answeredBytes;
    if (bytes <= limit) return;
    this.ctx.onOutputLimit(this, bytes, limit);
    this.socket.destroy();
  }

  /**
   * For the proxy's idle sweep (about once a second): true when the client has sent nothing for
   * `ms` and waits for nothing. A command in flight (a BLPOP blocked for ever included) or a
   * subscription keeps it, as Redis exempts blocked and subscribed clients from its `timeout`;
   * the clock restarts when such a wait ends, as Redis's does on the reply.
   */
  isIdle(now: number, ms: number): boolean {
    if (this.heard || this.inFlight > 0 || this.held || this.pubsub?.active) {
      this.heard = false;
      this.lastActivity = now;
      return false;
    }
    return now - this.lastActivity >= ms;
  }

  private dispatch(cmd: ParsedCommand): void {
    if (this.closeAfterFlush) return;
    if (this.held) {
      this.held.push(Buffer.from(cmd.raw));
      return;
    }
    this.ctx.onCommand();
    // Every command from here on counts as "later" for a resend of an earlier one (see backendReplied).
    const router = this.ctx.router();
    this.lastEpoch = router.epoch;
    const info = commandInfoAt(cmd.buf, cmd.offsets[0]!, cmd.offsets[1]!);
    const { name, handling } = info;
    if (!this.authed && name !== 'AUTH' && name !== 'HELLO' && name !== 'QUIT' && name !== 'RESET') return this.answer(this.reserve(), reply.error('NOAUTH Authentication required.'));
    if (this.pubsub?.active && this.proto === 2 && !ALLOWED_WHILE_SUBSCRIBED.has(name)) {
      return this.answer(
        this.reserve(),
        reply.error(`ERR Can't execute '${name.toLowerCase()}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context`),
      );
    }
    if (this.guardBlocked && !CONNECTION_ONLY.has(name)) {
      return this.answer(this.reserve(), reply.error(`CLUSTERDOWN proxy: cut off from etcd and from every controller for longer than its lease: route epoch ${this.ctx.router().epoch} may be stale, so nothing is forwarded; ${NOT_RUN}`));
    }
    if (handling.kind === 'refused' && handling.reason.startsWith('unknown command')) {
      this.transaction.abort();
      return this.answer(this.reserve(), reply.error(`ERR unknown command '${cmd.spelledName}', with args beginning with: ${cmd.argv.slice(1, 4).map((a) => `'${a.toString()}' `).join('')}`));
    }
    if (handling.kind !== 'refused' && !arityAccepts(info.arity, cmd.argc)) {
      this.transaction.abort();
      return this.answer(this.reserve(), reply.error(`ERR wrong number of arguments for '${name.toLowerCase()}' command`));
    }
    if (this.transaction.open && !this.transaction.runsAtOnce(name)) {
      if (this.refusedWhileMigrating(info, cmd, 'a transaction')) return;
      return this.transaction.enqueue(this, this.reserve(), info, cmd);
    }
    switch (handling.kind) {
      case 'refused':
        return this.answer(this.reserve(), reply.error(`ERR proxy: ${handling.reason}`));
      case 'local':
        return runLocal(this, this.reserve(), name, cmd.argv);
      case 'transaction':
        if (name === 'WATCH' && this.refusedWhileMigrating(info, cmd, 'WATCH')) return;
        return this.transaction.command(this, name, cmd);
      case 'subscription':
        this.pubsub ??= new PubSub(this);
        return this.pubsub.command(this.reserve(), name, cmd.argv);
      case 'split':
        if (router.migrating && this.splitMigrates(info, cmd)) return;
        if (!this.enterLane(SHARED, cmd)) return;
        return dispatchSplit(this, this.reserve(), name, handling, cmd.argv);
      case 'wait':
        // Its own lane: it runs once every earlier command is answered, and later ones wait for it.
        if (!this.enterLane('wait', cmd)) return;
        return waitForReplicas(this, this.reserve(), cmd.argv);
      case 'channel':
        if (!this.enterLane(SHARED, cmd)) return;
        return this.forward(this.reserve(), keySlot(cmd.arg(1), this.ctx.router().slotCount), cmd.raw);
      case 'blocking':
      case 'keyed': {
        const blocks = handling.kind === 'blocking' || ((name === 'XREAD' || name === 'XREADGROUP') && streamReadBlocks(name, cmd.argv));
        const slot = this.slotOf(info, cmd);
        if (typeof slot !== 'number') return this.answer(this.reserve(), slot);
        if (router.migrating && router.phaseOf(slot) !== SLOT_SERVED) return this.dispatchMigrating(slot, cmd, info, blocks);
        if (blocks || this.transaction.watchesSlotOf(this, slot)) return this.sendPinned(slot, cmd, info.write);
        if (!this.enterLane(SHARED, cmd)) return;
        return this.forwardParsed(slot, cmd, info.write);
      }
    }
  }

  /**
   * A keyed command on a migrating slot (docs/migration.md): held while the slot is in `prepare`;
   * while it is moving, its keys are moved to the slot's target first and it runs there. Blocking
   * commands cannot wait on a slot whose keys are leaving: TRYAGAIN.
   */
  private dispatchMigrating(slot: number, cmd: ParsedCommand, info: CommandInfo, blocks: boolean): void {
    const router = this.ctx.router();
    if (router.phaseOf(slot) === SLOT_HELD) return this.holdForSlot(slot, cmd);
    if (blocks) return this.answer(this.reserve(), tryAgain(slot, 'a blocking command'));
    if (!this.enterLane(SHARED, cmd)) return;
    const p = this.reserve();
    p.write = info.write;
    const command = Buffer.from(cmd.raw);
    const keys = this.keyIndexesOf(info, cmd).map((i): KeyOfSlot => ({ slot, key: Buffer.from(cmd.arg(i)) }));
    this.moveThen(router, keys, p, () => this.forwardUnder(router, p, slot, command));
  }

  /** A split command (MGET, DEL, ...) with keys of migrating slots: held, or its keys moved first. True when handled here. */
  private splitMigrates(info: CommandInfo, cmd: ParsedCommand): boolean {
    const router = this.ctx.router();
    const keys: KeyOfSlot[] = [];
    for (const i of this.keyIndexesOf(info, cmd)) {
      const slot = keySlot(cmd.arg(i), router.slotCount);
      const phase = router.phaseOf(slot);
      if (phase === SLOT_HELD) {
        this.holdForSlot(slot, cmd);
        return true;
      }
      if (phase !== SLOT_SERVED) keys.push({ slot, key: Buffer.from(cmd.arg(i)) });
    }
    if (keys.length === 0) return false;
    if (!this.enterLane(SHARED, cmd)) return true;
    const p = this.reserve();
    const argv = cmd.argv.map((a) => Buffer.from(a));
    const handling = info.handling as Extract<CommandInfo['handling'], { kind: 'split' }>;
    this.moveThen(router, keys, p, () => dispatchSplit(this, p, info.name, handling, argv, router));
    return true;
  }

  /** Moves `keys` as `router` says, then runs `then`; or answers `p` with why they could not be moved. */
  private moveThen(router: Router, keys: KeyOfSlot[], p: Pending, then: () => void): void {
    this.movesEpoch = router.epoch;
    const trustGone = this.movesInFlight === 0;
    this.movesInFlight++;
    moveKeys(router, keys, (pool) => pool.connectionFor(this.id, this.proto), this.ctx.keyMove, (error) => {
      this.movesInFlight--;
      if (error) this.answer(p, error);
      else then();
    }, trustGone);
  }

  /** Sends a command to the master `router` (the route it was dispatched under) serves `slot` on. */
  private forwardUnder(router: Router, p: Pending, slot: number, command: Buffer): void {
    const pool = router.poolForSlot(slot)!;
    this.aim(p, router, slot, pool);
    p.sentBuf = pool.connectionFor(this.id, this.proto).send(command, p);
    p.sentStart = 0;
    p.sentEnd = p.sentBuf.length;
  }

  /** Where a command's keys (or its channel) are among its arguments: the first argument for most. */
  private keyIndexesOf(info: CommandInfo, cmd: ParsedCommand): number[] {
    const handling = info.handling;
    if (handling.kind === 'split') return Array.from({ length: Math.floor((cmd.argc - 1) / handling.step) }, (_, k) => 1 + k * handling.step);
    if (handling.kind === 'channel' || info.singleFirstKey) return [1];
    return keyIndexes(info.name, cmd.argv) ?? [];
  }

  /**
   * Holds the command (and every later one, in order) until the route moves `slot` out of its
   * `prepare` phase; past the hold limit they are answered TRYAGAIN (they did not run).
   */
  private holdForSlot(slot: number, cmd: ParsedCommand): void {
    this.held = [Buffer.from(cmd.raw)];
    this.heldForSlot = slot;
    clearTimeout(this.holdTimer);
    this.holdTimer = setTimeout(() => this.failHeld(slot), this.ctx.migrationHoldMs);
    this.holdTimer.unref();
  }

  /** The hold on a preparing slot ran out: every held request gets TRYAGAIN, in order. */
  private failHeld(slot: number): void {
    const held = this.held ?? [];
    this.held = null;
    this.heldBytes = 0;
    this.heldForSlot = -1;
    for (let k = 0; k < held.length; k++) this.answer(this.reserve(), tryAgain(slot, 'a command'));
    this.maybeResume();
  }

  /** A command that needs one backend connection for long (a transaction, WATCH) on a migrating slot: TRYAGAIN. */
  private refusedWhileMigrating(info: CommandInfo, cmd: ParsedCommand, what: string): boolean {
    const router = this.ctx.router();
    if (!router.migrating) return false;
    const slot = this.slotOfAny(info, cmd);
    if (slot === null || slot < 0 || router.phaseOf(slot) === SLOT_SERVED) return false;
    this.transaction.abort();
    this.answer(this.reserve(), tryAgain(slot, what));
    return true;
  }

  /**
   * The one slot of a keyed command, or the error reply that says why it has none. A command
   * whose key count is malformed, or that has no key (EVAL with numkeys 0), goes to the first
   * shard's master: Redis then answers it (or rejects it) in its own words.
   */
  private slotOf(info: CommandInfo, cmd: ParsedCommand): number | Buffer {
    const router = this.ctx.router();
    const slotCount = router.slotCount;
    const name = info.name;
    // Most commands have one key, the first argument: no key-spec walk, no allocation.
    if (info.singleFirstKey) return bytesSlot(cmd.buf, cmd.offsets[2]!, cmd.offsets[3]!, slotCount);
    if (name === 'COPY' && cmd.argv.some((a, i) => i > 2 && a.toString().toUpperCase() === 'DB')) return reply.error('ERR proxy: only database 0 exists behind the proxy: COPY ... DB is refused');
    const indexes = keyIndexes(name, cmd.argv);
    if (indexes === null || indexes.length === 0) {
      const first = router.firstSlot();
      return first ?? reply.error(`ERR proxy: ${name} without a key needs a shard, and the cluster has none`);
    }
    const slot = keySlot(cmd.arg(indexes[0]!), slotCount);
    for (let k = 1; k < indexes.length; k++) {
      if (keySlot(cmd.arg(indexes[k]!), slotCount) !== slot) return reply.error("CROSSSLOT Keys in request don't hash to the same slot");
    }
    return slot;
  }

  /** The slot of every key of a command (keyed or split): null without keys, -1 across slots. */
  slotOfAny(info: CommandInfo, cmd: ParsedCommand): number | null {
    const router = this.ctx.router();
    const indexes = this.keyIndexesOf(info, cmd);
    if (indexes.length === 0) return null;
    const slots = new Set(indexes.map((i) => keySlot(cmd.arg(i), router.slotCount)));
    return slots.size === 1 ? [...slots][0]! : -1;
  }

  /**
   * The shared connection to the master that owns `slot`, with `p` made ready to receive its reply
   * (where it went and under which epoch: see backendReplied); null after answering that no shard
   * owns the slot.
   */
  private target(p: Pending, slot: number): BackendConnection | null {
    const router = this.ctx.router();
    const pool = router.poolForSlot(slot);
    if (!pool) {
      this.answer(p, noOwner(router, slot));
      return null;
    }
    this.aim(p, router, slot, pool);
    return pool.connectionFor(this.id, this.proto);
  }

  /**
   * Records that `p` goes to `pool`'s shared connection under `router`'s epoch (where a resend
   * may go, see backendReplied), and counts it in its read's batch until it is answered.
   */
  private aim(p: Pending, router: Router, slot: number, pool: BackendPool): void {
    p.slot = slot;
    p.epoch = router.epoch;
    p.pool = pool;
    p.batch!.open++;
  }

  /** Sends a command (its own buffer) to the master that owns `slot`; its reply answers `p`. */
  forward(p: Pending, slot: number, command: Buffer, owned = false): void {
    const connection = this.target(p, slot);
    if (!connection) return;
    p.sentBuf = connection.send(command, p, owned);
    p.sentStart = 0;
    p.sentEnd = p.sentBuf.length;
  }

  /** The hot path: a command forwarded from where it lies in the read buffer, nothing allocated but its reply position. */
  private forwardParsed(slot: number, cmd: ParsedCommand, write: boolean): void {
    const p = this.reserve();
    p.write = write;
    if (cmd.owned) return this.forward(p, slot, cmd.raw, true);
    this.target(p, slot)?.sendRange(cmd.buf, cmd.start, cmd.end, p);
  }

  /**
   * A backend's reply to a forwarded command. A reply that proves the command did not run
   * (`-READONLY`, `-LOADING`, `-NOREPLICAS` from a fenced master, a backend that could not be reached) after the route moved its slot
   * is sent once more, to the new owner — but only while no later command of this client has gone
   * out under a newer route: otherwise the resend would run after it (`SET k 1; SET k 2` could end
   * as 1), and the client is told instead that the command did not run. Nothing that may have run
   * is ever sent twice.
   */
  backendReplied(p: Pending, buf: Buffer, start: number, end: number): void {
    const router = this.ctx.router();
    if (p.write && buf[start] !== 45) {
      const stale = this.staleSuccess(router, p.slot, p.epoch, p.pool);
      if (stale) return this.answer(p, stale);
    }
    if (buf[start] === 45 && !p.retried && p.sentBuf !== null && didNotRun(buf, start, end)) {
      if (router.epoch !== p.epoch) {
        const pool = router.poolForSlot(p.slot);
        if (pool && this.lastEpoch === p.epoch) {
          p.retried = true;
          p.epoch = router.epoch;
          p.pool = pool;
          return pool.connectionFor(this.id, this.proto).sendRange(p.sentBuf, p.sentStart, p.sentEnd, p);
        }
        const why = buf.toString('latin1', start + 1, end - 2);
        return this.answer(p, reply.error(`ERR proxy: the route changed (epoch ${router.epoch}) while this command was in flight and a later command of yours already went to the new master, so it was not sent again; ${NOT_RUN} (${why})`));
      }
    }
    this.answerRange(p, buf, start, end);
    // Everything the client waits for is here: write now rather than after the event-loop turn
    // (saves a pipelined client nothing, an unpipelined one a hop of latency). Only for backend
    // replies: a local answer comes while a read is being parsed, and the rest of it should join.
    if (this.unanswered === 0 && this.flushScheduled) this.flushNow();
  }

  checkedSuccess(r: Buffer, slot: number, epoch: number, pool: BackendPool | null): Buffer {
    // backendReplied's rules, for replies answered by their own callbacks (EXEC, pinned commands).
    return r[0] === 45 ? r : (this.staleSuccess(this.ctx.router(), slot, epoch, pool) ?? r);
  }

  /**
   * The error to answer instead of a write's success, sent for `slot` under route `epoch` to the
   * master of `pool` (the slot's pool when it was sent), or null when it may pass:
   * - the route no longer names that master for the slot: it ran on an instance that is being (or
   *   was) replaced, and the success may not survive;
   * - the route may be stale (cut off from etcd and every controller): sent before, answered
   *   after, the master may have been failed over meanwhile and have run it on resuming (a stalled
   *   master runs what waited in its socket before it notices its slaves left).
   * Either way the proxy cannot know: not an acknowledgement.
   */
  private staleSuccess(router: Router, slot: number, epoch: number, pool: BackendPool | null): Buffer | null {
    // The common case reads two numbers and a flag; the messages are built only when they are sent.
    if (epoch !== router.epoch && router.poolForSlot(slot) !== pool) {
      return reply.error(`ERR proxy: the route (epoch ${router.epoch}) no longer names ${pool?.address ?? 'the master'} as the master of slot ${slot}; it answered after the change, so ${NOT_KNOWN}`);
    }
    if (this.ctx.guard.inDoubt && this.ctx.guard.blocked) {
      return reply.error(`ERR proxy: cut off from etcd and from every controller, it cannot tell whether ${pool?.address ?? 'the master'} is still the master of slot ${slot}, so ${NOT_KNOWN}`);
    }
    return null;
  }

  /** Sends to a given pool (fan-out commands). */
  sendTo(pool: BackendPool, command: Buffer, handler: (r: Buffer) => void): void {
    pool.connectionFor(this.id, this.proto).send(command, handler);
  }

  /**
   * The client's own connection to the master of `slot`, opened if needed. Null when no shard
   * owns the slot. Opening one to another master closes the previous one (its WATCH is lost).
   */
  pinnedFor(slot: number): BackendConnection | null {
    const pool = this.ctx.router().poolForSlot(slot);
    if (!pool) return null;
    if (this.pinned && this.pinned.address === pool.address && !this.pinned.isClosed) {
      this.pinnedSlot = slot;
      return this.pinned;
    }
    this.pinned?.close();
    this.transaction.pinnedLost();
    this.pinned = pool.dedicated(this.proto);
    this.pinnedSlot = slot;
    return this.pinned;
  }

  /** Sends a command on the client's pinned connection to the master of `slot` (in order). */
  sendPinned(slot: number, cmd: ParsedCommand, write: boolean): void {
    const connection = this.enterPinnedLane(slot, cmd);
    if (connection === false) return;
    const p = this.reserve();
    if (connection === null) return this.answer(p, noOwner(this.ctx.router(), slot));
    const { epoch } = this.ctx.router();
    const pool = this.ctx.router().poolForSlot(slot);
    connection.send(cmd.raw, (r) => this.answer(p, write ? this.checkedSuccess(r, slot, epoch, pool) : r));
  }

  /** Claims the pinned lane of `slot`'s master for a command the caller sends itself (EXEC). */
  enterPinnedLane(slot: number, cmd: ParsedCommand): BackendConnection | null | false {
    const address = this.ctx.router().poolForSlot(slot)?.address;
    if (address === undefined) return null;
    if (!this.enterLane(`pinned:${address}`, cmd)) return false;
    return this.pinnedFor(slot);
  }

  /** Claims the shared lane for a command the caller sends itself; false when it was held. */
  enterSharedLane(cmd: ParsedCommand): boolean {
    return this.enterLane(SHARED, cmd);
  }

  /** Reserves a reply position for a caller that answers it itself. */
  reply(): Pending {
    return this.reserve();
  }

  get subscribed(): boolean {
    return this.pubsub?.active ?? false;
  }

  /** The pinned connection, if it is still open and its master still owns its slot. */
  pinnedConnection(): BackendConnection | null {
    return this.pinned && !this.pinned.isClosed ? this.pinned : null;
  }

  /**
   * A new route: a pinned connection whose master no longer owns its slot is closed, so that a
   * blocked command ends with an error instead of waiting on a demoted or dead master for ever;
   * subscriptions follow their channels to the new masters.
   */
  routeChanged(router: Router): void {
    if (this.heldForSlot >= 0 && router.phaseOf(this.heldForSlot) !== SLOT_HELD) {
      this.heldForSlot = -1;
      clearTimeout(this.holdTimer);
      if (this.held && this.inFlight === 0) this.releaseHeld();
    } else if (this.heldForSlot >= 0) {
      // A newer route that still holds the slot: a leader at work (copying a big key) says so by
      // publishing again; the hold lasts, from now.
      this.holdTimer?.refresh();
    }
    // A pinned connection whose slot starts migrating is closed too: no transaction or blocked
    // command may still write at the source once its keys start to move.
    if (this.pinned && (router.poolForSlot(this.pinnedSlot)?.address !== this.pinned.address || router.phaseOf(this.pinnedSlot) !== SLOT_SERVED)) {
      this.pinned.close(reply.error(`UNBLOCKED proxy: the master of slot ${this.pinnedSlot} changed (route epoch ${router.epoch}) while the command waited; retry it`));
      this.pinned = null;
      this.transaction.pinnedLost();
    }
    this.pubsub?.routeChanged(router);
  }

  isAuthenticated(): boolean {
    return this.authed;
  }

  /**
   * True when `password` is right for `user` (null: a bare AUTH, which names the proxy's user); a
   * wrong one leaves the session as it was (as in Redis). Compared in constant time.
   */
  authenticate(user: string | null, password: string): boolean {
    if (this.ctx.password !== null && (user === null || user === this.ctx.user) && sameSecret(password, this.ctx.password)) {
      this.authed = true;
      this.parser.setAuthenticated(true);
      return true;
    }
    return false;
  }

  quit(p: Pending): void {
    this.answer(p, reply.ok);
    this.closeAfterFlush = true;
  }

  /** RESET: back to a new connection's state (RESP2, no transaction, no subscription, no name). */
  resetState(): void {
    this.transaction.reset();
    this.pubsub?.reset();
    this.pubsub = null;
    this.name = null;
    this.proto = 2;
    this.authed = this.ctx.password === null;
    this.parser.setAuthenticated(this.authed);
  }

  /** A null reply in the client's protocol. */
  nullReply(): Buffer {
    return encodeFor(this.proto).null;
  }

  private closeBackends(): void {
    clearTimeout(this.holdTimer);
    this.pinned?.close();
    this.pinned = null;
    this.pubsub?.reset();
  }
}


function tryAgain(slot: number, what: string): Buffer {
  return reply.error(`TRYAGAIN proxy: slot ${slot} is migrating, and ${what} cannot run on it until its keys have moved; it did not run, retry it`);
}

function startsWith(buf: Buffer, start: number, end: number, prefix: Buffer): boolean {
  return end - start >= prefix.length && buf.compare(prefix, 0, prefix.length, start, start + prefix.length) === 0;
}

/** Compares two secrets without leaking, through timing, how much of one matches the other. */
function sameSecret(given: string, expected: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(given), digest(expected));
}
