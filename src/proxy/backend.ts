/**
 * A pipelined connection to one Redis instance, shared by many client sessions. Requests are
 * queued in order; everything sent in one event-loop turn goes out in one write; replies are
 * matched to requests by order. If the connection breaks, or a reply takes longer than the
 * timeout (a hung server), every waiting request gets an error reply and the next request
 * reconnects.
 */
import { Socket, createConnection } from 'node:net';
import { performance } from 'node:perf_hooks';
import { splitAddress } from '../model/address.js';
import type { Credentials } from '../model/auth.js';
import { flushSoon } from './flush-soon.js';
import { ReplyReader, copyBytes, encodeCommand, reply } from './resp.js';

export type ReplyHandler = (reply: Buffer) => void;

/** Where a command's bytes were copied to (valid as long as the holder keeps the buffer). */
export interface SentRange {
  sentBuf: Buffer | null;
  sentStart: number;
  sentEnd: number;
}

/**
 * Receives the reply of a command as buf[start, end), without a closure or a Buffer per command
 * (the hot path's reply position).
 */
export interface ReplyTarget {
  onReply(buf: Buffer, start: number, end: number): void;
}

type Waiter = ReplyHandler | ReplyTarget;

function deliver(waiter: Waiter, buf: Buffer, start: number, end: number): void {
  if (typeof waiter === 'function') waiter(start === 0 && end === buf.length ? buf : buf.subarray(start, end));
  else waiter.onReply(buf, start, end);
}

const OUT_CHUNK = 64 * 1024;
const PING = encodeCommand(['PING']);

/** How a backend error says what became of the command (a client retries only the first safely). */
export const NOT_RUN = 'the command did not run';
export const NOT_KNOWN = 'the command may have run';
const SHARED_READ_BUFFER = Buffer.allocUnsafe(256 * 1024);

export interface BackendOptions {
  /**
   * A reply that has not come after this long fails the connection (and every waiting request).
   * 0: no watchdog (a pinned connection whose blocking command may rightly wait for ever).
   */
  timeoutMs: number;
  /**
   * The instance's credentials, asked at every connection (they change during a rotation): the
   * first password first, then the next one if Redis refuses it. Null or absent: no AUTH.
   */
  credentials?: () => Credentials | null;
  /** The protocol the connection speaks (HELLO 3 is sent first for 3): the clients' own. */
  proto?: 2 | 3;
  /** Replies nobody waits for (a subscribed connection's messages); without it they fail the connection. */
  onUnsolicited?: (reply: Buffer) => void;
  /** Told when the connection breaks (a subscribed connection then subscribes again). */
  onBroken?: (why: string) => void;
  /** Called with the round trip of a sampled request, in seconds. */
  onLatency?: (seconds: number) => void;
}


export class BackendConnection {
  private socket: Socket | null = null;
  /** Handlers of the requests sent and not answered yet, oldest at `head`. */
  private waiting: Waiter[] = [];
  private head = 0;
  /** When a reply last came (or the queue last became non-empty): the hung-server watchdog's clock. */
  private lastProgress = 0;
  /** One request in 16 is timed, for the latency histogram: its sequence number and send time. */
  private sent = 0;
  private received = 0;
  private sampleSeq = -1;
  private sampleAt = 0;
  /** Full outgoing buffers not written yet, then the current one from outStart to outEnd. */
  private out: Buffer[] = [];
  private outBuf = Buffer.allocUnsafe(OUT_CHUNK);
  private outStart = 0;
  private outEnd = 0;
  private flushScheduled = false;
  /** Delimits replies; holds the incomplete one at the end of a read. */
  private readonly reader = new ReplyReader();
  /** The socket whose read is being parsed. */
  private reading: Socket | null = null;
  private watchdog: NodeJS.Timeout | undefined;
  private closed = false;
  /** The socket is connected: commands written may have reached Redis. */
  private connected = false;
  /**
   * The handshake's reply has not come yet: nothing else is written until it does, so that a
   * refused password can be followed by the next one before any command reaches Redis.
   */
  private authenticating = false;

