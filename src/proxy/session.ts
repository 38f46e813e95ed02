/**
 * One client connection. Requests are parsed as they come, dispatched at once (pipelining), and
 * answered strictly in the order they arrived, whatever order the shards reply in. All replies
 * ready in one event-loop turn go out in one write. A client that sends faster than it reads, or
 * faster than the shards answer, is paused: memory per client stays bounded.
 */
import type { Socket } from 'node:net';
import { bytesSlot, keySlot } from '../model/slot.js';
import type { BackendPool } from './backend.js';
import { arityAccepts, commandInfo, handlingOf, keyIndexes, type CommandInfo, type Handling } from './commands.js';
import { flushSoon } from './flush-soon.js';
import { runLocal } from './local-commands.js';
import { dispatchSplit } from './multi-key.js';
import { ProtocolError, RequestParser, reply, type ParsedCommand } from './resp.js';
import type { Router } from './router.js';

export interface SessionContext {
  /** The router in use now (swapped on every route change). */
  router(): Router;
  password: string | null;
  /** FLUSHALL / FLUSHDB / SCRIPT FLUSH / FUNCTION FLUSH go to every master (else refused). */
  allowFlush: boolean;
  /** At most this many commands waiting for their reply before reading from the client pauses. */
  maxInFlight: number;
  info(): string;
  onCommand(): void;
  onError(): void;
  onClose(session: ClientSession): void;
}

/** A reply position in the client's queue. */
export class Pending {
  reply: Buffer | null = null;
}

interface Transaction {
  queued: Buffer[];
  slot: number | null;
  aborted: string | null;
}

const READONLY = Buffer.from('-READONLY');
const BACKEND_DOWN = Buffer.from('-ERR proxy: backend');

export class ClientSession {
  private readonly parser = new RequestParser();
  private queue: Pending[] = [];
  private head = 0;
  private flushScheduled = false;
  private authed: boolean;
  private transaction: Transaction | null = null;
  private closeAfterFlush = false;
  private readPaused = false;
  name: string | null = null;

  /**
   * With `readsIntoSharedBuffer`, the socket was made with an `onread` buffer shared by all
   * sessions and calls onData itself: nothing may keep a view of that buffer past onData.
   */
  constructor(
    readonly socket: Socket,
    readonly ctx: SessionContext,
    readonly id: number,
    readsIntoSharedBuffer = false,
  ) {
    this.authed = ctx.password === null;
    socket.setNoDelay(true);
    if (!readsIntoSharedBuffer) socket.on('data', (chunk) => this.onData(chunk));
    socket.on('drain', () => this.maybeResume());
    socket.on('error', () => undefined);
    socket.on('close', () => ctx.onClose(this));
  }

  get inFlight(): number {
    return this.queue.length - this.head;
  }

  onData(chunk: Buffer): void {
    try {
      this.parser.feed(chunk, (cmd) => this.handle(cmd));
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      // Like Redis: answer the garbage with an error, then close this connection only.
      this.answer(this.reserve(), reply.error(`ERR Protocol error: ${err.message}`));
      this.closeAfterFlush = true;
      this.socket.pause();
    }
    if (this.inFlight > this.ctx.maxInFlight) this.pauseReading();
  }

  /** Reserves the next reply position. */
  private reserve(): Pending {
    const p = new Pending();
    this.queue.push(p);
    return p;
  }

