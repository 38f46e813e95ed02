/**
 * Live proxies of a cluster: `clusters/<c>/proxies/<id>`, each bound to its proxy's lease, with
 * the route epoch it has applied — what the controller's barrier waits on.
 */
import type { Etcd3 } from 'etcd3';
import { proxyInfoSchema, type ProxyInfo } from '../model/schemas.js';
import { decodeAll, encode, etcdCall, type ProblemHandler } from './etcd.js';
import type { Keys } from './keys.js';

export class ProxyRegistry {
  constructor(
    private readonly etcd: Etcd3,
    private readonly keys: Keys,
  ) {}

  async put(info: ProxyInfo, leaseId: string): Promise<void> {
    await etcdCall('register proxy', () => this.etcd.put(this.keys.proxy(info.cluster, info.id)).value(encode(info)).lease(leaseId).exec());
  }

  async list(cluster: string, onProblem?: ProblemHandler): Promise<ProxyInfo[]> {
    const res = await etcdCall(`list proxies of ${cluster}`, () => this.etcd.getAll().prefix(this.keys.proxies(cluster)).exec());
    return decodeAll(res.kvs, proxyInfoSchema, onProblem).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }
}
