/**
 * The README's demo and the playground's printout agree (issues 11 and 14): the writer's key lives
 * on s0, the shard whose master both tell you to kill, both print the same ports and shard, and
 * both scale out onto the playground's spare instances by a shard added and by a split.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { assignUnownedEvenly, keyPlace, newRoute } from '../../src/model/route.js';
import { DEFAULT_SLOTS, type Shard } from '../../src/model/schemas.js';
import { SPARE_PORTS, keyOnFirstShard, tryText } from '../../src/playground/playground.js';

/** The route the playground creates: n shards of a master on 7000+2i and a slave on 7001+2i. */
function playgroundRoute(n: number) {
  const shards: Shard[] = Array.from({ length: n }, (_, i) => ({ id: `s${i}`, master: `127.0.0.1:${7000 + 2 * i}`, slaves: [`127.0.0.1:${7001 + 2 * i}`], slots: [] }));
  return newRoute('demo', DEFAULT_SLOTS, assignUnownedEvenly({ slotCount: DEFAULT_SLOTS, shards }), 1);
}

describe('the demo writer', () => {
  it('writes a key of s0, the shard the README kills, with the playground default and other shard counts', () => {
    const route = playgroundRoute(3);
    expect(keyOnFirstShard(route)).toBe('demo:clicks');
    expect(keyPlace(route, 'demo:clicks')).toMatchObject({ slot: 149, shard: 's0', master: '127.0.0.1:7000' });
    for (const n of [1, 2, 5, 8]) expect(keyPlace(playgroundRoute(n), keyOnFirstShard(playgroundRoute(n))).shard).toBe('s0');
  });

  it('is the one the README writes to, and the README runs what the playground prints', () => {
    const readme = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');
    const demo = readme.slice(readme.indexOf('## Using it'), readme.indexOf('Scale out onto'));
    const route = playgroundRoute(3);
    const printed = tryText({
      proxyPort: 6380,
      etcd: 'http://127.0.0.1:2379',
      cfgctl: 'node /x/dist/cli/cfgctl.js',
      apiPort: 7101,
      shards: route.shards,
      masterPids: [4242],
      writerKey: keyOnFirstShard(route),
      spares: SPARE_PORTS.map((p) => `127.0.0.1:${p}`),
    });
    const commandsOf = (text: string) =>
      text
        .split('\n')
        .map((l) => l.split(' #')[0]!.trim())
        .filter((l) => /^(redis-cli|while|export|cfgctl|kill)/.test(l));
    const readmeCommands = commandsOf(demo.slice(demo.indexOf('```sh'), demo.indexOf('```', demo.indexOf('```sh') + 5)));
    expect(readmeCommands).toContain('while :; do redis-cli -p 6380 incr demo:clicks; sleep 0.2; done');
    expect(readmeCommands).toContain('cfgctl slot demo demo:clicks');
    expect(readmeCommands).toContain('redis-cli -p 7001 replicaof 127.0.0.1 7004');
    expect(readmeCommands).toContain('cfgctl failover demo --shard s2');
    const printedCommands = commandsOf(printed).join('\n');
    // Every README command but the pid the playground fills in is one the playground prints.
    for (const c of readmeCommands.filter((c) => !c.includes('<'))) expect(printedCommands, c).toContain(c);
    expect(printedCommands).toContain('kill -9 4242');
    expect(demo).toContain('kill -9 <pid of the master on 7000>');

    // Scaling out: the README's steps are the printed ones, onto the spares the playground started.
    const scaleOut = readme.slice(readme.indexOf('Scale out onto'), readme.indexOf('And back in'));
    const scaleOutCommands = commandsOf(scaleOut.slice(scaleOut.indexOf('```sh'), scaleOut.indexOf('```', scaleOut.indexOf('```sh') + 5)));
    expect(scaleOutCommands).toEqual([
      'cfgctl shard add demo --master 127.0.0.1:7010 --id s3',
      'cfgctl rebalance demo --dry-run',
      'cfgctl rebalance demo',
      'cfgctl migrations demo --watch',
      'cfgctl route demo',
      'cfgctl shard split demo s0 --new-shard s4 --master 127.0.0.1:7011 --trim-rate 2000',
      'cfgctl splits demo',
      'redis-cli -p 6380 dbsize',
    ]);
    for (const c of scaleOutCommands) expect(printedCommands, c).toContain(c);
    expect(readme).not.toMatch(/redis-server --port 701[01]/);
  });

  it('prints no scale-out steps without spares', () => {
    const route = playgroundRoute(3);
    const printed = tryText({ proxyPort: 6380, etcd: 'e', cfgctl: 'c', apiPort: 7101, shards: route.shards, masterPids: [1], writerKey: 'demo:clicks', spares: [] });
    expect(printed).not.toContain('shard split');
  });
});
