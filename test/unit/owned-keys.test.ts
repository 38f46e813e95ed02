/**
 * The proxy's counts while a split trims, without I/O: a fake session answers SCAN, DBSIZE and
 * RANDOMKEY from in-memory keyspaces, one per master. DBSIZE counts a trimming shard's owned keys
 * once each (even when SCAN repeats one) and takes the other shards' DBSIZE; outside a trim it asks
 * DBSIZE only; RANDOMKEY falls back to a SCAN for an owned key when its random picks are foreign.
 */
import { describe, expect, it } from 'vitest';
import { newRoute } from '../../src/model/route.js';
import type { Route } from '../../src/model/schemas.js';
import { keySlot } from '../../src/model/slot.js';
import type { BackendPool } from '../../src/proxy/backend.js';
import type { FanOutClient, Pending } from '../../src/proxy/client.js';
import { dbsize, randomKey } from '../../src/proxy/fan-out.js';
import { arrayElements, bulkValue, integerReply, reply } from '../../src/proxy/resp.js';
import { Router } from '../../src/proxy/router.js';

const SLOTS = 16;

/** Key names whose slot (of 16) is in [first, last], `count` of them. */
function keysIn(first: number, last: number, count: number, prefix: string): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < count; i++) {
    const slot = keySlot(`${prefix}${i}`, SLOTS);
    if (slot >= first && slot <= last) out.push(`${prefix}${i}`);
  }
  return out;
}

/** A fake session over keyspaces by master address; SCAN pages of 3 keys, each page's first key repeated on the next page. */
function fakeSession(route: Route, keyspaces: Map<string, string[]>, randomAnswer: (address: string) => string | null) {
  const router = new Router(route, (address) => ({ address }) as unknown as BackendPool);
  const sent: string[] = [];
  const answers: Buffer[] = [];
  const session = {
    ctx: { router: () => router, allowFlush: false },
    proto: 2 as const,
    nullReply: () => reply.bulk(null),
    reply: () => ({}) as Pending,
    answer: (_p: Pending, data: Buffer) => void answers.push(data),
    sendTo(pool: BackendPool, command: Buffer, handler: (r: Buffer) => void) {
      const address = (pool as unknown as { address: string }).address;
      const argv = arrayElements(command).map((a) => bulkValue(a)!.toString());
      sent.push(`${address} ${argv[0]}`);
      const keys = keyspaces.get(address) ?? [];
      let r: Buffer;
      if (argv[0] === 'DBSIZE') r = reply.integer(keys.length);
      else if (argv[0] === 'RANDOMKEY') r = reply.bulk(randomAnswer(address));
      else {
        const at = Number(argv[1]);
        const page = keys.slice(Math.max(0, at - 1), at + 3); // a repeat of the last key, as a shrinking table can do
        const next = at + 3 >= keys.length ? '0' : String(at + 3);
        r = reply.array([reply.bulk(next), reply.array(page.map((k) => reply.bulk(k)))]);
      }
      queueMicrotask(() => handler(r));
    },
  } satisfies FanOutClient;
  const answered = async (): Promise<Buffer> => {
    for (let i = 0; i < 1000 && answers.length === 0; i++) await new Promise((r) => setImmediate(r));
    return answers[0]!;
  };
  return { session, sent, answered };
}

/** s0 owned 0-15 and split its upper half to s2; s1 owns nothing here but holds keys of its own. */
function splitRoute(trimming: string[] | undefined): Route {
  const route = newRoute('c', SLOTS, [
    { id: 's0', master: 'h:1', slaves: [], slots: [[0, 7]] },
    { id: 's1', master: 'h:3', slaves: [], slots: [[8, 9]] },
    { id: 's2', master: 'h:9', slaves: [], slots: [[10, 15]] },
  ], 5);
  return trimming ? { ...route, trimming } : route;
}

describe('DBSIZE through the proxy', () => {
  const low = keysIn(0, 7, 20, 'a');
  const mid = keysIn(8, 9, 7, 'b');
  const high = keysIn(10, 15, 30, 'c');
  // After the commit, before the trim: s0 and s2 each hold the whole of the old s0.
  const keyspaces = new Map([['h:1', [...low, ...high]], ['h:3', mid], ['h:9', [...low, ...high]]]);

  it('counts the owned keys of trimming shards by SCAN, each once, and DBSIZE elsewhere', async () => {
    const { session, sent, answered } = fakeSession(splitRoute(['s0', 's2']), keyspaces, () => null);
    dbsize(session, session.reply());
    expect(integerReply(await answered())).toBe(20 + 7 + 30);
    expect(sent.filter((s) => s.startsWith('h:3'))).toEqual(['h:3 DBSIZE']);
    expect(sent.filter((s) => s.startsWith('h:1')).every((s) => s === 'h:1 SCAN')).toBe(true);
  });

  it('asks only DBSIZE outside a trim (and then counts what the masters hold)', async () => {
    const { session, sent, answered } = fakeSession(splitRoute(undefined), keyspaces, () => null);
    dbsize(session, session.reply());
    expect(integerReply(await answered())).toBe(50 + 7 + 50);
    expect(sent.sort()).toEqual(['h:1 DBSIZE', 'h:3 DBSIZE', 'h:9 DBSIZE']);
  });
});

describe('RANDOMKEY through the proxy during a trim', () => {
  it('falls back to an owned key found by SCAN when every random pick is foreign', async () => {
    const low = keysIn(0, 7, 5, 'a');
    const high = keysIn(10, 15, 5, 'c');
    const keyspaces = new Map([['h:1', [...high, ...low]], ['h:3', []], ['h:9', [...low, ...high]]]);
    // Each master answers a key of the other side: always foreign.
    const { session, sent, answered } = fakeSession(splitRoute(['s0', 's2']), keyspaces, (address) => (address === 'h:1' ? high[0]! : low[0]!));
    randomKey(session, session.reply());
    const key = bulkValue(await answered())!.toString();
    const owner = keySlot(key, SLOTS) <= 7 ? 'h:1' : 'h:9';
    expect(keyspaces.get(owner)).toContain(key);
    expect(sent.some((s) => s.endsWith('SCAN'))).toBe(true);
  });

  it('answers nil outside a trim when the picks stay foreign', async () => {
    const low = keysIn(0, 7, 5, 'a');
    const high = keysIn(10, 15, 5, 'c');
    // Each master holds only keys of another shard's slots (written by hand, outside a trim): no fallback scan.
    const keyspaces = new Map([['h:1', high], ['h:3', high], ['h:9', low]]);
    const { session, sent, answered } = fakeSession(splitRoute(undefined), keyspaces, (address) => keyspaces.get(address)![0]!);
    randomKey(session, session.reply());
    const answer = await answered();
    expect(answer.toString()).toBe('$-1\r\n');
    expect(sent.some((s) => s.endsWith('SCAN'))).toBe(false);
  });
});