  constructor(
    readonly address: string,
    private readonly options: BackendOptions,
  ) {}

  /** Requests whose replies have not come yet. */
  get inFlight(): number {
    return this.waiting.length - this.head;
  }

  /**
   * Queues a command. Its bytes are copied at once into the connection's outgoing buffer (the
   * caller's may be reused by the next read); the returned view of that copy stays valid, for a
   * caller that may send the command again elsewhere.
   */
  send(command: Buffer, handler: Waiter, owned = false): Buffer {
    if (!this.expect(handler)) return Buffer.from(command);
    const copy = owned && command.length >= OUT_CHUNK ? this.appendOwned(command) : this.append(command);
    this.scheduleFlush();
    return copy;
  }

  /**
   * The hot path: copies buf[start, end) straight into the outgoing buffer, and tells `target`
   * where the copy is (for a resend), without allocating anything per command.
   */
  sendRange(buf: Buffer, start: number, end: number, target: ReplyTarget & SentRange): void {
    if (!this.expect(target)) {
      target.sentBuf = Buffer.from(buf.subarray(start, end));
      target.sentStart = 0;
      target.sentEnd = end - start;
      return;
    }
    const length = end - start;
    if (this.outEnd + length > this.outBuf.length) this.newOutBuffer(length);
    copyBytes(buf, start, end, this.outBuf, this.outEnd);
    target.sentBuf = this.outBuf;
    target.sentStart = this.outEnd;
    this.outEnd += length;
    target.sentEnd = this.outEnd;
    this.scheduleFlush();
  }

  /** Registers who waits for the next reply; false (and an error reply soon) when closed. */
  private expect(waiter: Waiter): boolean {
    if (this.closed) {
      // Answered later, never from inside send(): callers may not be ready for their handler yet.
      const error = reply.error(`ERR proxy: backend ${this.address} is closed`);
      setImmediate(() => deliver(waiter, error, 0, error.length));
      return false;
    }
    if (!this.socket) this.connect();
    if (this.head === this.waiting.length) this.lastProgress = performance.now();
    if (this.options.onLatency && this.sampleSeq < 0 && (this.sent & 15) === 0) {
      this.sampleSeq = this.sent;
      this.sampleAt = performance.now();
    }
    this.sent++;
    this.waiting.push(waiter);
    return true;
  }

