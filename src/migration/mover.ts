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
import type { Redis } from 'ioredis';
import { errorMessage } from '../model/errors.js';
import { keySlot } from '../model/slot.js';
import { splitAddress } from '../model/address.js';
import { migrateAuthArgs } from '../model/auth.js';
import type { CredentialSource } from '../redis/credentials.js';
import { runOn, scanPages } from '../redis/named-calls.js';
import { MoverConnections, slavesToWaitFor, waitForSlaves } from './connection.js';

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
  /** The credentials of each instance, MIGRATE's AUTH/AUTH2 to the target included (none: no AUTH). */
  credentials?: CredentialSource;
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

export class KeyMover {

  private readonly connections: MoverConnections;

  constructor(private readonly options: MoverOptions = DEFAULT_MOVER_OPTIONS) {
    this.connections = new MoverConnections(options);
  }

  /**
   * One SCAN over the source, moving the keys of the slots in `spec.targets`. `keepGoing` is asked after every
   * batch (with the counts so far): false stops the pass (a pause, a cancel, a lost lead).
   */
  async pass(spec: MoveSpec, keepGoing: (sofar: PassResult) => Promise<boolean> | boolean): Promise<PassResult> {
    const source = this.client(spec.source);
    const result: PassResult = { moved: 0, seen: 0, unconfirmed: 0, complete: false };
    // UNLINKs are not waited for one by one: the source runs them in order, before the next
    // MIGRATE on the same connection, and the pass waits for all of them before it ends.
    const unlinks: Promise<void>[] = [];
    const finish = async (complete: boolean): Promise<PassResult> => {
      await Promise.all(unlinks);
      result.complete = complete;
      return result;
    };
    // Keys gather per target across SCAN pages into full batches: fewer round trips and WAITs.
    const batches = new Map<string, { target: MoveTarget; replicas: number | null; keys: Buffer[] }>();
    const send = async (batch: { target: MoveTarget; replicas: number | null; keys: Buffer[] }): Promise<boolean> => {
      batch.replicas ??= await slavesToWaitFor(batch.target.address, this.client(batch.target.address), batch.target.replicas);
      const keys = batch.keys;
      batch.keys = [];
      await this.moveBatch(spec.source, batch.target.address, batch.replicas, keys, result, unlinks);
      return keepGoing(result);
    };
    // The next page is on its way while this one's batches are sent.
    for await (const keys of scanPages(spec.source, source, this.options.scanCount)) {
      for (const key of keys) {
        const target = spec.targets.get(keySlot(key, spec.slotCount));
        if (!target) continue;
        result.seen++;
        let batch = batches.get(target.address);
        if (!batch) batches.set(target.address, (batch = { target, replicas: null, keys: [] }));
        batch.keys.push(key);
        if (batch.keys.length >= this.options.keysPerBatch && !(await send(batch))) return finish(false);
      }
    }
    for (const batch of batches.values()) if (batch.keys.length > 0 && !(await send(batch))) return finish(false);
    return finish(true);
  }

  /** Copies and confirms one batch; its UNLINK at the source joins `unlinks`, and counts it in `result` once answered. */
  private async moveBatch(source: string, target: string, replicas: number, keys: Buffer[], result: PassResult, unlinks: Promise<void>[]): Promise<void> {
    const copied = await this.copy(source, target, keys);
    if (copied === 0) return;
    if (replicas > 0 && (await waitForSlaves(target, this.client(target), replicas, this.options.replicaWaitMs)) < replicas) result.unconfirmed++;
    // UNLINK's count is the keys this batch really moved (a proxy may have moved some meanwhile).
    const unlink = runOn(source, 'UNLINK', () => this.client(source).unlink(...keys)).then((n) => void (result.moved += n));
    unlink.catch(() => undefined); // reported when the pass waits for it
    unlinks.push(unlink);
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
    const auth = migrateAuthArgs(this.options.credentials?.(target) ?? null);
    const reply = await runOn(source, 'MIGRATE', () => this.client(source).callBuffer('MIGRATE', host, port, '', 0, this.options.timeoutMs, 'COPY', ...auth, 'KEYS', ...keys));
    return Buffer.isBuffer(reply) ? reply.toString() : String(reply);
  }

  private client(address: string): Redis {
    return this.connections.get(address);
  }

  close(): void {
    this.connections.close();
  }
}
