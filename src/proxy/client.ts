/**
 * What a client session offers the pieces that handle its commands (transactions, pub/sub,
 * fan-out, local and split commands, WAIT): each sees the narrow face it needs, never the session
 * itself, so that the session depends on them and not the other way round.
 */
import type { BackendConnection, BackendPool, ReplyTarget, SentRange } from './backend.js';
import type { CommandInfo } from './commands.js';
import type { KeyMoveSettings } from './key-move.js';
import { reply, type ParsedCommand } from './resp.js';
import type { Router } from './router.js';

/** What a session needs from its proxy; `S` is the session type the proxy is told about. */
export interface SessionContext<S = unknown> {
  /** The router in use now (swapped on every route change). */
  router(): Router;
  /** Clients must AUTH with this password (null: no AUTH needed)... */
  password: string | null;
  /** ...as this user (`AUTH user pass`, `HELLO 3 AUTH user pass`); a bare `AUTH pass` names it too. */
  user: string;
  /**
   * `blocked`: the route may be stale (cut off from etcd and every controller): forward nothing.
   * `inDoubt`: false while `blocked` cannot be true before the guard's next look (a field read, for
   * the reply path, where `blocked` would cost a clock read per command).
   */
  guard: { readonly blocked: boolean; readonly inDoubt: boolean };
  /** FLUSHALL / FLUSHDB / SCRIPT FLUSH / FUNCTION FLUSH go to every master (else refused). */
  allowFlush: boolean;
  /** At most this many commands waiting for their reply before reading from the client pauses. */
  maxInFlight: number;
  /** The byte bounds of one client (0: none); see docs/proxy.md, "Limits". */
  limits: ClientLimits;
  /** How keys of moving slots are moved before their commands run (key-move.ts). */
  keyMove: KeyMoveSettings;
  /** How long a command on a slot in its migration's `prepare` phase is held before TRYAGAIN. */
  migrationHoldMs: number;
  /** The session is being closed for going past its output bound (`bytes` held for it). */
  onOutputLimit(session: S, bytes: number, limit: number): void;
  info(): string;
  onCommand(): void;
  onError(): void;
  onClose(session: S): void;
}

export interface ClientLimits {
  /** Bytes of requests awaiting replies (or held) before reading from the client pauses. */
  maxInFlightBytes: number;
  /** Replies held for a client that does not read them, past which it is closed. */
  outputBytes: number;
  /** The same for a client with a subscription (messages come whether it reads or not). */
  pubsubOutputBytes: number;
  /** Commands one MULTI may queue (the proxy holds them until EXEC). */
  maxMultiCommands: number;
}

/**
 * The commands of one client read. Redis writes the replies to one read at once; the proxy does
 * the same, holding a read's ready replies while its commands on the shared connections (which
 * never block) are still being answered, so that a pipeline spread over shards gets one write.
 */
export class ReadBatch {
  /** Commands of this read sent on a shared connection and not answered yet. */
  open = 0;
}

/**
 * A reply position in the client's queue. It receives its backend's reply itself (no closure per
 * command), and remembers where its command's bytes were copied, for the one resend allowed.
 */
export class Pending implements ReplyTarget, SentRange {
  /** The reply: reply[replyStart, replyEnd) (a range of a backend read's copy, or a whole buffer). */
  reply: Buffer | null = null;
  replyStart = 0;
  replyEnd = 0;
  /** Bytes of the request it answers, counted against the client's in-flight byte bound. */
  requestBytes = 0;
  slot = -1;
  /** The route epoch the command was sent under, and the master's pool it went to. */
  epoch = 0;
  pool: BackendPool | null = null;
  /** It may change data: a success from a master the route no longer names is not passed on. */
  write = false;
  /** The client read its command came in (counted in its `open` while sent and unanswered). */
  batch: ReadBatch | null = null;
  retried = false;
  sentBuf: Buffer | null = null;
  sentStart = 0;
  sentEnd = 0;

  constructor(private readonly owner: ReplySink) {}