  private scheduleFlush(): void {
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      flushSoon(this.flush);
    }
  }

  /** Hands the current outgoing buffer on and starts one with room for `length` bytes. */
  private newOutBuffer(length: number): void {
    if (this.outEnd > this.outStart) this.out.push(this.outBuf.subarray(this.outStart, this.outEnd));
    this.outBuf = Buffer.allocUnsafe(Math.max(OUT_CHUNK, length));
    this.outStart = this.outEnd = 0;
  }

  /** Queues a big buffer nobody will reuse as it is: copying 64 MiB would stall every client. */
  private appendOwned(bytes: Buffer): Buffer {
    if (this.outEnd > this.outStart) this.out.push(this.outBuf.subarray(this.outStart, this.outEnd));
    this.outStart = this.outEnd;
    this.out.push(bytes);
    return bytes;
  }

  /**
   * Appends bytes to the outgoing buffer. Written regions are never overwritten (socket.write may
   * still hold them): a full buffer is handed on and a new one started.
   */
  private append(bytes: Buffer): Buffer {
    if (this.outEnd + bytes.length > this.outBuf.length) this.newOutBuffer(bytes.length);
    bytes.copy(this.outBuf, this.outEnd);
    const copy = this.outBuf.subarray(this.outEnd, this.outEnd + bytes.length);
    this.outEnd += bytes.length;
    return copy;
  }

  /** Closes for good; waiting requests get `error` (a proxy error reply by default). */
  /** Sends a command whose replies go to `onUnsolicited` (SUBSCRIBE and the like). */
  post(command: Buffer): void {
    if (this.closed) return;
    if (!this.socket) this.connect();
    this.append(command);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      flushSoon(this.flush);
    }
  }

  close(error?: Buffer): void {
    this.closed = true;
    this.fail('closed', error);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.outEnd > this.outStart) this.out.push(this.outBuf.subarray(this.outStart, this.outEnd));
    this.outStart = this.outEnd;
    if (!this.socket || this.authenticating || this.out.length === 0) return;
    const out = this.out;
    this.out = [];
    if (out.length === 1) {
      this.socket.write(out[0]!);
    } else {
      // One writev, no concatenation: `out` may hold a big request queued as it is.
      this.socket.cork();
      for (const b of out) this.socket.write(b);
      this.socket.uncork();
    }
  };

  private connect(): void {
    const { host, port } = splitAddress(this.address);
    // Replies are read into one buffer shared by every backend connection (no allocation per
    // read); onData copies what must outlive the read.
    const socket = createConnection({
      host,
      port,
      onread: {
        buffer: SHARED_READ_BUFFER,
        callback: (n: number, buf: Uint8Array) => {
          this.onData(Buffer.from(buf.buffer, buf.byteOffset, n), true);
          return true;
        },
      },
    });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    this.socket = socket;
    // AUTH (or HELLO 3, which authenticates too) goes first; its reply is consumed here.
    const credentials = this.options.credentials?.() ?? null;
    const passwords = credentials?.passwords.length ? credentials.passwords : [null];
    const handshake = (index: number): void => {
      const command = this.handshake(credentials, passwords[index] ?? null);
      if (!command) return;
      // Commands wait only for a handshake that authenticates (a plain HELLO 3 is pipelined with them).
      this.authenticating = passwords[index] !== null;
      socket.write(command);
      this.waiting.splice(this.head, 0, (r) => {
        if (this.socket !== socket) return;
        if (r[0] !== 45 && r[0] !== 33) {
          this.authenticating = false;
          this.connected = true; // from now on, what is written may run
          return this.flush();
        }
        // During a rotation an instance may know only the other password: try it before failing.
        if (index + 1 < passwords.length) return handshake(index + 1);
        this.fail(`authentication refused (${r.toString('latin1', 1, 10).split(' ')[0]})`);
      });
      this.sent++;
    };
    handshake(0);

    // With a handshake, commands are written only once it succeeded (above).
    socket.once('connect', () => (this.connected ||= !this.authenticating));
    socket.on('error', (err) => this.fail(err.message));
    socket.on('close', () => this.fail('connection closed'));
    if (this.options.timeoutMs > 0) {
      this.watchdog = setInterval(() => this.checkTimeout(), Math.max(100, this.options.timeoutMs / 4));
      this.watchdog.unref();
    }
  }

  private handshake(credentials: Credentials | null, password: string | null): Buffer | null {
    const user = credentials?.user ?? 'default';
    if (this.options.proto === 3) return encodeCommand(password !== null ? ['HELLO', '3', 'AUTH', user, password] : ['HELLO', '3']);
    if (password === null) return null;
    return encodeCommand(credentials?.user ? ['AUTH', credentials.user, password] : ['AUTH', password]);
  }

  private onData(chunk: Buffer, shared = false): void {
    this.lastProgress = performance.now();
    this.reading = this.socket;
    try {
      // `shared`: a view of the shared read buffer, so the reader copies the replies it hands out.
      this.reader.feed(chunk, shared, this.onReply);
    } catch (err) {
      return this.fail(`protocol error from the server: ${(err as Error).message}`);
    }
    // Compact the queue now and then instead of shifting on every reply.
    if (this.head > 1024 && this.head * 2 > this.waiting.length) {
      this.waiting = this.waiting.slice(this.head);
      this.head = 0;
    }
  }

  private readonly onReply = (buf: Buffer, start: number, end: number): boolean => {
    const handler = this.waiting[this.head];
    if (!handler) {
      if (this.options.onUnsolicited) {
        this.options.onUnsolicited(buf.subarray(start, end));
        return this.socket === this.reading;
      }
      this.fail('a reply nobody asked for');
      return false;
    }
    this.waiting[this.head++] = undefined as unknown as Waiter;
    if (this.received++ === this.sampleSeq) {
      this.options.onLatency?.((this.lastProgress - this.sampleAt) / 1000);
      this.sampleSeq = -1;
    }
    deliver(handler, buf, start, end);
    // A handler may have dropped this connection (AUTH refused): the rest of the read is not for the next one.
    return this.socket === this.reading;
  };

  private checkTimeout(): void {
    if (this.inFlight > 0 && performance.now() - this.lastProgress > this.options.timeoutMs) this.fail(`no reply within ${this.options.timeoutMs} ms`);
  }

  /** Drops the connection; every waiting request gets an error reply. */
  private fail(why: string, errorReply?: Buffer): void {
    const socket = this.socket;
    if (!socket && this.inFlight === 0) return;
    this.socket = null;
    // Nothing reaches Redis before the connection is made (and authenticated): then the commands
    // surely did not run.
    const outcome = this.connected ? NOT_KNOWN : NOT_RUN;
    this.connected = false;
    this.authenticating = false;
    clearInterval(this.watchdog);
    socket?.removeAllListeners('data');
    socket?.removeAllListeners('close');
    socket?.on('error', () => undefined);
    socket?.destroy();
    this.reader.reset();
    this.out = [];
    this.outStart = this.outEnd;
    const waiting = this.waiting.slice(this.head);
    this.waiting = [];
    this.head = 0;
    this.sent = this.received = 0;
    this.sampleSeq = -1;
    const error = errorReply ?? reply.error(`ERR proxy: backend ${this.address}: ${why}; ${outcome}`);
    for (const waiter of waiting) deliver(waiter, error, 0, error.length);
    if (!this.closed) this.options.onBroken?.(why);
  }
}

