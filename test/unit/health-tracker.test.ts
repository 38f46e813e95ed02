import { describe, it, expect } from 'vitest';
import { HealthTracker } from '../../src/controller/health-tracker.js';
import type { Observation } from '../../src/model/observations.js';
import type { ReplicationInfo } from '../../src/model/replication-info.js';
import { instanceHealthSchema } from '../../src/model/schemas.js';

const ADDR = '10.0.0.1:6379';
const T0 = Date.parse('2024-01-01T00:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();
/** A down window the tests of publishing never reach (the largest a cluster spec allows). */
const NEVER_DOWN = 600_000;
/** The default down window of a cluster spec. */
const DOWN = 3000;

function asMaster(t: number, offset = 100, connectedSlaves = 1): Observation {
  const info: ReplicationInfo = { role: 'master', masterAddress: null, linkUp: null, linkDownSinceSec: null, offset, connectedSlaves, replId: 'r', replId2: null, secondReplOffset: null, masterReplOffset: offset, keys: 0, priority: null };
  return { address: ADDR, at: new Date(t), latencyMs: 1, info, error: null };
}

function asSlave(t: number, of = '10.0.0.9:6379', linkUp = true, offset = 100, priority: number | null = 100): Observation {
  const info: ReplicationInfo = {
    role: 'slave',
    masterAddress: of,
    linkUp,
    linkDownSinceSec: linkUp ? null : 3,
    offset,
    connectedSlaves: 0,
    replId: 'r',
    replId2: null,
    secondReplOffset: null,
    masterReplOffset: offset,
    keys: 0,
    priority,
  };
  return { address: ADDR, at: new Date(t), latencyMs: 1, info, error: null };
}

function unreachable(t: number, error = 'connect ECONNREFUSED'): Observation {
  return { address: ADDR, at: new Date(t), latencyMs: 500, info: null, error };
}

/**
 * One probe at time t. `now` is left to its default (the probe time, as in the controller), and
 * the down window is one these tests never reach unless they pass another.
 */
function update(tracker: HealthTracker, obs: Observation, cluster = 'main', downAfterMs = NEVER_DOWN) {
  return tracker.update(cluster, obs, downAfterMs);
}

/** One probe at time t, judged with the default down window. */
function step(tracker: HealthTracker, obs: Observation, cluster = 'main') {
  return tracker.update(cluster, obs, DOWN);
}

describe('HealthTracker', () => {
  it('publishes the first observation, as a valid health view', () => {
    const tracker = new HealthTracker('ctl-1');
    const h = update(tracker, asMaster(T0, 123, 2));
    expect(h).not.toBeNull();
    expect(instanceHealthSchema.safeParse(h).success).toBe(true);
    // Nothing is left for the schema's defaults to fill in.
    expect(instanceHealthSchema.parse(h)).toEqual(h);
    expect(h).toEqual({
      address: ADDR,
      reachable: true,
      down: false,
      role: 'master',
      masterAddress: null,
      linkUp: null,
      linkDownSinceSec: null,
      offset: 123,
      connectedSlaves: 2,
      priority: null,
      replId: 'r',
      error: null,
      lastOkAt: iso(T0),
      since: iso(T0),
      observedAt: iso(T0),
      controller: 'ctl-1',
    });
    expect(tracker.last('main', ADDR)).toEqual(h);
  });

  it('publishes a first observation of an unreachable instance with lastOkAt null', () => {
    const tracker = new HealthTracker('ctl-1');
    const h = update(tracker, unreachable(T0, 'timeout'));
    expect(h).toMatchObject({ reachable: false, down: false, role: 'unknown', offset: null, priority: null, replId: null, error: 'timeout', lastOkAt: null, since: iso(T0) });
    expect(instanceHealthSchema.safeParse(h).success).toBe(true);
  });

  it('publishes a slave with its master, link, priority and replication id', () => {
    const tracker = new HealthTracker('ctl-1');
    const h = update(tracker, asSlave(T0, '10.0.0.9:6379', true, 42, 0));
    expect(h).toEqual({
      address: ADDR,
      reachable: true,
      down: false,
      role: 'slave',
      masterAddress: '10.0.0.9:6379',
      linkUp: true,
      linkDownSinceSec: null,
      offset: 42,
      connectedSlaves: 0,
      priority: 0,
      replId: 'r',
      error: null,
      lastOkAt: iso(T0),
      since: iso(T0),
      observedAt: iso(T0),
      controller: 'ctl-1',
    });
    expect(instanceHealthSchema.parse(h)).toEqual(h);
  });

  it('does not publish an identical observation again, however much time passes', () => {
    const tracker = new HealthTracker('ctl-1');
    expect(update(tracker, asMaster(T0))).not.toBeNull();
    expect(update(tracker, asMaster(T0 + 1000))).toBeNull();
    // An hour of identical probes: nothing to write (an idle cluster writes nothing to etcd).
    for (let t = T0 + 5000; t <= T0 + 3_600_000; t += 5000) expect(update(tracker, asMaster(t))).toBeNull();
    // What was last published is still the first view.
    expect(tracker.last('main', ADDR)?.observedAt).toBe(iso(T0));
  });

  it('does not publish a mere offset change, ever', () => {
    const tracker = new HealthTracker('ctl-1');
    update(tracker, asSlave(T0, undefined, true, 100));
    expect(update(tracker, asSlave(T0 + 1000, undefined, true, 999))).toBeNull();
    expect(update(tracker, asSlave(T0 + 600_000, undefined, true, 5_000_000))).toBeNull();
    expect(tracker.last('main', ADDR)?.offset).toBe(100);
  });

  it('does not publish a priority, replication id or connected-slaves change', () => {
    const tracker = new HealthTracker('ctl-1');
    update(tracker, asSlave(T0, undefined, true, 100, 100));
    expect(update(tracker, asSlave(T0 + 1000, undefined, true, 100, 0))).toBeNull();
    expect(update(tracker, asSlave(T0 + 600_000, undefined, true, 100, 0))).toBeNull();
    update(tracker, asMaster(T0 + 600_001, 100, 1), 'other');
    expect(update(tracker, asMaster(T0 + 600_002, 100, 2), 'other')).toBeNull();
  });

  it('a state change carries the offset and observedAt of the probe that saw it, and keeps since when the state comes back', () => {
    const tracker = new HealthTracker('ctl-1');
    update(tracker, asSlave(T0, undefined, true, 100));
    expect(update(tracker, asSlave(T0 + 1000, undefined, true, 150))).toBeNull();
    const down = update(tracker, asSlave(T0 + 2000, undefined, false, 200));
    expect(down).toMatchObject({ linkUp: false, offset: 200, observedAt: iso(T0 + 2000), since: iso(T0 + 2000) });
  });

  it('publishes at once when an instance becomes unreachable, with a new since', () => {
    const tracker = new HealthTracker('ctl-1');
    update(tracker, asMaster(T0));
    const h = update(tracker, unreachable(T0 + 100, 'connect ECONNREFUSED'));
    expect(h).not.toBeNull();
    expect(h).toMatchObject({
      reachable: false,
      down: false,
      role: 'unknown',
      masterAddress: null,
      offset: null,
      connectedSlaves: null,
      priority: null,
      replId: null,
      error: 'connect ECONNREFUSED',
      since: iso(T0 + 100),
      observedAt: iso(T0 + 100),
      lastOkAt: iso(T0),
    });
  });

  it('publishes at once when an instance comes back', () => {
    const tracker = new HealthTracker('ctl-1');
    update(tracker, unreachable(T0));
    const h = update(tracker, asMaster(T0 + 100));
    expect(h).toMatchObject({ reachable: true, role: 'master', since: iso(T0 + 100), lastOkAt: iso(T0 + 100), error: null });
  });

  it('publishes at once on a role change', () => {
    const tracker = new HealthTracker('ctl-1');
    update(tracker, asMaster(T0));
    const h = update(tracker, asSlave(T0 + 100, '10.0.0.9:6379'));
    expect(h).toMatchObject({ role: 'slave', masterAddress: '10.0.0.9:6379', since: iso(T0 + 100) });
    const back = update(tracker, asMaster(T0 + 200));
    expect(back).toMatchObject({ role: 'master', since: iso(T0 + 200) });
  });

  it('publishes at once when a slave changes master or its link goes down', () => {
    const tracker = new HealthTracker('ctl-1');
    update(tracker, asSlave(T0, '10.0.0.9:6379'));
    expect(update(tracker, asSlave(T0 + 100, '10.0.0.8:6379'))).toMatchObject({ masterAddress: '10.0.0.8:6379', since: iso(T0 + 100) });
    expect(update(tracker, asSlave(T0 + 200, '10.0.0.8:6379', false))).toMatchObject({ linkUp: false, linkDownSinceSec: 3, since: iso(T0 + 200) });
  });

  it('does not publish a changed error message while the instance stays unreachable', () => {
    const tracker = new HealthTracker('ctl-1');
    update(tracker, unreachable(T0, 'timeout'));
    expect(update(tracker, unreachable(T0 + 1000, 'connect ECONNREFUSED'))).toBeNull();
  });

  it('keeps since, and lastOkAt, while an instance stays unreachable', () => {
    const tracker = new HealthTracker('ctl-1');
    update(tracker, asMaster(T0));
    update(tracker, unreachable(T0 + 1000));
    expect(update(tracker, unreachable(T0 + 2000))).toBeNull();
    // The down verdict changes the view: it keeps the time the state began and the last good probe.
    const h = tracker.update('main', unreachable(T0 + 1000 + DOWN), DOWN);
    expect(h).not.toBeNull();
    expect(h!.since).toBe(iso(T0 + 1000));
    expect(h!.observedAt).toBe(iso(T0 + 1000 + DOWN));
    expect(h!.lastOkAt).toBe(iso(T0));
  });

  it('reports lastOkAt from the last good probe, even one that was not published', () => {
    const tracker = new HealthTracker('ctl-1');
    expect(update(tracker, asMaster(T0))).not.toBeNull();
    // A good probe that changes nothing: not published...
    expect(update(tracker, asMaster(T0 + 3000))).toBeNull();
    // ...but it is the last time the instance answered.
    const h = update(tracker, unreachable(T0 + 4000));
    expect(h).not.toBeNull();
    expect(h!.lastOkAt).toBe(iso(T0 + 3000));
  });

  it('tracks each cluster/address separately', () => {
    const tracker = new HealthTracker('ctl-1');
    expect(update(tracker, asMaster(T0), 'a')).not.toBeNull();
    expect(update(tracker, asMaster(T0 + 10), 'b')).not.toBeNull();
    const other: Observation = { ...asMaster(T0 + 20), address: '10.0.0.2:6379' };
    expect(update(tracker, other, 'a')).not.toBeNull();
    expect(update(tracker, asMaster(T0 + 30), 'a')).toBeNull();
    expect(tracker.last('b', ADDR)?.observedAt).toBe(iso(T0 + 10));
    expect(tracker.last('c', ADDR)).toBeUndefined();
  });

  it('reset(cluster) forgets only that cluster; hasPublished says whether anything of it is out', () => {
    const tracker = new HealthTracker('ctl-1');
    expect(tracker.hasPublished('a')).toBe(false);
    update(tracker, asMaster(T0), 'a');
    update(tracker, asMaster(T0), 'b');
    expect(tracker.hasPublished('a')).toBe(true);
    tracker.reset('a');
    expect(tracker.hasPublished('a')).toBe(false);
    expect(tracker.hasPublished('b')).toBe(true);
    // The withdrawn cluster is published in full on its next round; the other is not rewritten.
    expect(update(tracker, asMaster(T0 + 1000), 'a')).not.toBeNull();
    expect(update(tracker, asMaster(T0 + 1000), 'b')).toBeNull();
  });

  it('reset(cluster) keeps the down window going', () => {
    const tracker = new HealthTracker('ctl-1');
    step(tracker, asMaster(T0));
    step(tracker, unreachable(T0 + 1000));
    tracker.reset('main');
    expect(step(tracker, unreachable(T0 + DOWN))).toMatchObject({ reachable: false, down: true, lastOkAt: iso(T0) });
  });

  it('publishes again after reset()', () => {
    const tracker = new HealthTracker('ctl-1');
    update(tracker, asMaster(T0));
    expect(update(tracker, asMaster(T0 + 1000))).toBeNull();
    tracker.reset();
    expect(tracker.last('main', ADDR)).toBeUndefined();
    const h = update(tracker, asMaster(T0 + 2000));
    expect(h).not.toBeNull();
    expect(h!.since).toBe(iso(T0 + 2000));
    expect(update(tracker, asMaster(T0 + 3000))).toBeNull();
  });
});

describe('HealthTracker: down', () => {
  it('is false on the first failures after a good probe, and true once they last downAfterMs from it', () => {
    const tracker = new HealthTracker('ctl-1');
    expect(step(tracker, asMaster(T0))).toMatchObject({ reachable: true, down: false });
    expect(step(tracker, unreachable(T0 + 1000))).toMatchObject({ reachable: false, down: false, lastOkAt: iso(T0) });
    expect(step(tracker, unreachable(T0 + 2000))).toBeNull();
    expect(step(tracker, unreachable(T0 + DOWN - 1))).toBeNull();
    expect(tracker.last('main', ADDR)?.down).toBe(false);
    // downAfterMs after the last good probe (not after the first failure, at T0 + 1000).
    const h = step(tracker, unreachable(T0 + DOWN));
    expect(h).not.toBeNull();
    expect(h).toMatchObject({ reachable: false, down: true, lastOkAt: iso(T0), observedAt: iso(T0 + DOWN) });
    expect(instanceHealthSchema.safeParse(h).success).toBe(true);
    expect(tracker.last('main', ADDR)?.down).toBe(true);
    // Staying down changes nothing to publish.
    expect(step(tracker, unreachable(T0 + DOWN + 1000))).toBeNull();
  });

  it('publishes the flip to down at once', () => {
    const tracker = new HealthTracker('ctl-1');
    step(tracker, asMaster(T0));
    expect(step(tracker, unreachable(T0 + 500))).toMatchObject({ down: false });
    for (let t = T0 + 1000; t < T0 + DOWN; t += 500) expect(step(tracker, unreachable(t))).toBeNull();
    expect(step(tracker, unreachable(T0 + DOWN))).toMatchObject({ down: true, observedAt: iso(T0 + DOWN) });
  });

  it('is measured from the first failure when the instance was never seen good', () => {
    const tracker = new HealthTracker('ctl-1');
    expect(step(tracker, unreachable(T0 + 500))).toMatchObject({ reachable: false, down: false, lastOkAt: null });
    expect(step(tracker, unreachable(T0 + 1500))).toBeNull();
    expect(step(tracker, unreachable(T0 + 500 + DOWN - 1))).toBeNull();
    expect(tracker.last('main', ADDR)?.down).toBe(false);
    expect(step(tracker, unreachable(T0 + 500 + DOWN))).toMatchObject({ reachable: false, down: true, lastOkAt: null });
  });

  it('goes back to false on a good probe, and counts the next failures from that probe', () => {
    const tracker = new HealthTracker('ctl-1');
    step(tracker, asMaster(T0));
    step(tracker, unreachable(T0 + 1000));
    expect(step(tracker, unreachable(T0 + DOWN))).toMatchObject({ down: true });
    const back = step(tracker, asMaster(T0 + DOWN + 500));
    expect(back).toMatchObject({ reachable: true, down: false, role: 'master', lastOkAt: iso(T0 + DOWN + 500), since: iso(T0 + DOWN + 500) });
    // A new failure right after is not down: the old run of failures is over.
    expect(step(tracker, unreachable(T0 + DOWN + 1000))).toMatchObject({ reachable: false, down: false, lastOkAt: iso(T0 + DOWN + 500) });
    expect(step(tracker, unreachable(T0 + DOWN + 500 + DOWN - 1))).toBeNull();
    expect(step(tracker, unreachable(T0 + DOWN + 500 + DOWN))).toMatchObject({ down: true });
  });

  it('goes back to false on a good probe of an instance never seen good before', () => {
    const tracker = new HealthTracker('ctl-1');
    step(tracker, unreachable(T0));
    expect(step(tracker, unreachable(T0 + DOWN))).toMatchObject({ down: true, lastOkAt: null });
    expect(step(tracker, asSlave(T0 + DOWN + 100))).toMatchObject({ reachable: true, down: false, lastOkAt: iso(T0 + DOWN + 100) });
    expect(step(tracker, unreachable(T0 + DOWN + 200))).toMatchObject({ down: false });
  });

  it('never sets down for one failed probe between good ones', () => {
    const tracker = new HealthTracker('ctl-1');
    // Probes every second for a minute, every other one failing: no run of failures reaches 3 s.
    for (let i = 0; i <= 60; i++) {
      const t = T0 + i * 1000;
      const h = step(tracker, i % 2 ? unreachable(t) : asMaster(t));
      // Each probe flips reachable, so each one is published.
      expect(h).toMatchObject({ reachable: i % 2 === 0, down: false });
    }
    // Nor for two failed probes in a row, 2 s from the last good one.
    step(tracker, unreachable(T0 + 61_000));
    expect(step(tracker, unreachable(T0 + 62_000))).toBeNull();
    expect(tracker.last('main', ADDR)?.down).toBe(false);
  });

  it('uses the down window passed with each probe', () => {
    const tracker = new HealthTracker('ctl-1');
    step(tracker, asMaster(T0));
    tracker.update('main', unreachable(T0 + 1000), DOWN);
    expect(tracker.update('main', unreachable(T0 + 2000), DOWN)).toBeNull();
    // The cluster's window was shortened to 2 s: 2 s without a good probe is now down.
    expect(tracker.update('main', unreachable(T0 + 2000), 2000)).toMatchObject({ down: true });
  });

  it('keeps each cluster/address apart', () => {
    const tracker = new HealthTracker('ctl-1');
    step(tracker, asMaster(T0), 'a');
    step(tracker, unreachable(T0), 'b');
    step(tracker, unreachable(T0 + 1000), 'a');
    // b has failed since T0, a only since its good probe at T0.
    expect(step(tracker, unreachable(T0 + DOWN), 'b')).toMatchObject({ down: true, lastOkAt: null });
    expect(step(tracker, unreachable(T0 + 2000), 'a')).toBeNull();
    expect(tracker.last('a', ADDR)).toMatchObject({ down: false, lastOkAt: iso(T0) });
  });
});

describe('HealthTracker: reset and retain', () => {
  it('reset() forgets what was published but keeps the probe times', () => {
    const tracker = new HealthTracker('ctl-1');
    step(tracker, asMaster(T0));
    step(tracker, unreachable(T0 + 1000));
    tracker.reset();
    expect(tracker.last('main', ADDR)).toBeUndefined();
    // The first view after reset() is published, and still knows the good probe before it.
    expect(step(tracker, unreachable(T0 + 2000))).toMatchObject({ reachable: false, down: false, lastOkAt: iso(T0), since: iso(T0 + 2000) });
    // Down is still measured from that good probe, not from the reset.
    expect(step(tracker, unreachable(T0 + DOWN))).toMatchObject({ down: true, lastOkAt: iso(T0) });
  });

  it('reset() keeps the start of a run of failures of an instance never seen good', () => {
    const tracker = new HealthTracker('ctl-1');
    step(tracker, unreachable(T0));
    tracker.reset();
    expect(step(tracker, unreachable(T0 + DOWN))).toMatchObject({ down: true, lastOkAt: null });
  });

  it('retain() drops instances whose cluster/address key is not in the set, with their probe times', () => {
    const tracker = new HealthTracker('ctl-1');
    const other = (obs: Observation): Observation => ({ ...obs, address: '10.0.0.2:6379' });
    step(tracker, asMaster(T0), 'a');
    step(tracker, asMaster(T0), 'b');
    step(tracker, other(asMaster(T0)), 'a');
    tracker.retain(new Set([`a/${ADDR}`, 'c/10.0.0.2:6379']));
    // Kept: nothing new to publish.
    expect(tracker.last('a', ADDR)).toBeDefined();
    expect(step(tracker, asMaster(T0 + 1000), 'a')).toBeNull();
    // Dropped: the same address in another cluster, and another address in a kept cluster.
    expect(tracker.last('b', ADDR)).toBeUndefined();
    expect(tracker.last('a', '10.0.0.2:6379')).toBeUndefined();
    // A dropped instance starts afresh: no last good probe, and its failures count from the first.
    expect(step(tracker, unreachable(T0 + DOWN), 'b')).toMatchObject({ reachable: false, down: false, lastOkAt: null, since: iso(T0 + DOWN) });
    expect(step(tracker, unreachable(T0 + 2 * DOWN - 1), 'b')).toBeNull();
    expect(step(tracker, unreachable(T0 + 2 * DOWN), 'b')).toMatchObject({ down: true });
  });

  it('retain() with an empty set forgets everything', () => {
    const tracker = new HealthTracker('ctl-1');
    step(tracker, asMaster(T0));
    tracker.retain(new Set());
    expect(tracker.last('main', ADDR)).toBeUndefined();
    expect(step(tracker, asMaster(T0 + 1000))).toMatchObject({ since: iso(T0 + 1000) });
  });
});
