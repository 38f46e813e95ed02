/**
 * bench/minimal-proxy — the platform control of bench/proxy: about the least one Node.js process
 * must do to be a sharding RESP proxy, so that bench/proxy can show what Node allows on this host
 * beside what cfgserver's proxy does. No cfgserver code.
 *
 *   node --import tsx bench/minimal-proxy.ts --listen PORT --shards HOST:PORT,HOST:PORT,... [--slots N]
 *
 * It does what the proxy's hot path does and nothing else: requests are split by position (never
 * decoded), each goes by its first key's slot (CRC16, hash tags, slots spread evenly over the
 * shards in order) to one pipelined connection per shard shared by every client, and replies go
 * back in the client's order, one write per client per event-loop turn. Reads go into one shared
 * buffer (the socket `onread` option), as in the proxy.
 *
 * Left out on purpose (what the proxy pays for and this does not): multi-key commands split over
 * shards, backpressure and client bounds, the route guard, metrics, AUTH, RESP3, transactions,
 * pub/sub, inline requests, errors, reconnects. It is a measuring stick, not a proxy.
 */
import { Socket, connect, createServer } from 'node:net';

const arg = (name: string, fallback?: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  const v = i > 0 ? process.argv[i + 1] : fallback;
  if (v === undefined) throw new Error(`--${name} is required`);
  return v;
};

// --- slots -------------------------------------------------------------------------------------

const CRC16 = new Uint16Array(256).map((_, i) => {
  let crc = i << 8;
  for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  return crc;
});

/** CRC16 of the key at buf[start, end), or of its hash tag (`{...}`), as Redis Cluster hashes. */
function keyHash(buf: Buffer, start: number, end: number): number {
  const open = buf.indexOf(0x7b, start);
  if (open !== -1 && open < end) {
    const close = buf.indexOf(0x7d, open + 1);
    if (close !== -1 && close < end && close > open + 1) {
      start = open + 1;
      end = close;
    }
  }
  let crc = 0;
  for (let i = start; i < end; i++) crc = ((crc << 8) & 0xffff) ^ CRC16[((crc >> 8) ^ buf[i]!) & 0xff]!;
  return crc;
}

// --- flushing: one setImmediate per event-loop turn for every socket with something to write ----

const toFlush: { flush(): void }[] = [];
let flushScheduled = false;

function flushAll(): void {
  flushScheduled = false;
  for (let i = 0; i < toFlush.length; i++) toFlush[i]!.flush();
  toFlush.length = 0;
}

function flushSoon(target: { flush(): void }): void {
  toFlush.push(target);
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flushAll);
  }
}

/** Reads the decimal number at buf[start, CR): RESP lengths and counts. */
function readNumber(buf: Buffer, start: number, cr: number): number {
  let n = 0;
  let negative = false;
  if (buf[start] === 45) {
    negative = true;
    start++;
  }
  for (let i = start; i < cr; i++) n = n * 10 + buf[i]! - 48;
  return negative ? -n : n;
}

/** End of the RESP2 reply at `pos`, or -1 when it is not all there. */
function replyEnd(buf: Buffer, pos: number): number {
  let pending = 1;
  while (pending > 0) {
    if (pos >= buf.length) return -1;
    const cr = buf.indexOf(13, pos);
    if (cr === -1 || cr + 1 >= buf.length) return -1;
    const type = buf[pos];
    if (type === 36) {
      const len = readNumber(buf, pos + 1, cr);
      pos = len < 0 ? cr + 2 : cr + 4 + len;
      if (pos > buf.length) return -1;
    } else if (type === 42) {
      const n = readNumber(buf, pos + 1, cr);
      pos = cr + 2;
      if (n > 0) pending += n;
    } else {
      pos = cr + 2;
    }
    pending--;
  }
  return pos;
}

// --- backends ----------------------------------------------------------------------------------

/** One pipelined connection to a shard, shared by every client; replies are matched by order. */
class Backend {
  private readonly socket: Socket;
  /** Commands not written yet: out[outStart, outEnd). Written bytes are never overwritten (the socket may hold them). */
  private out = Buffer.allocUnsafe(64 * 1024);
  private outStart = 0;
  private outEnd = 0;
  private queued = false;
  /** Who waits for the next replies: a ring of (client, reply sequence number). */
  private clients: (Client | undefined)[] = new Array(1024);
  private seqs = new Float64Array(1024);
  private head = 0;
  private count = 0;
  /** The start of a reply split across reads. */
  private tail: Buffer | null = null;

