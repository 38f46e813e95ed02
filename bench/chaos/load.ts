/**
 * The chaos runner's clients. Each writer has one ioredis connection to one proxy and keeps a few
 * commands in flight on it (`depth` lanes; a key always goes through the same lane, so that one
 * key never has two writes in flight). Two kinds:
 *
 * - sequence writers: `SET k:<writer>:<n> <seq>`, seq increasing across the writer, recording per
 *   key the highest acknowledged seq and every seq whose outcome is unknown ("may have run");
 * - unique-key writers: `SET u:<writer>:<i> 1`, recording every acknowledged key.
 *
 * An error is "not acknowledged". A command refused before it was sent (the connection is down and
 * ioredis has no offline queue) did not run; any other error (a closed connection, a timeout, an
 * error reply) may have. Bounded by a stop flag, the
 * caller's deadline, and a count.
 */
import { Redis } from 'ioredis';

/** Write gaps shorter than this are not recorded (the pacing alone makes gaps of a few ms). */
const GAP_RECORDED_MS = 250;
const MAX_OPS_PER_WRITER = 5_000_000;
/**
 * A command unanswered this long counts as failed (it may still run later). Longer than any
 * stall the faults cause: a write that a stalled old master runs and acknowledges once it resumes
 * must reach the writer as acknowledged, or its loss would go unseen.
 */
const COMMAND_TIMEOUT_MS = 15_000;

export interface WriteGap {
  writer: string;
  /** When the last acknowledged write before the gap was acknowledged. */
  from: number;
  to: number;
}

export interface SeqKeyState {
  lastAcked: number;
  lastAckedAt: number;
  /** Seqs that failed with an unknown outcome: a late landing of one of them is not a loss. */
  mayHaveRun: Set<number>;
}

export abstract class Writer {
  readonly client: Redis;
  acks = 0;
  errors = 0;
  /** Acknowledgement times, for counting acknowledged writes per fault window. */
  readonly ackTimes: number[] = [];
  readonly gaps: WriteGap[] = [];
  private lastAckAt = 0;
  private stopping = false;
  private lanes: Promise<void>[] = [];
  private ops = 0;

  constructor(
    readonly name: string,
    readonly proxyPort: number,
    private readonly depth: number,
    private readonly ratePerSecond: number,
  ) {
    this.client = new Redis({
      host: '127.0.0.1',
      port: proxyPort,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      commandTimeout: COMMAND_TIMEOUT_MS,
      connectTimeout: 1000,
      retryStrategy: () => 100,
      lazyConnect: false,
    });
    this.client.on('error', () => undefined);
  }

  start(deadline: number): void {
    this.lastAckAt = Date.now();
    this.lanes = Array.from({ length: this.depth }, (_, lane) => this.runLane(lane, deadline));
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    await Promise.all(this.lanes);
    this.client.disconnect();
    this.closeGap(Date.now());
  }

  /** One write on `lane`; resolves when acknowledged, throws otherwise. */
  protected abstract write(lane: number): Promise<void>;
  protected abstract failed(lane: number, maybeRan: boolean): void;

  private async runLane(lane: number, deadline: number): Promise<void> {
    const interval = (1000 * this.depth) / this.ratePerSecond;
    let next = Date.now();
    while (!this.stopping && Date.now() < deadline && this.ops < MAX_OPS_PER_WRITER) {
      this.ops++;
      try {
        await this.write(lane);
        this.countAck(Date.now());
      } catch (err) {
        this.errors++;
        this.failed(lane, !notSent(err));
        await sleep(50);
      }
      next += interval;
      const wait = next - Date.now();
      if (wait > 0) await sleep(wait);
      else if (wait < -1000) next = Date.now();
    }
  }

  private countAck(now: number): void {
    this.acks++;
    this.ackTimes.push(now);
    this.closeGap(now);
  }

  private closeGap(now: number): void {
    if (now - this.lastAckAt >= GAP_RECORDED_MS) this.gaps.push({ writer: this.name, from: this.lastAckAt, to: now });
    this.lastAckAt = now;
  }
}

/** ioredis refused it before writing it to a socket (no connection, no offline queue): it did not run. */
function notSent(err: unknown): boolean {
  return err instanceof Error && /enableOfflineQueue/.test(err.message);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class SeqWriter extends Writer {
  readonly keys = new Map<string, SeqKeyState>();
  private seq = 0;
  /** Per lane: the next key index, and the write in flight. */
  private readonly cursor: number[];
  private readonly inFlight: ({ key: string; seq: number } | null)[];
  /** A multiple of the depth, so that lane j only ever writes keys j, j + depth, ... */
  private readonly keyCount: number;

  constructor(name: string, proxyPort: number, depth: number, rate: number, keyCount: number) {
    super(name, proxyPort, depth, rate);
    this.keyCount = Math.ceil(keyCount / depth) * depth;
    this.cursor = Array.from({ length: depth }, (_, lane) => lane);
    this.inFlight = Array.from({ length: depth }, () => null);
  }

  protected async write(lane: number): Promise<void> {
    const n = this.cursor[lane]!;
    this.cursor[lane] = (n + this.inFlight.length) % this.keyCount;
    const key = `k:${this.name}:${n}`;
    const seq = ++this.seq;
    this.inFlight[lane] = { key, seq };
    await this.client.set(key, String(seq));
    const state = this.state(key);
    if (seq > state.lastAcked) {
      state.lastAcked = seq;
      state.lastAckedAt = Date.now();
    }
    this.inFlight[lane] = null;
  }

  protected failed(lane: number, maybeRan: boolean): void {
    const w = this.inFlight[lane];
    if (w && maybeRan) this.state(w.key).mayHaveRun.add(w.seq);
    this.inFlight[lane] = null;
  }

  private state(key: string): SeqKeyState {
    let s = this.keys.get(key);
    if (!s) this.keys.set(key, (s = { lastAcked: 0, lastAckedAt: 0, mayHaveRun: new Set() }));
    return s;
  }
}

export class UniqueWriter extends Writer {
  /** Acknowledged keys and when. */
  readonly acked = new Map<string, number>();
  mayHaveRun = 0;
  private next = 0;

  protected async write(): Promise<void> {
    const key = `u:${this.name}:${this.next++}`;
    await this.client.set(key, '1');
    this.acked.set(key, Date.now());
  }

  protected failed(_lane: number, maybeRan: boolean): void {
    if (maybeRan) this.mayHaveRun++;
  }
}

export interface Load {
  seq: SeqWriter[];
  unique: UniqueWriter[];
  all: Writer[];
}

/** Writers spread over the proxies in turn, started at once. */
export function startLoad(proxyPorts: number[], o: { seqWriters: number; uniqueWriters: number; keysPerWriter: number; depth: number; ratePerWriter: number; deadline: number }): Load {
  const port = (i: number) => proxyPorts[i % proxyPorts.length]!;
  const seq = Array.from({ length: o.seqWriters }, (_, i) => new SeqWriter(`s${i + 1}`, port(i), o.depth, o.ratePerWriter, o.keysPerWriter));
  const unique = Array.from({ length: o.uniqueWriters }, (_, i) => new UniqueWriter(`u${i + 1}`, port(i), o.depth, o.ratePerWriter));
  const all = [...seq, ...unique];
  for (const w of all) w.start(o.deadline);
  return { seq, unique, all };
}

export async function stopLoad(load: Load): Promise<void> {
  await Promise.all(load.all.map((w) => w.stop()));
}