  onReply(buf: Buffer, start: number, end: number): void {
    this.owner.backendReplied(this, buf, start, end);
  }
}

/** Where a forwarded command's reply goes (the session: answered, or resent once). */
export interface ReplySink {
  backendReplied(p: Pending, buf: Buffer, start: number, end: number): void;
}

// What each handler sees of a session. Every one is handed reply positions to fill; beyond that
// it names only the parts of the session, and of the proxy's settings, it uses.

/** Reply positions: what every handler fills. Replies leave in the order their positions were reserved. */
export interface ReplyQueue {
  /** Reserves the next reply position. */
  reply(): Pending;
  /** Fills a reply position. */
  answer(p: Pending, data: Buffer): void;
}

/** The protocol the client chose with HELLO, which the replies made by the proxy follow. */
export interface Protocol {
  readonly proto: 2 | 3;
  /** A null reply in the client's protocol. */
  nullReply(): Buffer;
}

/** The route in use now. */
export interface RouteView {
  readonly ctx: Pick<SessionContext, 'router'>;
}

/** Sends to given masters on the client's shared connections (split commands, SCAN, fan-out). */
export interface MasterSender extends ReplyQueue, RouteView {
  /** Sends to a given master on the client's shared connection to it. */
  sendTo(pool: BackendPool, command: Buffer, handler: (r: Buffer) => void): void;
}

/** Commands asked of every master (fan-out.ts); flushing them is a setting of the proxy. */
export interface FanOutClient extends MasterSender, Protocol {
  readonly ctx: Pick<SessionContext, 'router' | 'allowFlush'>;
}

/** Commands the proxy answers itself (local-commands.ts), some of them by asking every master. */
export interface LocalClient extends FanOutClient {
  readonly ctx: Pick<SessionContext, 'router' | 'allowFlush' | 'password' | 'user' | 'info'>;
  readonly id: number;
  proto: 2 | 3;
  name: string | null;
  /** It has a subscription (a subscribed RESP2 client gets PING's answer as a message). */
  readonly subscribed: boolean;
  /** `user` null: a bare `AUTH password`. */
  authenticate(user: string | null, password: string): boolean;
  isAuthenticated(): boolean;
  /** Answers `p` with OK, then closes the connection once its replies are written. */
  quit(p: Pending): void;
  /** RESET: back to a new connection's state. */
  resetState(): void;
}

/** Pub/sub (pubsub.ts): confirmations answer positions; messages are pushed as they come. */
export interface Subscriber extends ReplyQueue, RouteView, Protocol {
  /** Sends something the client did not ask for (a pub/sub message) after what is queued. */
  push(data: Buffer): void;
}

/** MULTI / EXEC / WATCH (transaction.ts): queued commands' slots, and the lanes EXEC and WATCH travel on. */
export interface TransactionClient extends ReplyQueue, RouteView {
  readonly ctx: Pick<SessionContext, 'router' | 'limits'>;
  readonly id: number;
  readonly proto: 2 | 3;
  /** The slot of every key of a command: null without keys, -1 across slots. */
  slotOfAny(info: CommandInfo, cmd: ParsedCommand): number | null;
  /** The pinned connection to `slot`'s master for a command the caller sends; false: held for now; null: no owner. */
  enterPinnedLane(slot: number, cmd: ParsedCommand): BackendConnection | null | false;
  /** Claims the shared lane for a command the caller sends; false when it was held. */
  enterSharedLane(cmd: ParsedCommand): boolean;
  /**
   * A reply that must not be passed on as it is: the success of something that may have written,
   * sent for `slot` under route `epoch` to `pool` (the slot's pool then), when the route has moved
   * the slot since or may be stale now. Returns the error to answer instead, or the reply itself.
   */
  checkedSuccess(reply: Buffer, slot: number, epoch: number, pool: BackendPool | null): Buffer;
}

export function noOwner(router: Router, slot: number): Buffer {
  return reply.error(`CLUSTERDOWN proxy: slot ${slot} of cluster ${router.cluster} has no shard (route epoch ${router.epoch})`);
}
