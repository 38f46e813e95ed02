import { describe, it, expect } from 'vitest';
import { judgeMasters, looksIsolated, majority, quorumOf, quorumShortfall, standings, type DetectOptions } from '../../src/controller/detect.js';
import { instancesOf } from '../../src/model/route.js';
import { instanceHealthSchema, routeSchema, type InstanceHealth, type Route } from '../../src/model/schemas.js';
import type { HealthViews } from '../../src/model/observations.js';

const NOW = Date.parse('2024-01-01T00:10:00.000Z');
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
  lastOkAt?: number | null;
}

function view(controller: string, address: string, o: ViewOpts = {}): InstanceHealth {
  const down = o.down ?? false;
  const reachable = o.reachable ?? !down;
  const observedAt = NOW - 1000;
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

/**
 * A replica's views of every instance of the route: reachable, except `down` (judged down) and
 * `unreachable` (not answering, not judged down yet); `override` replaces single views.
 */
function sees(controller: string, r: Route, o: { down?: string[]; unreachable?: string[]; override?: InstanceHealth[] } = {}): InstanceHealth[] {
  return instancesOf(r).map(
    (a) =>
      o.override?.find((v) => v.address === a) ??
      (o.down?.includes(a) ? view(controller, a, { down: true }) : o.unreachable?.includes(a) ? view(controller, a, { reachable: false }) : view(controller, a)),
  );
}

/** Health views keyed by the controller that published each one. */
function views(...lists: (InstanceHealth | InstanceHealth[])[]): HealthViews {
  const out: HealthViews = new Map();
  for (const v of lists.flat()) {
    let m = out.get(v.controller);
    if (!m) out.set(v.controller, (m = new Map()));
    m.set(v.address, v);
  }
  return out;
}

/** Options with the replica count configured to the live count unless said otherwise. */
function opts(live: string[], replicas = live.length): DetectOptions {
  return { live, replicas };
}

describe('majority and quorumOf', () => {
  it('is more than half', () => {
    expect([1, 2, 3, 4, 5].map(majority)).toEqual([1, 2, 2, 3, 3]);
  });

  it('is a majority of the configured replicas, or of the live ones when more are registered', () => {
    expect(quorumOf({ live: ['c1'], replicas: 3 })).toEqual({ needed: 2, replicas: 3 });
    expect(quorumOf({ live: ['c1', 'c2', 'c3', 'c4', 'c5'], replicas: 3 })).toEqual({ needed: 3, replicas: 5 });
    expect(quorumOf({ live: [], replicas: 1 })).toEqual({ needed: 1, replicas: 1 });
  });
});

describe('standings', () => {
  it('counts the instances each live replica sees reachable; a replica without views sees none', () => {
    const r = route(2); // 4 instances
    const s = standings(r, views(sees('c1', r), sees('c2', r, { unreachable: [M[0], M[1], '10.0.0.2:6379'] })), ['c1', 'c2', 'c3']);
    expect(s).toEqual([
      { controller: 'c1', sees: 4, of: 4, votes: true },
      { controller: 'c2', sees: 1, of: 4, votes: false },
      { controller: 'c3', sees: 0, of: 4, votes: false },
    ]);
  });

  it('seeing exactly half is enough to vote', () => {
    const r = route(1); // master and one slave
    const s = standings(r, views(sees('c1', r, { down: [M[0]] }), sees('c2', r)), ['c1', 'c2']);
    expect(s.map((x) => [x.controller, x.sees, x.votes])).toEqual([
      ['c1', 1, true],
      ['c2', 2, true],
    ]);
  });

  it('when no live replica sees half, all of them vote (an outage everyone sees alike)', () => {
    const r = route(2);
    const blind = [M[0], M[1], '10.0.0.2:6379'];
    const s = standings(r, views(sees('c1', r, { down: blind }), sees('c2', r, { down: blind })), ['c1', 'c2']);
    expect(s.every((x) => x.votes && x.sees === 1)).toBe(true);
  });
});

describe('judgeMasters', () => {
  it('gives one verdict per shard, none down when nobody votes', () => {
    const r = route(2);
    const v = judgeMasters(r, views(sees('c1', r), sees('c2', r)), opts(['c1', 'c2', 'c3']));
    expect(v).toEqual([
      { shard: 's0', master: M[0], down: false, votes: [], needed: 2, replicas: 3, lastOkAt: null },
      { shard: 's1', master: M[1], down: false, votes: [], needed: 2, replicas: 3, lastOkAt: null },
    ]);
  });

  it('a master is down with a majority of the replicas voting down, not with fewer', () => {
    const r = route(1);
    const live = ['c1', 'c2', 'c3'];
    const one = judgeMasters(r, views(sees('c1', r, { down: [M[0]] }), sees('c2', r), sees('c3', r)), opts(live))[0]!;
    expect(one).toMatchObject({ down: false, votes: ['c1'], needed: 2 });
    const two = judgeMasters(r, views(sees('c1', r, { down: [M[0]] }), sees('c2', r, { down: [M[0]] }), sees('c3', r)), opts(live))[0]!;
    expect(two).toMatchObject({ down: true, votes: ['c1', 'c2'] });
  });

  it('counts a majority of the configured replicas: a lone survivor of three cannot decide alone', () => {
    const r = route(1);
    const alone = judgeMasters(r, views(sees('c1', r, { down: [M[0]] })), opts(['c1'], 3))[0]!;
    expect(alone).toMatchObject({ down: false, votes: ['c1'], needed: 2, replicas: 3 });
    // A second replica back, agreeing: 2 of 3.
    const two = judgeMasters(r, views(sees('c1', r, { down: [M[0]] }), sees('c2', r, { down: [M[0]] })), opts(['c1', 'c2'], 3))[0]!;
    expect(two).toMatchObject({ down: true, votes: ['c1', 'c2'], needed: 2 });
  });

  it('a single configured replica decides alone', () => {
    const r = route(1);
    expect(judgeMasters(r, views(sees('c1', r, { down: [M[0]] })), opts(['c1'], 1))[0]).toMatchObject({ down: true, votes: ['c1'], needed: 1 });
  });

  it('with more replicas registered than configured, the quorum is a majority of those registered', () => {
    const r = route(1);
    const v = judgeMasters(r, views(sees('c1', r, { down: [M[0]] }), sees('c2', r, { down: [M[0]] }), sees('c3', r), sees('c4', r)), opts(['c1', 'c2', 'c3', 'c4'], 3))[0]!;
    expect(v).toMatchObject({ down: false, needed: 3, replicas: 4 });
  });

  it('nothing is down when no replica is live', () => {
    const r = route(1);
    const v = judgeMasters(r, views(sees('c1', r, { down: [M[0]] })), opts([], 1))[0]!;
    expect(v).toMatchObject({ down: false, votes: [] });
  });

  it('views of replicas that are not live do not count, toward the votes or the quorum', () => {
    const r = route(1);
    // c9 and c8 are gone from the registry (their lease expired; in etcd their views go with it).
    const all = views(sees('c1', r, { down: [M[0]] }), sees('c9', r, { down: [M[0]] }), sees('c8', r, { down: [M[0]] }), sees('c2', r), sees('c3', r));
    const v = judgeMasters(r, all, opts(['c1', 'c2', 'c3']))[0]!;
    expect(v).toMatchObject({ down: false, votes: ['c1'], needed: 2 });
  });

  it('a view votes however old it is: its replica is live, and it writes only on change', () => {
    const r = route(1);
    const old = { ...view('c2', M[0], { down: true }), observedAt: iso(NOW - 3_600_000) };
    const v = judgeMasters(r, views(sees('c1', r, { down: [M[0]] }), sees('c2', r, { override: [old] })), opts(['c1', 'c2']))[0]!;
    expect(v).toMatchObject({ down: true, votes: ['c1', 'c2'] });
  });

  it('an unreachable master that a replica does not (yet) judge down gets no vote from it', () => {
    const r = route(1);
    const v = judgeMasters(r, views(sees('c1', r, { down: [M[0]] }), sees('c2', r, { unreachable: [M[0]] }), sees('c3', r, { unreachable: [M[0]] })), opts(['c1', 'c2', 'c3']))[0]!;
    expect(v).toMatchObject({ down: false, votes: ['c1'] });
  });

  it('a replica cut off from most instances does not vote while another replica sees them', () => {
    const r = route(2); // 4 instances
    const everything = instancesOf(r);
    // c3 sees nothing and judges both masters down; c1 alone judges M[0] down.
    const v = judgeMasters(r, views(sees('c1', r, { down: [M[0]] }), sees('c2', r), sees('c3', r, { down: everything })), opts(['c1', 'c2', 'c3']));
    expect(v[0]).toMatchObject({ down: false, votes: ['c1'] });
    expect(v[1]).toMatchObject({ down: false, votes: [] });
  });

  it('an outage every replica sees alike is still voted on', () => {
    const r = route(2);
    const three = [M[0], M[1], '10.0.1.2:6379'];
    const v = judgeMasters(r, views(sees('c1', r, { down: three }), sees('c2', r, { down: three })), opts(['c1', 'c2', 'c3']));
    expect(v.map((x) => [x.shard, x.down, x.votes])).toEqual([
      ['s0', true, ['c1', 'c2']],
      ['s1', true, ['c1', 'c2']],
    ]);
  });

  it('a replica without a view of the master does not vote', () => {
    const r = route(1);
    const v = judgeMasters(r, views(sees('c1', r, { down: [M[0]] }), [view('c2', '10.0.0.2:6379')]), opts(['c1', 'c2']))[0]!;
    expect(v).toMatchObject({ down: false, votes: ['c1'] });
  });

  it('judges each shard on its own', () => {
    const r = route(2);
    const v = judgeMasters(r, views(sees('c1', r, { down: [M[0]] }), sees('c2', r, { down: [M[0], M[1]] })), opts(['c1', 'c2']));
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
        sees('c1', r, { override: [view('c1', M[0], { down: true, lastOkAt: NOW - 8000 })] }),
        sees('c2', r, { override: [view('c2', M[0], { down: true, lastOkAt: NOW - 12_000 })] }),
        sees('c3', r, { override: [view('c3', M[0], { down: true, lastOkAt: null })] }),
        // Not a voter: its (earlier) lastOkAt must not count.
        sees('c4', r, { override: [view('c4', M[0], { reachable: false, lastOkAt: NOW - 50_000 })] }),
        // Not live.
        sees('c9', r, { override: [view('c9', M[0], { down: true, lastOkAt: NOW - 90_000 })] }),
      ),
      opts(['c1', 'c2', 'c3', 'c4']),
    )[0]!;
    expect(v).toMatchObject({ down: true, votes: ['c1', 'c2', 'c3'], lastOkAt: NOW - 12_000 });
  });

  it('lastOkAt is null when no voter ever saw the master answer', () => {
    const r = route(1);
    const v = judgeMasters(r, views(sees('c1', r, { override: [view('c1', M[0], { down: true, lastOkAt: null })] })), opts(['c1']))[0]!;
    expect(v).toMatchObject({ down: true, lastOkAt: null });
  });
});

