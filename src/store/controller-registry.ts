/**
 * Live controller replicas: `controllers/<id>`, each bound to its replica's lease, and who leads.
 */
import type { Etcd3 } from 'etcd3';
import { MalformedValueError } from '../model/errors.js';
import { controllerInfoSchema, type ControllerInfo } from '../model/schemas.js';
import { decodeKv, encode, etcdCall } from './etcd.js';
import type { Keys } from './keys.js';

export interface ControllerStatus extends ControllerInfo {
  leader: boolean;
}

export interface LeaderInfo {
  controller: string;
  /** The create revision of the leader key: the leader's fencing token. */
  since: string;
}

export class ControllerRegistry {
  constructor(
    private readonly etcd: Etcd3,
    private readonly keys: Keys,
  ) {}

  async register(info: ControllerInfo, leaseId: string): Promise<void> {
    await etcdCall('register controller', () => this.etcd.put(this.keys.controller(info.id)).value(encode(info)).lease(leaseId).exec());
  }

  async leader(): Promise<LeaderInfo | null> {
    const res = await etcdCall('read leader', () => this.etcd.get(this.keys.leader()).exec());
    const kv = res.kvs[0];
    return kv ? { controller: kv.value.toString(), since: kv.create_revision } : null;
  }

  async list(onProblem?: (err: MalformedValueError) => void): Promise<ControllerStatus[]> {
    const [res, leader] = await Promise.all([
      etcdCall('list controllers', () => this.etcd.getAll().prefix(this.keys.controllers()).exec()),
      this.leader(),
    ]);
    const out: ControllerStatus[] = [];
    for (const kv of res.kvs) {
      try {
        const info = decodeKv(kv, controllerInfoSchema);
        out.push({ ...info, leader: info.id === leader?.controller });
      } catch (err) {
        if (err instanceof MalformedValueError) onProblem?.(err);
        else throw err;
      }
    }
    return out.sort((a, b) => a.id.localeCompare(b.id));
  }
}