  /** Fills a reply position; replies leave in the order their positions were reserved. */
  answer(p: Pending, data: Buffer): void {
    if (p.reply !== null) return;
    p.reply = data;
    if (this.queue[this.head] === p) this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      flushSoon(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    const out: Buffer[] = [];
    while (this.head < this.queue.length && this.queue[this.head]!.reply !== null) {
      const r = this.queue[this.head]!.reply!;
      if (r[0] === 45) this.ctx.onError();
      out.push(r);
      this.queue[this.head++] = undefined as unknown as Pending;
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    if (out.length && !this.socket.destroyed) {
      const ok = this.socket.write(out.length === 1 ? out[0]! : Buffer.concat(out));
      if (!ok) this.pauseReading();
    }
    if (this.closeAfterFlush && this.inFlight === 0) {
      this.socket.end();
      return;
    }
    this.maybeResume();
  };

  private pauseReading(): void {
    if (!this.readPaused) {
      this.readPaused = true;
      this.socket.pause();
    }
  }

  private maybeResume(): void {
    if (this.readPaused && !this.closeAfterFlush && this.inFlight <= this.ctx.maxInFlight / 2 && !this.socket.writableNeedDrain) {
      this.readPaused = false;
      this.socket.resume();
    }
  }

  private handle(cmd: ParsedCommand): void {
    if (this.closeAfterFlush) return;
    this.ctx.onCommand();
    const p = this.reserve();
    const info = commandInfo(cmd.spelledName);
    const { name, handling } = info;
    if (!this.authed && name !== 'AUTH' && name !== 'HELLO' && name !== 'QUIT') return this.answer(p, reply.error('NOAUTH Authentication required.'));
    if (handling.kind !== 'refused' && !arityAccepts(info.arity, cmd.argc)) {
      return this.answer(p, reply.error(`ERR wrong number of arguments for '${name.toLowerCase()}' command`));
    }
    if (this.transaction && handling.kind !== 'transaction') return this.queueInTransaction(p, name, handling, cmd);
    switch (handling.kind) {
      case 'refused':
        return this.answer(p, reply.error(`ERR proxy: ${handling.reason}`));
      case 'local':
        return runLocal(this, p, name, cmd.argv);
      case 'transaction':
        return this.transactionCommand(p, name);
      case 'split':
        return dispatchSplit(this, p, name, handling, cmd.argv);
      case 'keyed': {
        if ((name === 'XREAD' || name === 'XREADGROUP') && cmd.argv.some((a) => a.length === 5 && a.toString().toUpperCase() === 'BLOCK')) {
          return this.answer(p, reply.error(`ERR proxy: ${name} with BLOCK is not supported through the proxy (it would stall a shared backend connection)`));
        }
        const slot = this.slotOf(p, info, cmd);
        if (slot === null) return;
        return this.forward(p, slot, cmd.raw);
      }
    }
  }

  /** The one slot of a keyed command, or null after answering with the reason it has none. */
  private slotOf(p: Pending, info: CommandInfo, cmd: ParsedCommand): number | null {
    const slotCount = this.ctx.router().slotCount;
    const name = info.name;
    // Most commands have one key, the first argument: no key-spec walk, no allocation.
    if (info.singleFirstKey) return bytesSlot(cmd.buf, cmd.offsets[2]!, cmd.offsets[3]!, slotCount);
    const indexes = keyIndexes(name, cmd.argv);
    if (indexes === null) {
      this.answer(p, reply.error(`ERR proxy: cannot find the keys of this ${name} command`));
      return null;
    }
    if (indexes.length === 0) {
      this.answer(p, reply.error(`ERR proxy: ${name} without a key cannot be routed`));
      return null;
    }
    const slot = keySlot(cmd.arg(indexes[0]!), slotCount);
    for (let k = 1; k < indexes.length; k++) {
      if (keySlot(cmd.arg(indexes[k]!), slotCount) !== slot) {
        this.answer(p, reply.error("CROSSSLOT Keys in request don't hash to the same slot"));
        return null;
      }
    }
    return slot;
  }

  /**
   * Sends a command to the master that owns `slot`. If the reply says the instance stopped being
   * the master (READONLY) or is gone, and the route changed meanwhile, the command is sent once
   * more, to the new owner: a switchover then looks like a pause to the client, not an error.
   */
  forward(p: Pending, slot: number, command: Buffer, retried = false): void {
    const router = this.ctx.router();
    const pool = router.poolForSlot(slot);
    if (!pool) return this.answer(p, noOwner(router, slot));
    // `sent` is the backend's own copy of the bytes: still valid when a retry needs them.
    const sent = pool.connectionFor(this.id).send(command, (r) => {
      if (!retried && (startsWith(r, READONLY) || startsWith(r, BACKEND_DOWN)) && this.ctx.router().epoch !== router.epoch) {
        return this.forward(p, slot, sent, true);
      }
      this.answer(p, r);
    });
  }

  /** Sends to a given pool (fan-out commands). */
  sendTo(pool: BackendPool, command: Buffer, handler: (r: Buffer) => void): void {
    pool.connectionFor(this.id).send(command, handler);
  }

  isAuthenticated(): boolean {
    return this.authed;
  }

  authenticate(password: string): boolean {
    if (this.ctx.password !== null && password === this.ctx.password) this.authed = true;
    return this.authed;
  }

  quit(p: Pending): void {
    this.answer(p, reply.ok);
    this.closeAfterFlush = true;
  }

  resetState(): void {
    this.transaction = null;
    this.name = null;
  }

  // MULTI / EXEC / DISCARD: commands are queued here and sent as one block to the shard of
  // their (single) slot when EXEC comes.
  private transactionCommand(p: Pending, name: string): void {
    if (name === 'MULTI') {
      if (this.transaction) return this.answer(p, reply.error('ERR MULTI calls can not be nested'));
      this.transaction = { queued: [], slot: null, aborted: null };
      return this.answer(p, reply.ok);
    }
    const tx = this.transaction;
    this.transaction = null;
    if (!tx) return this.answer(p, reply.error(`ERR ${name} without MULTI`));
    if (name === 'DISCARD') return this.answer(p, reply.ok);
    if (tx.aborted) return this.answer(p, reply.error('EXECABORT Transaction discarded because of previous errors.'));
    if (tx.queued.length === 0 || tx.slot === null) return this.answer(p, Buffer.from('*0\r\n'));
    const router = this.ctx.router();
    const pool = router.poolForSlot(tx.slot);
    if (!pool) return this.answer(p, noOwner(router, tx.slot));
    // One connection, one synchronous burst: nothing else can interleave with the block.
    const connection = pool.connectionFor(this.id);
    connection.send(MULTI, () => undefined);
    for (const q of tx.queued) connection.send(q, () => undefined);
    connection.send(EXEC, (r) => this.answer(p, r));
  }

  private queueInTransaction(p: Pending, name: string, handling: Handling, cmd: ParsedCommand): void {
    const tx = this.transaction!;
    if (handling.kind !== 'keyed' && handling.kind !== 'split') {
      tx.aborted = name;
      return this.answer(p, reply.error(handling.kind === 'refused' ? `ERR proxy: ${handling.reason}` : `ERR proxy: ${name} cannot be used inside MULTI through the proxy`));
    }
    const slot = this.slotOfAny(name, cmd.argv);
    if (slot === null || slot === -1 || (tx.slot !== null && slot !== tx.slot)) {
      tx.aborted = name;
      return this.answer(p, reply.error(slot === null ? `ERR proxy: ${name} without a key cannot be used inside MULTI` : "CROSSSLOT Keys in request don't hash to the same slot"));
    }
    tx.slot = slot;
    tx.queued.push(Buffer.from(cmd.raw));
    this.answer(p, reply.queued);
  }

  /** The single slot of all keys of a command (keyed or split); null without keys, -1 across slots. */
  private slotOfAny(name: string, argv: Buffer[]): number | null {
    const router = this.ctx.router();
    const handling = handlingOf(name);
    const indexes =
      handling.kind === 'split' ? Array.from({ length: Math.floor((argv.length - 1) / handling.step) }, (_, k) => 1 + k * handling.step) : keyIndexes(name, argv);
    if (!indexes || indexes.length === 0) return null;
    const slots = new Set(indexes.map((i) => keySlot(argv[i]!, router.slotCount)));
    return slots.size === 1 ? [...slots][0]! : -1;
  }
}

const MULTI = Buffer.from('*1\r\n$5\r\nMULTI\r\n');
const EXEC = Buffer.from('*1\r\n$4\r\nEXEC\r\n');

function startsWith(buf: Buffer, prefix: Buffer): boolean {
  return buf.length >= prefix.length && buf.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}

export function noOwner(router: Router, slot: number): Buffer {
  return reply.error(`CLUSTERDOWN proxy: slot ${slot} of cluster ${router.cluster} has no shard (route epoch ${router.epoch})`);
}
