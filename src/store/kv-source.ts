/**
 * Where a store's reads come from. By default straight from etcd (linearizable, one request per
 * read); a controller replica gives the stores it reads every cycle its EtcdMirror instead, a
 * copy kept by one watch, so that an idle deployment of many clusters does not poll etcd
 * (docs/scale.md). Writes always go to etcd.
 */
import type { Etcd3, IKeyValue } from 'etcd3';
import { etcdCall } from './etcd.js';

export interface KvSource {
  /** The key's value, or undefined when it does not exist; `what` names the read in errors. */
  get(key: string, what: string): Promise<IKeyValue | undefined>;
  /** Every key under `prefix`, in key order. */
  prefix(prefix: string, what: string): Promise<IKeyValue[]>;
}

/** A copy of etcd that can say whether it is serving (store/etcd-mirror.ts). */
export interface KvCopy extends KvSource {
  isSynced(): boolean;
}

/** Reads each key from etcd when asked. */
export function etcdSource(etcd: Etcd3): KvSource {
  return {
    get: async (key, what) => (await etcdCall(what, () => etcd.get(key).exec())).kvs[0],
    prefix: async (prefix, what) => (await etcdCall(what, () => etcd.getAll().prefix(prefix).sort('Key', 'Ascend').exec())).kvs,
  };
}