  constructor(host: string, port: number, readBuffer: Buffer) {
    this.socket = connect({ host, port, noDelay: true, onread: { buffer: readBuffer, callback: (n, buf) => this.onRead(buf as Buffer, n) } });
  }

  /** Copies the command at buf[start, end) into the outgoing buffer; its reply goes to `client` as number `seq`. */
  send(buf: Buffer, start: number, end: number, client: Client, seq: number): void {
    if (this.count === this.clients.length) this.grow();
    const at = (this.head + this.count++) & (this.clients.length - 1);
    this.clients[at] = client;
    this.seqs[at] = seq;
    const n = end - start;
    if (this.outEnd + n > this.out.length) {
      const fresh = Buffer.allocUnsafe(Math.max(64 * 1024, 2 * (this.outEnd - this.outStart + n)));
      this.out.copy(fresh, 0, this.outStart, this.outEnd);
      this.out = fresh;
      this.outEnd -= this.outStart;
      this.outStart = 0;
    }
    buf.copy(this.out, this.outEnd, start, end);
    this.outEnd += n;
    if (!this.queued) {
      this.queued = true;
      flushSoon(this);
    }
  }

  flush(): void {
    this.queued = false;
    this.socket.write(this.out.subarray(this.outStart, this.outEnd));
    this.outStart = this.outEnd;
  }

  private grow(): void {
    const size = this.clients.length;
    const clients: (Client | undefined)[] = new Array(2 * size);
    const seqs = new Float64Array(2 * size);
    for (let i = 0; i < this.count; i++) {
      clients[i] = this.clients[(this.head + i) & (size - 1)];
      seqs[i] = this.seqs[(this.head + i) & (size - 1)]!;
    }
    this.clients = clients;
    this.seqs = seqs;
    this.head = 0;
  }

  private onRead(shared: Buffer, n: number): boolean {
    let chunk = shared.subarray(0, n);
    if (this.tail) {
      chunk = Buffer.concat([this.tail, chunk]);
      this.tail = null;
    }
    let end = 0;
    for (;;) {
      const next = replyEnd(chunk, end);
      if (next === -1) break;
      end = next;
    }
    if (end < chunk.length) this.tail = Buffer.from(chunk.subarray(end));
    if (end === 0) return true;
    // The read buffer is reused: the complete replies are copied once, and handed out as ranges.
    const replies = Buffer.allocUnsafe(end);
    chunk.copy(replies, 0, 0, end);
    let from = 0;
    const mask = this.clients.length - 1;
    while (from < end) {
      const to = replyEnd(replies, from);
      const client = this.clients[this.head]!;
      this.clients[this.head] = undefined;
      client.replied(this.seqs[this.head]!, replies, from, to);
      this.head = (this.head + 1) & mask;
      this.count--;
      from = to;
    }
    return true;
  }
}

// --- clients -----------------------------------------------------------------------------------

/** One client connection: requests dispatched as they are parsed, replies written in their order. */
class Client {
  /** Replies by sequence number, in a ring: the buffer and the range of each. */
  private bufs: (Buffer | undefined)[] = new Array(64);
  private starts = new Int32Array(64);
  private ends = new Int32Array(64);
  /** Sequence numbers of the next reply to write and of the next request. */
  private nextOut = 0;
  private nextIn = 0;
  private queued = false;
  private tail: Buffer | null = null;

  constructor(
    private readonly socket: Socket,
    private readonly route: (slot: number) => Backend,
  ) {}

  onRead(shared: Buffer, n: number): void {
    let chunk = shared.subarray(0, n);
    if (this.tail) {
      chunk = Buffer.concat([this.tail, chunk]);
      this.tail = null;
    }
    let pos = 0;
    while (pos < chunk.length) {
      const end = this.request(chunk, pos);
      if (end === -1) break;
      pos = end;
    }
    if (pos < chunk.length) this.tail = Buffer.from(chunk.subarray(pos));
  }

