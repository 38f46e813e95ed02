/**
 * Fencing: a leader's token is the create revision of its election key, and every write a leader
 * makes is an etcd transaction that also compares it — a deposed leader's writes fail, they never
 * land late. This is the one place that builds that compare.
 */
import type { Etcd3 } from 'etcd3';
import { etcdCall } from './etcd.js';

/** A leader's fencing token: its election key must still have this create revision. */
export interface Fence {
  key: string;
  createRevision: string;
}

/** What etcd3's `if(...)` returns: a transaction being built, to which more compares can be added. */
type Txn = ReturnType<Etcd3['if']>;

/** `txn` that also requires the fence to hold; unchanged without a fence (an admin's own write). */
export function fenced(txn: Txn, fence: Fence | undefined): Txn {
  return fence ? txn.and(fence.key, 'Create', '==', fence.createRevision) : txn;
}

/** A transaction whose only condition is that the fence holds. */
export function whileFenced(etcd: Etcd3, fence: Fence): Txn {
  return etcd.if(fence.key, 'Create', '==', fence.createRevision);
}

/** Whether the fence still holds: after a failed transaction, tells a lost lock from a conflict. */
export async function holdsFence(etcd: Etcd3, fence: Fence): Promise<boolean> {
  const res = await etcdCall('read leader key', () => etcd.get(fence.key).exec());
  return res.kvs[0]?.create_revision === fence.createRevision;
}
