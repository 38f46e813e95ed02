/**
 * The leader's key mover: one pass over a source master's keys, moving those of the migrating
 * slots to the target master with stock Redis commands (docs/migration.md, "The mover").
 *
 * Per batch: `MIGRATE … COPY KEYS` (the target restores the keys, TTLs included; the source keeps
 * them), then `PUBLISH` + `WAIT` on the target (its slaves hold the keys: a failover of the target
 * cannot lose them), then `UNLINK` on the source. Until the `UNLINK` a key is on both; the copies are
 * equal, because every proxy moves a key (`MIGRATE` without COPY) before it runs a command on it, and
 * that `MIGRATE` finds the target's copy (`BUSYKEY`): the copy at the destination always wins, and
 * the one at the source is dropped.
 */
import { Redis } from 'ioredis';
import { RedisError, errorMessage } from '../model/errors.js';
import { keySlot } from '../model/slot.js';
import { splitAddress } from '../model/address.js';

/** Where a migrating slot's keys go. */
export interface MoveTarget {
  address: string;
  /** Slaves of the target to wait for after each batch (0: none). */
  replicas: number;
}

export interface MoveSpec {
  source: string;
  slotCount: number;
  /** The target of each migrating slot of this source; keys of other slots stay. */
  targets: ReadonlyMap<number, MoveTarget>;
}

export interface MoverOptions {
  password?: string;
  /** SCAN's COUNT hint. */
  scanCount: number;
  /** Keys per MIGRATE. */
  keysPerBatch: number;
  /** MIGRATE's own I/O timeout, and the command timeout of the mover's connections. */
  timeoutMs: number;
  /** How long a batch waits for the target's slaves. */
  replicaWaitMs: number;
}

export const DEFAULT_MOVER_OPTIONS: MoverOptions = { scanCount: 1000, keysPerBatch: 200, timeoutMs: 10_000, replicaWaitMs: 1000 };

export interface PassResult {
  /** Keys this pass moved (copied to the target and dropped from the source). */
  moved: number;
  /** Keys of the migrating slots the pass found on the source. */
  seen: number;
  /** Batches whose keys the target's slaves did not all confirm in time (moved anyway). */
  unconfirmed: number;
  /** False when `keepGoing` stopped the pass early. */
  complete: boolean;
}

/** The channel of the marker write that lets WAIT cover a batch restored by another connection. */
export const MOVER_CHANNEL = '__cfgserver:migration__';

export class KeyMover {
  private readonly clients = new Map<string, Redis>();

  constructor(private readonly options: MoverOptions = DEFAULT_MOVER_OPTIONS) {}

  /**
   * One SCAN over the source, moving the keys of the slots in `spec.targets`. `keepGoing` is asked after every
   * batch (with the counts so far): false stops the pass (a pause, a cancel, a lost lead).
   */
  async pass(spec: MoveSpec, keepGoing: (sofar: PassResult) => Promise<boolean> | boolean): Promise<PassResult> {
    const source = this.client(spec.source);
    const result: PassResult = { moved: 0, seen: 0, unconfirmed: 0, complete: false };
    let cursor = '0';
    do {
      const [next, keys] = (await this.run(spec.source, 'SCAN', () => source.scanBuffer(cursor, 'COUNT', this.options.scanCount))) as [Buffer, Buffer[]];
      cursor = next.toString();
      // Grouped by the target's address, not by the MoveTarget object: the caller may build one
      // object per slot, and batches per slot would move about one key per MIGRATE
      // (docs/benchmarks.md, "Slot migration").
      const byTarget = new Map<string, { target: MoveTarget; keys: Buffer[] }>();
      for (const key of keys) {
        const target = spec.targets.get(keySlot(key, spec.slotCount));
        if (!target) continue;
        const group = byTarget.get(target.address) ?? { target, keys: [] };
        group.keys.push(key);
        byTarget.set(target.address, group);
      }
      for (const { target, keys: mine } of byTarget.values()) {
        result.seen += mine.length;
        for (let i = 0; i < mine.length; i += this.options.keysPerBatch) {
          await this.moveBatch(spec.source, target, mine.slice(i, i + this.options.keysPerBatch), result);
          if (!(await keepGoing(result))) return result;
        }
      }
    } while (cursor !== '0');
    result.complete = true;
    return result;
  }

  /** Copies, confirms and drops one batch; `result` counts it. */
  private async moveBatch(source: string, target: MoveTarget, keys: Buffer[], result: PassResult): Promise<void> {
    const copied = await this.copy(source, target.address, keys);
    if (copied === 0) return;
    if (target.replicas > 0) {
      const client = this.client(target.address);
      const acked = (await this.run(target.address, 'PUBLISH+WAIT', async () => {
        const replies = await client.pipeline().publish(MOVER_CHANNEL, '1').wait(target.replicas, this.options.replicaWaitMs).exec();
        return replies?.[1]?.[1];
      })) as number;
      if (acked < target.replicas) result.unconfirmed++;
    }
    // UNLINK's count is the keys this batch really moved (a proxy may have moved some meanwhile).
    result.moved += await this.run(source, 'UNLINK', () => this.client(source).unlink(...keys));
  }

  /**
   * MIGRATE … COPY of `keys`: the number of keys now on the target. A batch that fails is tried key
   * by key, so that one key the target already holds (BUSYKEY: its copy wins) does not stop the rest.
   */
  private async copy(source: string, target: string, keys: Buffer[]): Promise<number> {
    try {
      const reply = await this.migrate(source, target, keys);
      return reply === 'NOKEY' ? 0 : keys.length;
    } catch (err) {
      if (keys.length === 1) {
        if (/BUSYKEY/.test(errorMessage(err))) return 1;
        throw err;
      }
      let copied = 0;
      for (const key of keys) copied += await this.copy(source, target, [key]);
      return copied;
    }
  }

  private async migrate(source: string, target: string, keys: Buffer[]): Promise<string> {
    const { host, port } = splitAddress(target);
    const auth = this.options.password ? ['AUTH', this.options.password] : [];
    const reply = await this.run(source, 'MIGRATE', () => this.client(source).callBuffer('MIGRATE', host, port, '', 0, this.options.timeoutMs, 'COPY', ...auth, 'KEYS', ...keys));
    return Buffer.isBuffer(reply) ? reply.toString() : String(reply);
  }

  private async run<T>(address: string, what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw new RedisError(`${address}: ${what} failed: ${errorMessage(err)}`, { cause: err });
    }
  }

  private client(address: string): Redis {
    let client = this.clients.get(address);
    if (!client) {
      const { host, port } = splitAddress(address);
      client = new Redis({
        host,
        port,
        password: this.options.password,
        connectTimeout: this.options.timeoutMs,
        commandTimeout: this.options.timeoutMs + 2000,
        maxRetriesPerRequest: 1,
        retryStrategy: (times) => Math.min(100 * times, 1000),
        connectionName: 'cfgserver-mover',
      });
      client.on('error', () => undefined);
      this.clients.set(address, client);
    }
    return client;
  }

  close(): void {
    for (const c of this.clients.values()) c.disconnect();
    this.clients.clear();
  }
}
