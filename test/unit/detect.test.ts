import { describe, it, expect } from 'vitest';
import { judgeMasters, looksIsolated, majority, type DetectOptions } from '../../src/controller/detect.js';
import { instanceHealthSchema, routeSchema, type InstanceHealth, type Route } from '../../src/model/schemas.js';
import type { HealthViews } from '../../src/store/health-store.js';

const NOW = Date.parse('2024-01-01T00:10:00.000Z');
const MAX_AGE = 10_000;
const iso = (ms: number) => new Date(ms).toISOString();

const M = ['10.0.0.1:6379', '10.0.1.1:6379', '10.0.2.1:6379', '10.0.3.1:6379', '10.0.4.1:6379'] as const;

/** A route of `n` shards s0..s(n-1) with masters M[0..n-1] (each with one slave). */
function route(n: number): Route {
  const per = Math.floor(1024 / n);
  return routeSchema.parse({
    format: 1,
    cluster: 'main',
    epoch: 3,
    slotCount: 1024,
    hash: 'crc16',
    shards: Array.from({ length: n }, (_, i) => ({
      id: `s${i}`,
      master: M[i],
      slaves: [`10.0.${i}.2:6379`],
      slots: [[i * per, i === n - 1 ? 1023 : (i + 1) * per - 1]],
    })),
    updatedAt: iso(NOW - 60_000),
  });
}

interface ViewOpts {
  down?: boolean;
  reachable?: boolean;
  /** How long ago the replica wrote this view. */
  ageMs?: number;
  lastOkAt?: number | null;
}

function view(controller: string, address: string, o: ViewOpts = {}): InstanceHealth {
  const down = o.down ?? false;
  const reachable = o.reachable ?? !down;
  const observedAt = NOW - (o.ageMs ?? 1000);
  const lastOkAt = o.lastOkAt === undefined ? (reachable ? observedAt : NOW - 20_000) : o.lastOkAt;
  // Through the schema, so that every view is one a replica could have published.
  return instanceHealthSchema.parse({
    address,
    reachable,
    down,
    role: reachable ? 'master' : 'unknown',
    masterAddress: null,
    linkUp: null,
    linkDownSinceSec: null,
    offset: reachable ? 1000 : null,
    connectedSlaves: reachable ? 1 : null,
    priority: null,
    replId: reachable ? 'r1' : null,
    error: reachable ? null : 'connect ECONNREFUSED',
    lastOkAt: lastOkAt === null ? null : iso(lastOkAt),
    since: iso(NOW - 30_000),
    observedAt: iso(observedAt),
    controller,
  });
}

/** Health views keyed by the controller that published each one. */
function views(...list: InstanceHealth[]): HealthViews {
  const out: HealthViews = new Map();
  for (const v of list) {
    let m = out.get(v.controller);
    if (!m) out.set(v.controller, (m = new Map()));
    m.set(v.address, v);
  }
  return out;
}

function opts(live: string[], overrides: Partial<DetectOptions> = {}): DetectOptions {
  return { live, now: NOW, maxViewAgeMs: MAX_AGE, ...overrides };
}

describe('majority', () => {
  it('is more than half', () => {
    expect([1, 2, 3, 4, 5].map(majority)).toEqual([1, 2, 2, 3, 3]);
  });
});