describe('quorumShortfall', () => {
  const r = route(1);
  const shortfall = (all: HealthViews, o: DetectOptions) => quorumShortfall(r, all, judgeMasters(r, all, o)[0]!, o);

  it('says how many configured replicas are needed and how many vote, when every voter agrees but too few vote', () => {
    const reason = shortfall(views(sees('c1', r, { down: [M[0]] })), opts(['c1'], 3));
    expect(reason).toBe(`2 of 3 configured replicas needed, only 1 votes (c1) that ${M[0]} is down; 2 configured replicas are not registered: no failover`);
  });

  it('names a replica that does not vote and why', () => {
    const everything = instancesOf(r);
    const reason = shortfall(views(sees('c1', r, { down: [M[0]] }), sees('c2', r, { down: everything })), opts(['c1', 'c2'], 3));
    expect(reason).toContain('only 1 votes (c1)');
    expect(reason).toContain('1 configured replica is not registered');
    expect(reason).toContain('c2 does not vote: it sees 0 of 2 instances reachable, another replica sees 1');
  });

  it('is null while a replica that may vote does not judge the master down (yet)', () => {
    expect(shortfall(views(sees('c1', r, { down: [M[0]] }), sees('c2', r, { unreachable: [M[0]] })), opts(['c1', 'c2'], 3))).toBeNull();
  });

  it('is null when the quorum is reached, and when nobody votes', () => {
    expect(shortfall(views(sees('c1', r, { down: [M[0]] }), sees('c2', r, { down: [M[0]] })), opts(['c1', 'c2'], 3))).toBeNull();
    expect(shortfall(views(sees('c1', r)), opts(['c1'], 3))).toBeNull();
  });
});

