// The front page: every cluster, and the controller replicas. Pure: data in, nodes out.
import { ago, badge, h, section, table } from './dom.js';

export function listView(clusters, controllers) {
  return h(
    'div',
    {},
    section(
      'Clusters',
      clusters.clusters.length === 0
        ? h('p', { class: 'muted' }, 'No cluster yet: cfgctl cluster create NAME -f cluster.yaml')
        : table(
            ['cluster', 'shards', 'instances', 'slots assigned', 'route epoch', ''],
            clusters.clusters.map((c) =>
              h(
                'tr',
                { dataset: { cluster: c.name } },
                h('td', {}, h('a', { href: `#/cluster/${encodeURIComponent(c.name)}` }, c.name)),
                h('td', { class: 'num' }, String(c.shards)),
                h('td', { class: 'num' }, String(c.instances)),
                h('td', { class: 'num' }, `${c.assignedSlots} of ${c.slotCount}`),
                h('td', { class: 'num' }, String(c.epoch)),
                h('td', {}, c.paused ? badge('paused', 'warn') : ''),
              ),
            ),
          ),
      { id: 'clusters' },
    ),
    clusters.problems.length ? section('Problems', h('ul', { class: 'problems' }, clusters.problems.map((p) => h('li', {}, p)))) : null,
    section(
      'Controller replicas',
      table(
        ['replica', 'API', 'version', 'pid', 'started', ''],
        controllers.controllers.map((c) =>
          h(
            'tr',
            { dataset: { controller: c.id } },
            h('td', { class: 'mono' }, c.id),
            h('td', { class: 'mono' }, c.address ? h('a', { href: `${c.address.startsWith('http') ? '' : 'http://'}${c.address}/ui/` }, c.address) : '—'),
            h('td', {}, c.version),
            h('td', { class: 'num' }, String(c.pid)),
            h('td', {}, ago(c.startedAt)),
            h('td', {}, c.leader ? badge('leader', 'ok') : ''),
          ),
        ),
      ),
      { id: 'controllers' },
    ),
  );
}
