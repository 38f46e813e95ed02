import { describe, expect, it } from 'vitest';
import { blindSpots, reachableByMajority, stepAsideReason, unreachableByMajority } from '../../src/controller/sight.js';
import { instanceHealthSchema, type InstanceHealth } from '../../src/model/schemas.js';
import type { HealthViews } from '../../src/model/observations.js';

const A = '10.0.0.1:6379';
const B = '10.0.0.2:6379';
const C = '10.0.0.3:6379';
const INSTANCES = [A, B, C];
const VOTERS = ['c1', 'c2', 'c3'];

function seen(controller: string, address: string, state: 'up' | 'unreachable' | 'down'): InstanceHealth {
  const reachable = state === 'up';
  return instanceHealthSchema.parse({
    address, reachable, down: state === 'down', role: reachable ? 'master' : 'unknown', masterAddress: null, linkUp: null,
    linkDownSinceSec: null, offset: null, connectedSlaves: null, priority: null, replId: null, error: reachable ? null : 'refused',
    lastOkAt: null, since: '2026-01-01T00:00:00Z', observedAt: '2026-01-01T00:00:00Z', controller,
  });
}

/** views({ c1: { A: 'down' } }): every instance up for every voter unless said otherwise. */
function views(overrides: Record<string, Record<string, 'up' | 'unreachable' | 'down'>>, voters = VOTERS): HealthViews {
  const out: HealthViews = new Map();
  for (const c of voters) out.set(c, new Map(INSTANCES.map((a) => [a, seen(c, a, overrides[c]?.[a] ?? 'up')])));
  return out;
}

describe('what a replica sees against the majority', () => {
  it('an instance is reachable by the majority when enough replicas saw it answer', () => {
    const v = views({ c1: { [A]: 'down' }, c2: { [A]: 'unreachable' } });
    expect([...reachableByMajority(INSTANCES, v, VOTERS, 2)]).toEqual([B, C]);
    expect(blindSpots(reachableByMajority(INSTANCES, v, VOTERS, 2), v, 'c1')).toEqual([]);
  });

  it('a leader that judges down what the majority reaches steps aside for a replica that sees more', () => {
    const v = views({ c1: { [A]: 'down', [B]: 'down' } });
    expect(blindSpots(reachableByMajority(INSTANCES, v, VOTERS, 2), v, 'c1')).toEqual([A, B]);
    expect(stepAsideReason(INSTANCES, v, 'c1', VOTERS, 2)).toMatch(/c1 cannot reach 10.0.0.1:6379, 10.0.0.2:6379, which 2\+ of the replicas .* reach; c2, c3 see more/);
    expect(stepAsideReason(INSTANCES, v, 'c2', VOTERS, 2)).toBeNull();
  });

  it('a leader stays when nobody would see more, or when it sees as much as the majority', () => {
    // Every replica is blind to one instance: the majority does not reach any of them twice.
    expect(stepAsideReason(INSTANCES, views({ c1: { [A]: 'down' }, c2: { [A]: 'down' }, c3: { [A]: 'down' } }), 'c1', VOTERS, 2)).toBeNull();
    // Only unreachable (not yet judged down): one failed probe is not blindness.
    expect(stepAsideReason(INSTANCES, views({ c1: { [A]: 'unreachable' } }), 'c1', VOTERS, 2)).toBeNull();
    // The other replicas are blind to as much.
    expect(stepAsideReason(INSTANCES, views({ c1: { [A]: 'down' }, c2: { [B]: 'down' }, c3: { [C]: 'down' } }), 'c1', VOTERS, 2)).toBeNull();
  });

  it('a slave that a majority cannot reach is not to be promoted, whatever the leader sees', () => {
    const v = views({ c2: { [B]: 'unreachable' }, c3: { [B]: 'down' }, c1: { [C]: 'unreachable' } });
    const excluded = unreachableByMajority(INSTANCES, v, VOTERS, 2);
    expect([...excluded.keys()]).toEqual([B]);
    expect(excluded.get(B)).toMatch(/unreachable from 2 replicas \(c2, c3\), a majority/);
  });
});
