/**
 * The README's demo and the playground's printout agree (issue 11): the writer's key lives on s0,
 * the shard whose master both tell you to kill, and both print the same ports and shard.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { assignUnownedEvenly, keyPlace, newRoute } from '../../src/model/route.js';
import { DEFAULT_SLOTS, type Shard } from '../../src/model/schemas.js';
import { keyOnFirstShard, tryText } from '../../src/playground/playground.js';

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
    const demo = readme.slice(readme.indexOf('## Using it'), readme.indexOf('Scale out to a fourth shard'));
    const route = playgroundRoute(3);
    const printed = tryText({
      proxyPort: 6380,
      etcd: 'http://127.0.0.1:2379',
      cfgctl: 'node /x/dist/cli/cfgctl.js',
      apiPort: 7101,
      shards: route.shards,
      masterPids: [4242],
      writerKey: keyOnFirstShard(route),
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
  });
});
