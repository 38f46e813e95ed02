import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { keySlot } from '../../src/model/slot.js';
import { describe, expect, it } from 'vitest';
import { freePort, waitFor } from '../../src/playground/processes.js';
import { cfgctl, cfgctlRunning, randomPrefix, useWorld } from '../helpers/servers.js';

const world = useWorld();

function run(prefix: string, ...args: string[]) {
  return cfgctl(world.etcd.endpoint, prefix, args);
}

async function keysUnder(prefix: string): Promise<string[]> {
  return world.client.getAll().prefix(`${prefix}/`).keys();
}

describe('cfgctl against a real etcd', () => {
  it('creates a cluster from YAML, lists it, shows it, prints its route, deletes it', async () => {
    const prefix = randomPrefix();
    const file = join(world.dir, 'shop.yaml');
    writeFileSync(file, 'slots: 64\nshards:\n  - master: 127.0.0.1:7000\n    slaves: [127.0.0.1:7001]\n  - id: big\n    master: 127.0.0.1:7002\n');
    const created = await run(prefix, 'cluster', 'create', 'shop', '-f', file, '--force');
    expect(created.code).toBe(0);
    expect(created.stdout).toContain('created cluster shop');

    const list = await run(prefix, 'cluster', 'list', '--json');
    expect(JSON.parse(list.stdout)).toEqual([expect.objectContaining({ name: 'shop', slotCount: 64, shards: 2, instances: 3, assignedSlots: 64 })]);
    expect((await run(prefix, 'cluster', 'list')).stdout).toMatch(/shop\s+64\s+64\s+2\s+3/);

    const route = JSON.parse((await run(prefix, 'route', 'shop', '--json')).stdout);
    expect(route).toMatchObject({ format: 1, cluster: 'shop', slotCount: 64, hash: 'crc16' });
    expect(route.shards).toEqual([
      { id: 's0', master: '127.0.0.1:7000', slaves: ['127.0.0.1:7001'], slots: [[0, 31]] },
      { id: 'big', master: '127.0.0.1:7002', slaves: [], slots: [[32, 63]] },
    ]);

    const show = await run(prefix, 'cluster', 'show', 'shop');
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/127\.0\.0\.1:7001\s+slave/);
    expect(show.stdout).toContain('not probed yet');

    const refused = await run(prefix, 'cluster', 'delete', 'shop');
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/needs --yes/);
    expect(await keysUnder(prefix)).not.toEqual([]);
    expect((await run(prefix, 'cluster', 'delete', 'shop', '--yes')).code).toBe(0);
    expect(await keysUnder(prefix)).toEqual([]);
  });

  it('adds a shard with no slots, assigns free slots evenly, refuses to remove an owner', async () => {
    const prefix = randomPrefix();
    expect((await run(prefix, 'cluster', 'create', 'grow', '--slots', '12')).code).toBe(0);
    expect((await run(prefix, 'shard', 'add', 'grow', '--master', '127.0.0.1:7000', '--slave', '127.0.0.1:7001', '--slave', '127.0.0.1:7002', '--force')).code).toBe(0);
    expect((await run(prefix, 'shard', 'add', 'grow', '--master', '127.0.0.1:7003', '--id', 'blue', '--force')).code).toBe(0);
    const before = JSON.parse((await run(prefix, 'route', 'grow', '--json')).stdout);
    expect(before.shards.map((s: { slots: unknown[] }) => s.slots)).toEqual([[], []]);

    const noHow = await run(prefix, 'slots', 'assign', 'grow');
    expect(noHow.code).toBe(2);
    const assign = await run(prefix, 'slots', 'assign', 'grow', '--even', '--json');
    expect(assign.code).toBe(0);
    expect(JSON.parse(assign.stdout).assigned).toBe(12);
    const after = JSON.parse((await run(prefix, 'route', 'grow', '--json')).stdout);
    expect(after.shards.map((s: { slots: unknown[] }) => s.slots)).toEqual([[[0, 5]], [[6, 11]]]);
    expect(after.epoch).toBe(before.epoch + 1);

    const remove = await run(prefix, 'shard', 'remove', 'grow', 'blue');
    expect(remove.code).toBe(5);
    expect(remove.stderr).toMatch(/still owns 6 slots/);
    expect((await run(prefix, 'shard', 'add', 'grow', '--master', '127.0.0.1:7009', '--id', 'spare', '--force')).code).toBe(0);
    expect((await run(prefix, 'shard', 'remove', 'grow', 'spare')).code).toBe(0);
    const final = JSON.parse((await run(prefix, 'route', 'grow', '--json')).stdout);
    expect(final.shards.map((s: { id: string }) => s.id)).toEqual(['s0', 'blue']);
  });

  it('answers bad input with one line on stderr, a non-zero exit, and nothing written', async () => {
    const prefix = randomPrefix();
    const badYaml = join(world.dir, 'bad.yaml');
    writeFileSync(badYaml, 'shards: [ { master: 127.0.0.1:7000 ');
    const wrongField = join(world.dir, 'wrong.yaml');
    writeFileSync(wrongField, 'shards:\n  - master: 127.0.0.1:7000\n    slave: 127.0.0.1:7001\n');
    const cases: [string[], RegExp][] = [
      [['cluster', 'create', 'Not_Valid'], /invalid cluster name/],
      [['cluster', 'create', 'ok', '--slots', '0'], /invalid slot count/],
      [['cluster', 'create', 'ok', '--slots', '99999'], /invalid slot count/],
      [['cluster', 'create', 'ok', '-f', badYaml], /not valid YAML/],
      [['cluster', 'create', 'ok', '-f', wrongField], /invalid cluster file: .*slave/],
      [['cluster', 'create', 'ok', '-f', join(world.dir, 'missing.yaml')], /cannot read/],
      [['shard', 'add', 'nosuch', '--master', '127.0.0.1:1'], /cluster nosuch does not exist/],
      [['cluster', 'frobnicate'], /Unknown argument|Unknown command/i],
      [['shard', 'add', 'x'], /Missing required argument: master/],
      [['shard', 'add', 'x', '--mastr', '127.0.0.1:1'], /unknown option --mastr \(did you mean --master\?\)/],
      [['history', 'x', '--limit', 'abc'], /--limit must be a whole number from 1 to 1000/],
      [['history', 'x', '--limit', '-3'], /--limit must be a whole number from 1 to 1000, not -3/],
      [['migrations', 'x', '--watch', '--interval', '0'], /--interval must be a number from 0.2/],
      [['--timeout', 'soon', 'cluster', 'list'], /--timeout must be a whole number/],
    ];
    for (const [args, message] of cases) {
      const result = await run(prefix, ...args);
      expect(result.code, args.join(' ')).not.toBe(0);
      expect(result.stderr, args.join(' ')).toMatch(message);
      expect(result.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(result.stdout, args.join(' ')).toBe('');
    }
    expect(await keysUnder(prefix)).toEqual([]);

    expect((await run(prefix, 'cluster', 'create', 'ok')).code).toBe(0);
    const again = await run(prefix, 'cluster', 'create', 'ok');
    expect(again.code).toBe(4);
    expect(again.stderr).toMatch(/already exists/);
    const badAddr = await run(prefix, 'shard', 'add', 'ok', '--master', '127.0.0.1:99999');
    expect(badAddr.code).toBe(2);
    expect(badAddr.stderr).toMatch(/port in 1\.\.65535/);
  });

  it('changes settings, pauses and resumes; an invalid setting changes nothing', async () => {
    const prefix = randomPrefix();
    expect((await run(prefix, 'cluster', 'create', 'knobs')).code).toBe(0);
    const set = await run(prefix, 'cluster', 'set', 'knobs', '--down-after-ms', '1500', '--no-auto-failover', '--max-failovers', '7', '--json');
    expect(set.code).toBe(0);
    const spec = (await world.admin(prefix).getCluster('knobs')).spec;
    expect(spec.probe).toEqual({ intervalMs: 1000, timeoutMs: 500, downAfterMs: 1500 });
    expect(spec.failover).toMatchObject({ auto: false, maxPerWindow: 7 });

    const bad = await run(prefix, 'cluster', 'set', 'knobs', '--probe-interval-ms', '10', '--down-after-ms', '2000');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/invalid settings: probe\.intervalMs/);
    expect((await world.admin(prefix).getCluster('knobs')).spec).toEqual(spec);

    expect((await run(prefix, 'cluster', 'pause', 'knobs')).stdout).toBe('paused cluster knobs\n');
    expect((await run(prefix, 'cluster', 'pause', 'knobs')).stdout).toBe('cluster knobs was already paused\n');
    expect((await world.admin(prefix).getCluster('knobs')).spec.paused).toBe(true);
    expect((await run(prefix, 'cluster', 'resume', 'knobs')).stdout).toBe('resumed cluster knobs\n');
    expect((await world.admin(prefix).getCluster('knobs')).spec.paused).toBe(false);
    expect((await run(prefix, 'cluster', 'pause', 'missing')).code).toBe(3);
    // Where a key lives.
    const slot = await run(prefix, 'slot', 'knobs', 'user:{42}:name');
    expect(slot.code, slot.stderr).toBe(0);
    expect(slot.stdout).toMatch(new RegExp(`^key user:\\{42\\}:name in cluster knobs: slot ${keySlot('{42}', 1024)}, `));
    const typo = await run(prefix, 'cluster', 'show', 'knbos');
    expect(typo.code).toBe(3);
    expect(typo.stderr).toBe('cfgctl: cluster knbos does not exist (did you mean knobs?)\n');
    expect((await run(prefix, '--version')).stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('--watch shows a listing again as it changes, until stopped', async () => {
    const prefix = randomPrefix();
    expect((await run(prefix, 'cluster', 'create', 'watched')).code).toBe(0);
    const watching = cfgctlRunning(world.etcd.endpoint, prefix, ['cluster', 'show', 'watched', '--no-live', '--watch', '--interval', '0.2']);
    try {
      await waitFor('the first look', async () => /cluster watched: 1024 slots/.test(watching.output()));
      expect(watching.output()).not.toMatch(/PAUSED/);
      await world.admin(prefix).setPaused('watched', true);
      await waitFor('the change shown', async () => /--- \S+\ncluster watched: .*PAUSED/.test(watching.output()));
      // Not a terminal: a block only when it changed.
      expect(watching.output().match(/^--- /gm)).toHaveLength(2);
    } finally {
      watching.stop();
    }
  });

  it('fails fast with one clear line when etcd is unreachable', async () => {
    const port = await freePort();
    const started = Date.now();
    const result = await cfgctl(`http://127.0.0.1:${port}`, randomPrefix(), ['--timeout', '1000', 'cluster', 'list']);
    expect(result.code).toBe(6);
    expect(result.stderr).toBe(`cfgctl: cannot reach etcd at http://127.0.0.1:${port}: connection refused (127.0.0.1:${port}) (--etcd or $CFGSERVER_ETCD say where it is)\n`);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it('reads the etcd endpoint from CFGSERVER_ETCD', async () => {
    const prefix = randomPrefix();
    await world.admin(prefix).createCluster({ name: 'envy' });
    const { execFile } = await import('node:child_process');
    const { packageRoot } = await import('../../src/playground/processes.js');
    const out = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, [join(packageRoot(), 'dist/cli/cfgctl.js'), '--prefix', prefix, 'cluster', 'list', '--json'], { env: { ...process.env, CFGSERVER_ETCD: world.etcd.endpoint } }, (err, stdout) =>
        err ? reject(err) : resolve(stdout),
      ),
    );
    expect(JSON.parse(out).map((c: { name: string }) => c.name)).toEqual(['envy']);
  });

  it('shows --help for every command', async () => {
    for (const args of [['--help'], ['cluster', '--help'], ['cluster', 'create', '--help'], ['shard', 'add', '--help'], ['slots', 'assign', '--help'], ['controllers', '--help']]) {
      const result = await run(randomPrefix(), ...args);
      expect(result.code, args.join(' ')).toBe(0);
      expect(result.stdout, args.join(' ')).toMatch(/--etcd/);
    }
  });
});
