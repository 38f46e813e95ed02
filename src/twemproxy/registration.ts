/**
 * Keeps one registration under `clusters/<c>/proxies/<id>`, bound to its own lease, as
 * cfgserver's proxy does: written again with every change, and under a new lease (after 500 ms)
 * when the lease is lost, so that the barrier and `cfgctl proxies` always see the live agent.
 */
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'winston';
import { Session } from '../election/session.js';
import { errorMessage } from '../model/errors.js';
import type { ProxyInfoInput } from '../model/schemas.js';
import type { Keys } from '../store/keys.js';
import { ProxyRegistry } from '../store/proxy-registry.js';

export class Registration {
  private readonly registry: ProxyRegistry;
  private session: Session | null = null;
  private closed = false;
  private retry: NodeJS.Timeout | null = null;
  /** Writes in order: a slow older write never lands after a newer one. */
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly etcd: Etcd3,
    keys: Keys,
    private readonly ttlSeconds: number,
    /** What to register now (read at each write, so that it is always the latest). */
    private readonly info: () => ProxyInfoInput,
    private readonly log: Logger,
  ) {
    this.registry = new ProxyRegistry(etcd, keys);
  }

  /** Writes the registration now; resolves once written (or once a retry is scheduled). */
  update(): Promise<void> {
    this.chain = this.chain.then(() => this.write());
    return this.chain;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    await this.chain;
    await this.session?.close(true);
  }

  private async write(): Promise<void> {
    if (this.closed) return;
    try {
      if (!this.session?.isAlive()) {
        this.session = await Session.open(this.etcd, this.ttlSeconds, this.log, { onLost: () => setTimeout(() => void this.update(), 500) });
      }
      await this.registry.put(this.info(), this.session.leaseId);
    } catch (err) {
      this.log.warn('could not register in etcd; will retry', { error: errorMessage(err) });
      if (this.retry) clearTimeout(this.retry);
      this.retry = setTimeout(() => void this.update(), 1000);
      this.retry.unref();
    }
  }
}