  /** Sends the multibulk request at `pos` on to its shard; its end, or -1 when it is not all there. */
  private request(buf: Buffer, pos: number): number {
    const start = pos;
    let cr = buf.indexOf(13, pos);
    if (cr === -1 || cr + 1 >= buf.length) return -1;
    const argc = readNumber(buf, pos + 1, cr);
    pos = cr + 2;
    let keyStart = -1;
    let keyEnd = -1;
    for (let i = 0; i < argc; i++) {
      cr = buf.indexOf(13, pos);
      if (cr === -1 || cr + 1 >= buf.length) return -1;
      const len = readNumber(buf, pos + 1, cr);
      pos = cr + 2 + len + 2;
      if (pos > buf.length) return -1;
      if (i === 1) {
        keyStart = cr + 2;
        keyEnd = keyStart + len;
      }
    }
    const slot = keyStart === -1 ? 0 : keyHash(buf, keyStart, keyEnd);
    if (this.nextIn - this.nextOut === this.bufs.length) this.grow();
    this.route(slot).send(buf, start, pos, this, this.nextIn++);
    return pos;
  }

  private grow(): void {
    const size = this.bufs.length;
    const bufs: (Buffer | undefined)[] = new Array(2 * size);
    const starts = new Int32Array(2 * size);
    const ends = new Int32Array(2 * size);
    for (let seq = this.nextOut; seq < this.nextIn; seq++) {
      bufs[seq & (2 * size - 1)] = this.bufs[seq & (size - 1)];
      starts[seq & (2 * size - 1)] = this.starts[seq & (size - 1)]!;
      ends[seq & (2 * size - 1)] = this.ends[seq & (size - 1)]!;
    }
    this.bufs = bufs;
    this.starts = starts;
    this.ends = ends;
  }

  replied(seq: number, buf: Buffer, start: number, end: number): void {
    const at = seq & (this.bufs.length - 1);
    this.bufs[at] = buf;
    this.starts[at] = start;
    this.ends[at] = end;
    if (seq === this.nextOut && !this.queued) {
      this.queued = true;
      flushSoon(this);
    }
  }

  /** Writes the replies ready at the head, gathered into one buffer. */
  flush(): void {
    this.queued = false;
    const mask = this.bufs.length - 1;
    let bytes = 0;
    let seq = this.nextOut;
    for (; seq < this.nextIn && this.bufs[seq & mask] !== undefined; seq++) bytes += this.ends[seq & mask]! - this.starts[seq & mask]!;
    if (bytes === 0) return;
    const data = Buffer.allocUnsafe(bytes);
    let at = 0;
    for (let s = this.nextOut; s < seq; s++) {
      const i = s & mask;
      at += this.bufs[i]!.copy(data, at, this.starts[i], this.ends[i]);
      this.bufs[i] = undefined;
    }
    this.nextOut = seq;
    this.socket.write(data);
  }
}

// --- the listener ------------------------------------------------------------------------------

const shards = arg('shards').split(',');
const slotCount = Number(arg('slots', '1024'));
const backendRead = Buffer.allocUnsafe(256 * 1024);
const backends = shards.map((address) => {
  const [host, port] = address.split(':') as [string, string];
  return new Backend(host, Number(port), backendRead);
});
// Slots spread evenly, in order: shard k owns a contiguous range, as cfgserver's new clusters.
const owner = new Array<Backend>(slotCount);
for (let slot = 0; slot < slotCount; slot++) owner[slot] = backends[Math.floor((slot * shards.length) / slotCount)]!;
const route = (hash: number): Backend => owner[hash % slotCount]!;

const clientRead = Buffer.allocUnsafe(64 * 1024);
createServer({ pauseOnConnect: true, noDelay: true }, (accepted) => {
  // net.Server has no `onread` option: the accepted handle is moved into a socket that has one.
  const handle = (accepted as unknown as { _handle: unknown })._handle;
  (accepted as unknown as { _handle: unknown })._handle = null;
  let client: Client | null = null;
  const socket = new Socket({ handle, onread: { buffer: clientRead, callback: (n: number) => void client!.onRead(clientRead, n) } } as unknown as ConstructorParameters<typeof Socket>[0]);
  socket.setNoDelay(true);
  socket.on('error', () => socket.destroy());
  client = new Client(socket, route);
  socket.resume();
}).listen(Number(arg('listen')), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