describe('looksIsolated', () => {
  const live = ['self', 'c2', 'c3'];

  it('a replica that sees less than half of the instances while another sees them looks cut off', () => {
    const r = route(3);
    const reason = looksIsolated(r, views(sees('self', r, { down: [M[0], M[1], M[2]], unreachable: ['10.0.0.2:6379'] }), sees('c2', r), sees('c3', r)), 'self', opts(live));
    expect(reason).toBe('self sees 2 of 6 instances reachable while c2 sees 6, c3 sees 6: this replica looks cut off');
  });

  it('seeing half is enough not to', () => {
    const r = route(2);
    expect(looksIsolated(r, views(sees('self', r, { down: [M[0], M[1]] }), sees('c2', r), sees('c3', r)), 'self', opts(live))).toBeNull();
  });

  it('a replica that has published nothing (but others have) looks cut off', () => {
    const r = route(1);
    expect(looksIsolated(r, views(sees('c2', r)), 'self', opts(live))).toContain('self sees 0 of 2 instances reachable');
  });

  it('a replica alone never looks isolated, nor one that sees as little as every other replica', () => {
    const r = route(2);
    const everything = instancesOf(r);
    expect(looksIsolated(r, views(sees('self', r, { down: everything })), 'self', opts(['self']))).toBeNull();
    // Other views are there, but their replicas are not live.
    expect(looksIsolated(r, views(sees('self', r, { down: everything }), sees('c9', r)), 'self', opts(['self']))).toBeNull();
    expect(looksIsolated(r, views(sees('self', r, { down: everything }), sees('c2', r, { down: everything })), 'self', opts(['self', 'c2']))).toBeNull();
  });
});