describe('judgeMasters', () => {
  it('gives one verdict per shard, none down when nobody votes', () => {
    const r = route(2);
    const v = judgeMasters(r, views(view('c1', M[0]), view('c1', M[1]), view('c2', M[0]), view('c2', M[1])), opts(['c1', 'c2', 'c3']));
    expect(v).toEqual([
      { shard: 's0', master: M[0], down: false, votes: [], needed: 2, lastOkAt: null },
      { shard: 's1', master: M[1], down: false, votes: [], needed: 2, lastOkAt: null },
    ]);
  });

  it('a master is down with a majority of live replicas voting down, not with fewer', () => {
    const r = route(1);
    const live = ['c1', 'c2', 'c3'];
    const one = judgeMasters(r, views(view('c1', M[0], { down: true }), view('c2', M[0]), view('c3', M[0])), opts(live))[0]!;
    expect(one.down).toBe(false);
    expect(one.votes).toEqual(['c1']);
    expect(one.needed).toBe(2);

    const two = judgeMasters(r, views(view('c1', M[0], { down: true }), view('c2', M[0], { down: true }), view('c3', M[0])), opts(live))[0]!;
    expect(two.down).toBe(true);
    expect(two.votes).toEqual(['c1', 'c2']);
  });

  it('with 4 live replicas, 2 votes are not enough and 3 are', () => {
    const r = route(1);
    const live = ['c1', 'c2', 'c3', 'c4'];
    const two = judgeMasters(r, views(view('c1', M[0], { down: true }), view('c2', M[0], { down: true })), opts(live))[0]!;
    expect(two).toMatchObject({ down: false, needed: 3 });
    const three = judgeMasters(r, views(view('c1', M[0], { down: true }), view('c2', M[0], { down: true }), view('c3', M[0], { down: true })), opts(live))[0]!;
    expect(three).toMatchObject({ down: true, needed: 3 });
  });

  it('a lone live replica decides alone', () => {
    const v = judgeMasters(route(1), views(view('c1', M[0], { down: true })), opts(['c1']))[0]!;
    expect(v).toMatchObject({ down: true, votes: ['c1'], needed: 1 });
  });

  it('nothing is down when no replica is live', () => {
    const v = judgeMasters(route(1), views(view('c1', M[0], { down: true })), opts([]))[0]!;
    expect(v.down).toBe(false);
    expect(v.votes).toEqual([]);
  });

  it('views of replicas that are not live do not count, toward the votes or the majority', () => {
    const r = route(1);
    // c9 and c8 are gone from the registry; their views linger in etcd.
    const all = views(view('c1', M[0], { down: true }), view('c9', M[0], { down: true }), view('c8', M[0], { down: true }), view('c2', M[0]), view('c3', M[0]));
    const v = judgeMasters(r, all, opts(['c1', 'c2', 'c3']))[0]!;
    expect(v.votes).toEqual(['c1']);
    expect(v.down).toBe(false);
    expect(v.needed).toBe(2);
  });

  it('a stale view does not vote', () => {
    const r = route(1);
    const live = ['c1', 'c2', 'c3'];
    const stale = views(view('c1', M[0], { down: true }), view('c2', M[0], { down: true, ageMs: MAX_AGE + 1 }), view('c3', M[0]));
    const v = judgeMasters(r, stale, opts(live))[0]!;
    expect(v.votes).toEqual(['c1']);
    expect(v.down).toBe(false);

    // Exactly as old as allowed still votes.
    const fresh = views(view('c1', M[0], { down: true }), view('c2', M[0], { down: true, ageMs: MAX_AGE }), view('c3', M[0]));
    expect(judgeMasters(r, fresh, opts(live))[0]).toMatchObject({ down: true, votes: ['c1', 'c2'] });
  });

  it('an unreachable master that a replica does not (yet) judge down gets no vote from it', () => {
    const r = route(1);
    const v = judgeMasters(
      r,
      views(view('c1', M[0], { down: true }), view('c2', M[0], { down: false, reachable: false }), view('c3', M[0], { down: false, reachable: false })),
      opts(['c1', 'c2', 'c3']),
    )[0]!;
    expect(v.votes).toEqual(['c1']);
    expect(v.down).toBe(false);
  });

  it('a replica without a view of the master does not vote', () => {
    const v = judgeMasters(route(1), views(view('c1', M[0], { down: true }), view('c2', M[1], { down: true })), opts(['c1', 'c2']))[0]!;
    expect(v.votes).toEqual(['c1']);
    expect(v.down).toBe(false);
  });

  it('judges each shard on its own', () => {
    const r = route(2);
    const v = judgeMasters(
      r,
      views(view('c1', M[0], { down: true }), view('c2', M[0], { down: true }), view('c1', M[1]), view('c2', M[1], { down: true })),
      opts(['c1', 'c2']),
    );
    expect(v.map((x) => [x.shard, x.down])).toEqual([
      ['s0', true],
      ['s1', false],
    ]);
  });

  it('lastOkAt is the earliest last good probe among the voters only', () => {
    const r = route(1);
    const v = judgeMasters(
      r,
      views(
        view('c1', M[0], { down: true, lastOkAt: NOW - 8000 }),
        view('c2', M[0], { down: true, lastOkAt: NOW - 12_000 }),
        view('c3', M[0], { down: true, lastOkAt: null }),
        // Not a voter: its (earlier) lastOkAt must not count.
        view('c4', M[0], { down: false, reachable: false, lastOkAt: NOW - 50_000 }),
        // Not live.
        view('c9', M[0], { down: true, lastOkAt: NOW - 90_000 }),
      ),
      opts(['c1', 'c2', 'c3', 'c4']),
    )[0]!;
    expect(v.down).toBe(true);
    expect(v.votes).toEqual(['c1', 'c2', 'c3']);
    expect(v.lastOkAt).toBe(NOW - 12_000);
  });

  it('lastOkAt is null when no voter ever saw the master answer', () => {
    const v = judgeMasters(route(1), views(view('c1', M[0], { down: true, lastOkAt: null })), opts(['c1']))[0]!;
    expect(v.down).toBe(true);
    expect(v.lastOkAt).toBeNull();
  });
});

