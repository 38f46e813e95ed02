/**
 * Pub/sub for one client session.
 *
 * Where a message is published decides where it must be listened for:
 * - `SUBSCRIBE ch` listens on the master of the slot of `ch` (hash tags count), which is where
 *   the proxy sends `PUBLISH ch` — so publishers and subscribers meet through any proxy;
 * - `SSUBSCRIBE ch` likewise, by the slot of the shard channel (as Redis Cluster does);
 * - `PSUBSCRIBE pattern` listens on every master, since matching channels live anywhere.
 * The session has one subscribed backend connection per master it listens on. The proxy answers
 * the client's (un)subscribe confirmations itself, with the client's own subscription counts,
 * once the masters have confirmed; messages are forwarded as they come (as RESP3 pushes to a
 * client that chose RESP3). When the route changes, subscriptions follow their channels to the
 * new masters without the client seeing anything. Like Redis pub/sub, delivery is at most once:
 * a message published while a master fails over may be lost.
 */
import { keySlot } from '../model/slot.js';
import type { BackendConnection, BackendPool } from './backend.js';
import { arrayElements, bulkValue, encodeCommand, reply, reply3 } from './resp.js';
import type { Router } from './router.js';
import type { Pending, Subscriber } from './client.js';

type Kind = 'channel' | 'pattern' | 'shard';

const SUBSCRIBE: Record<Kind, string> = { channel: 'subscribe', pattern: 'psubscribe', shard: 'ssubscribe' };
const UNSUBSCRIBE: Record<Kind, string> = { channel: 'unsubscribe', pattern: 'punsubscribe', shard: 'sunsubscribe' };
const KIND_OF: Record<string, [Kind, boolean]> = {
  SUBSCRIBE: ['channel', true],
  UNSUBSCRIBE: ['channel', false],
  PSUBSCRIBE: ['pattern', true],
  PUNSUBSCRIBE: ['pattern', false],
  SSUBSCRIBE: ['shard', true],
  SUNSUBSCRIBE: ['shard', false],
};
const MESSAGE_KIND: Record<string, Kind> = { message: 'channel', pmessage: 'pattern', smessage: 'shard' };

/** One subscribed connection to a master, and the confirmations the session waits for on it. */
class Link {
  readonly connection: BackendConnection;
  /** Called once per subscribe-type confirmation, in order. */
  readonly waiting: (() => void)[] = [];

  constructor(
    readonly address: string,
    pool: BackendPool,
    onMessage: (link: Link, reply: Buffer) => void,
    onBroken: (link: Link) => void,
  ) {
    this.connection = pool.subscriber(
      (r) => onMessage(this, r),
      () => onBroken(this),
    );
  }

  send(kind: Kind, subscribe: boolean, names: Buffer[], confirmed?: () => void): void {
    if (names.length === 0) return;
    const verb = subscribe ? SUBSCRIBE[kind] : UNSUBSCRIBE[kind];
    this.connection.post(encodeCommand([verb, ...names]));
    if (subscribe && confirmed) {
      let left = names.length;
      for (let i = 0; i < names.length; i++) this.waiting.push(() => --left === 0 && confirmed());
    } else if (subscribe) {
      for (let i = 0; i < names.length; i++) this.waiting.push(() => undefined);
    }
  }

  close(): void {
    this.waiting.splice(0).forEach((w) => w());
    this.connection.close();
  }
}

export class PubSub {
  /** name (latin1) → the master address it is subscribed on ('' for patterns: every master). */
  private readonly subscriptions: Record<Kind, Map<string, string>> = { channel: new Map(), pattern: new Map(), shard: new Map() };
  private readonly links = new Map<string, Link>();
  private retry: NodeJS.Timeout | null = null;

  constructor(private readonly session: Subscriber) {}

  /** In Redis's sense: the client has a subscription (RESP2 clients may then only (un)subscribe). */
  get active(): boolean {
    return this.subscriptions.channel.size + this.subscriptions.pattern.size + this.subscriptions.shard.size > 0;
  }

  command(p: Pending, name: string, argv: Buffer[]): void {
    const [kind, subscribe] = KIND_OF[name]!;
    const names = argv.slice(1);
    if (subscribe) return this.subscribe(p, kind, names);
    return this.unsubscribe(p, kind, names);
  }

  private count(kind: Kind): number {
    return kind === 'shard' ? this.subscriptions.shard.size : this.subscriptions.channel.size + this.subscriptions.pattern.size;
  }

  private subscribe(p: Pending, kind: Kind, names: Buffer[]): void {
    const router = this.session.ctx.router();
    if (kind === 'shard' && new Set(names.map((n) => keySlot(n, router.slotCount))).size > 1) {
      return this.session.answer(p, reply.error("CROSSSLOT Keys in request don't hash to the same slot"));
    }
    const confirmations: Buffer[] = [];
    const toSend = new Map<string, Buffer[]>();
    for (const name of names) {
      const key = name.toString('latin1');
      const map = this.subscriptions[kind];
      if (!map.has(key)) {
        const targets = kind === 'pattern' ? router.masterAddresses : [this.ownerOf(router, name)];
        if (targets.some((t) => t === null)) return this.session.answer(p, reply.error(`CLUSTERDOWN proxy: the slot of '${key}' has no shard`));
        map.set(key, kind === 'pattern' ? '' : targets[0]!);
        for (const address of targets as string[]) {
          const list = toSend.get(address) ?? [];
          list.push(name);
          toSend.set(address, list);
        }
      }
      confirmations.push(this.confirmation(SUBSCRIBE[kind], name, this.count(kind)));
    }
    const answer = () => this.session.answer(p, Buffer.concat(confirmations));
    let left = toSend.size;
    if (left === 0) return answer();
    for (const [address, list] of toSend) this.link(address)?.send(kind, true, list, () => --left === 0 && answer());
  }