/**
 * A few connections per instance and protocol; each client session is given one of them. RESP3
 * clients get connections that sent HELLO 3, so Redis itself shapes their replies (maps, sets,
 * doubles, nulls): the proxy never translates a reply between protocols.
 */
export class BackendPool {
  private readonly resp2: BackendConnection[];
  private resp3: BackendConnection[] | null = null;

  constructor(
    readonly address: string,
    private readonly size: number,
    private readonly options: BackendOptions,
  ) {
    this.resp2 = Array.from({ length: size }, () => new BackendConnection(address, { ...options, proto: 2 }));
  }

  /**
   * The connection of a client session: a client's commands to one shard always travel on the
   * same connection, so Redis runs them in the order the client sent them.
   */
  connectionFor(session: number, proto: 2 | 3 = 2): BackendConnection {
    if (proto === 2) return this.resp2[session % this.size]!;
    this.resp3 ??= Array.from({ length: this.size }, () => new BackendConnection(this.address, { ...this.options, proto: 3 }));
    return this.resp3[session % this.size]!;
  }

  /** A connection of its own for one client (blocking commands, WATCH, pub/sub). */
  dedicated(proto: 2 | 3): BackendConnection {
    return new BackendConnection(this.address, { ...this.options, proto, timeoutMs: 0 });
  }

  /** A connection for subscriptions: every reply goes to `onReply`; `onBroken` when it breaks. */
  subscriber(onReply: (reply: Buffer) => void, onBroken: (why: string) => void): BackendConnection {
    return new BackendConnection(this.address, { ...this.options, proto: 2, timeoutMs: 0, onUnsolicited: onReply, onBroken });
  }

  inFlight(): number {
    return [...this.resp2, ...(this.resp3 ?? [])].reduce((n, c) => n + c.inFlight, 0);
  }

  /**
   * Resolves once every request sent so far on the shared connections has been answered (or
   * failed): Redis answers in order, so a PING's reply comes after all of them.
   */
  settled(): Promise<void> {
    const busy = [...this.resp2, ...(this.resp3 ?? [])].filter((c) => c.inFlight > 0 && !c.isClosed);
    return Promise.all(busy.map((c) => new Promise<void>((resolve) => c.send(PING, () => resolve())))).then(() => undefined);
  }

  /** Closes every connection; waiting requests get `error` (a proxy error reply by default). */
  close(error?: Buffer): void {
    for (const c of [...this.resp2, ...(this.resp3 ?? [])]) c.close(error);
  }
}