describe('looksIsolated', () => {
  const live = ['self', 'c2', 'c3'];
  const allDownForSelf = (n: number) => Array.from({ length: n }, (_, i) => view('self', M[i]!, { down: true }));
  const allUpFor = (c: string, n: number) => Array.from({ length: n }, (_, i) => view(c, M[i]!));

  it('a replica that sees several masters down that no other live replica sees down looks cut off', () => {
    const r = route(3);
    const reason = looksIsolated(r, views(...allDownForSelf(3), ...allUpFor('c2', 3), ...allUpFor('c3', 3)), 'self', opts(live));
    expect(reason).not.toBeNull();
    expect(reason).toContain('self sees 3 of 3 masters down');
    for (const m of [M[0], M[1], M[2]]) expect(reason).toContain(m);
    expect(reason).toContain('c2, c3');
  });

  it('half of the masters down is enough to look cut off', () => {
    const r = route(4);
    const mine = [view('self', M[0], { down: true }), view('self', M[1], { down: true }), view('self', M[2]), view('self', M[3])];
    const reason = looksIsolated(r, views(...mine, ...allUpFor('c2', 4), ...allUpFor('c3', 4)), 'self', opts(live));
    expect(reason).toContain('self sees 2 of 4 masters down');
    expect(reason).toContain(M[0]);
    expect(reason).toContain(M[1]);
    expect(reason).not.toContain(M[2]);
  });

  it('less than half of the masters down is not, even two of them', () => {
    const r = route(5);
    const mine = [view('self', M[0], { down: true }), view('self', M[1], { down: true }), view('self', M[2]), view('self', M[3]), view('self', M[4])];
    expect(looksIsolated(r, views(...mine, ...allUpFor('c2', 5), ...allUpFor('c3', 5)), 'self', opts(live))).toBeNull();
    // The same replica with a third master down (3 of 5) does look cut off.
    mine[2] = view('self', M[2], { down: true });
    expect(looksIsolated(r, views(...mine, ...allUpFor('c2', 5), ...allUpFor('c3', 5)), 'self', opts(live))).toContain('self sees 3 of 5 masters down');
  });

  it('one other live replica confirming one of those masters is enough to trust the replica', () => {
    const r = route(3);
    const c2 = [view('c2', M[0]), view('c2', M[1], { down: true }), view('c2', M[2])];
    expect(looksIsolated(r, views(...allDownForSelf(3), ...c2, ...allUpFor('c3', 3)), 'self', opts(live))).toBeNull();
  });

  it('a confirmation from a replica that is not live, or whose view is stale, does not count', () => {
    const r = route(3);
    const ghost = view('c9', M[1], { down: true });
    const stale = view('c2', M[0], { down: true, ageMs: MAX_AGE + 1 });
    const c2 = [stale, view('c2', M[1]), view('c2', M[2])];
    expect(looksIsolated(r, views(...allDownForSelf(3), ghost, ...c2, ...allUpFor('c3', 3)), 'self', opts(live))).not.toBeNull();
  });

  it('a replica alone (no other live replica) never looks isolated', () => {
    const r = route(3);
    expect(looksIsolated(r, views(...allDownForSelf(3)), 'self', opts(['self']))).toBeNull();
    // Other replicas' views are there, but they are not live.
    expect(looksIsolated(r, views(...allDownForSelf(3), ...allUpFor('c2', 3)), 'self', opts(['self']))).toBeNull();
  });

  it('a route of one shard never makes a replica look isolated', () => {
    const r = route(1);
    expect(looksIsolated(r, views(view('self', M[0], { down: true }), view('c2', M[0]), view('c3', M[0])), 'self', opts(live))).toBeNull();
  });

  it('one master down is not enough', () => {
    const r = route(2);
    const mine = [view('self', M[0], { down: true }), view('self', M[1])];
    expect(looksIsolated(r, views(...mine, ...allUpFor('c2', 2), ...allUpFor('c3', 2)), 'self', opts(live))).toBeNull();
  });

  it("the replica's own stale views do not count", () => {
    const r = route(3);
    const mine = Array.from({ length: 3 }, (_, i) => view('self', M[i]!, { down: true, ageMs: MAX_AGE + 1 }));
    expect(looksIsolated(r, views(...mine, ...allUpFor('c2', 3), ...allUpFor('c3', 3)), 'self', opts(live))).toBeNull();
  });
});
