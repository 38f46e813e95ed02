/**
 * Live controller replicas: `controllers/<id>`, each bound to its replica's lease, and who leads.
 */
import type { Etcd3 } from 'etcd3';
import { controllerInfoSchema, type ControllerInfo } from '../model/schemas.js';
import { decodeAll, encode, etcdCall, type ProblemHandler } from './etcd.js';
import type { Keys } from './keys.js';
import { etcdSource, type KvSource } from './kv-source.js';

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
    /** Where reads come from: etcd itself unless a controller gives its mirror (kv-source.ts). */
    private readonly source: KvSource = etcdSource(etcd),
  ) {}

  async register(info: ControllerInfo, leaseId: string): Promise<void> {
    await etcdCall('register controller', () => this.etcd.put(this.keys.controller(info.id)).value(encode(info)).lease(leaseId).exec());
  }

  async leader(): Promise<LeaderInfo | null> {
    const kv = await this.source.get(this.keys.leader(), 'read leader');
    return kv ? { controller: kv.value.toString(), since: kv.create_revision } : null;
  }

  async list(onProblem?: ProblemHandler): Promise<ControllerStatus[]> {
    const [res, leader] = await Promise.all([
      this.source.prefix(this.keys.controllers(), 'list controllers'),
      this.leader(),
    ]);
    const out = decodeAll(res, controllerInfoSchema, onProblem, (info): ControllerStatus => ({ ...info, leader: info.id === leader?.controller }));
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }
}