  private unsubscribe(p: Pending, kind: Kind, names: Buffer[]): void {
    const map = this.subscriptions[kind];
    const targets = names.length > 0 ? names : [...map.keys()].map((k) => Buffer.from(k, 'latin1'));
    if (targets.length === 0) return this.session.answer(p, this.confirmation(UNSUBSCRIBE[kind], null, this.count(kind)));
    const confirmations: Buffer[] = [];
    for (const name of targets) {
      const key = name.toString('latin1');
      const address = map.get(key);
      if (address !== undefined) {
        map.delete(key);
        for (const link of address === '' ? [...this.links.values()] : [this.links.get(address)].filter((l) => l !== undefined)) link.send(kind, false, [name]);
      }
      confirmations.push(this.confirmation(UNSUBSCRIBE[kind], name, this.count(kind)));
    }
    this.closeUnusedLinks(this.session.ctx.router());
    this.session.answer(p, Buffer.concat(confirmations));
  }

  /** A confirmation as Redis gives it: [verb, name, count] (a push in RESP3). */
  private confirmation(verb: string, name: Buffer | null, count: number): Buffer {
    const items = [reply.bulk(verb), name === null ? this.session.nullReply() : reply.bulk(name), reply.integer(count)];
    return this.session.proto === 3 ? reply3.push(items) : reply.array(items);
  }

  private ownerOf(router: Router, name: Buffer): string | null {
    return router.poolForSlot(keySlot(name, router.slotCount))?.address ?? null;
  }

  private link(address: string): Link | null {
    let link = this.links.get(address);
    if (!link) {
      const pool = this.poolOf(address);
      if (!pool) return null;
      link = new Link(address, pool, (l, r) => this.onReply(l, r), (l) => this.onBroken(l));
      this.links.set(address, link);
    }
    return link;
  }

  private poolOf(address: string): BackendPool | null {
    return this.session.ctx.router().masters().find((pool) => pool.address === address) ?? null;
  }

  private onReply(link: Link, r: Buffer): void {
    let parts: Buffer[];
    try {
      parts = arrayElements(r);
    } catch {
      return; // not a pub/sub reply (nothing else is expected on this connection)
    }
    const verb = bulkText(parts[0]);
    const kind = verb === undefined ? undefined : MESSAGE_KIND[verb];
    if (kind !== undefined) {
      // Only from where the session listens now: a channel being moved may briefly have two.
      const name = bulkText(parts[1]);
      const at = name === undefined ? undefined : this.subscriptions[kind].get(name);
      if (at === undefined || (at !== '' && at !== link.address)) return;
      const message = this.session.proto === 3 ? Buffer.from(r) : r;
      if (this.session.proto === 3) message[0] = 0x3e;
      return this.session.push(message);
    }
    if (verb === 'subscribe' || verb === 'psubscribe' || verb === 'ssubscribe') link.waiting.shift()?.();
  }

  /** A subscribed connection broke: answer what waited, and subscribe again soon. */
  private onBroken(link: Link): void {
    link.waiting.splice(0).forEach((w) => w());
    if (this.retry || !this.active) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      this.resubscribe(link.address);
    }, 500);
    this.retry.unref();
  }

  private resubscribe(address: string): void {
    const link = this.links.get(address);
    if (!link) return;
    for (const kind of ['channel', 'pattern', 'shard'] as Kind[]) {
      const names = [...this.subscriptions[kind]].filter(([, at]) => at === '' || at === address).map(([name]) => Buffer.from(name, 'latin1'));
      link.send(kind, true, names);
    }
  }

  /** Subscriptions follow their channels to the masters of the new route. */
  routeChanged(router: Router): void {
    if (!this.active) return;
    for (const kind of ['channel', 'shard'] as Kind[]) {
      for (const [key, address] of this.subscriptions[kind]) {
        const name = Buffer.from(key, 'latin1');
        const owner = this.ownerOf(router, name);
        if (owner === address || owner === null) continue;
        this.links.get(address)?.send(kind, false, [name]);
        this.subscriptions[kind].set(key, owner);
        this.link(owner)?.send(kind, true, [name]);
      }
    }
    const patterns = [...this.subscriptions.pattern.keys()].map((k) => Buffer.from(k, 'latin1'));
    if (patterns.length > 0) for (const address of router.masterAddresses) if (!this.links.has(address)) this.link(address)?.send('pattern', true, patterns);
    this.closeUnusedLinks(router);
  }

  private closeUnusedLinks(router: Router): void {
    const used = new Set<string>();
    for (const kind of ['channel', 'shard'] as Kind[]) for (const address of this.subscriptions[kind].values()) used.add(address);
    if (this.subscriptions.pattern.size > 0) router.masterAddresses.forEach((a) => used.add(a));
    for (const [address, link] of this.links) {
      if (!used.has(address)) {
        link.close();
        this.links.delete(address);
      }
    }
  }

  /** Leaves every subscription (RESET, or the client went away). */
  reset(): void {
    if (this.retry) clearTimeout(this.retry);
    for (const link of this.links.values()) link.close();
    this.links.clear();
    for (const map of Object.values(this.subscriptions)) map.clear();
  }
}

/** The text of a bulk string element, or undefined for anything else. */
function bulkText(r: Buffer | undefined): string | undefined {
  try {
    return r === undefined ? undefined : (bulkValue(r)?.toString('latin1') ?? undefined);
  } catch {
    return undefined;
  }
}
