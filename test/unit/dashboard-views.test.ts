import { describe, expect, it } from 'vitest';
import { replicaViews } from '../../src/service/dashboard-service.js';
import type { InstanceHealth } from '../../src/model/schemas.js';

function seen(controller: string, address: string, reachable: boolean): InstanceHealth {
  const at = '2026-12-03T00:00:00.000Z';
  return { address, reachable, down: !reachable, role: reachable ? 'master' : 'unknown', masterAddress: null, linkUp: null, linkDownSinceSec: null, offset: null, connectedSlaves: null, priority: null, replId: null, error: reachable ? null : 'refused', lastOkAt: null, since: at, observedAt: at, controller };
}

describe('replicaViews: every replica\'s own view, for the dashboard', () => {
  it('puts the leader first, then the others by id; marks a replica that is gone; instances by address', () => {
    const views = new Map([
      ['c3', new Map([['10.0.0.2:6379', seen('c3', '10.0.0.2:6379', true)], ['10.0.0.1:6379', seen('c3', '10.0.0.1:6379', false)]])],
      ['c1', new Map([['10.0.0.1:6379', seen('c1', '10.0.0.1:6379', true)]])],
      ['c2', new Map([['10.0.0.1:6379', seen('c2', '10.0.0.1:6379', true)]])],
    ]);
    const out = replicaViews(views, [{ id: 'c1', leader: false }, { id: 'c3', leader: true }]);
    expect(out.map((v) => [v.controller, v.leader, v.live])).toEqual([['c3', true, true], ['c1', false, true], ['c2', false, false]]);
    expect(out[0]!.instances.map((i) => [i.address, i.reachable])).toEqual([['10.0.0.1:6379', false], ['10.0.0.2:6379', true]]);
  });

  it('is empty when no replica has seen anything yet', () => {
    expect(replicaViews(new Map(), [{ id: 'c1', leader: true }])).toEqual([]);
  });
});
