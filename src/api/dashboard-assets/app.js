// The dashboard's loop: which page (the URL's #fragment), a read every second, and the buttons.
//
// Live updates are a short poll, not server-sent events: every controller replica answers every
// read from etcd and Redis (offsets and drift are read now), there is nothing to push that the
// replica does not itself poll, and a poll works through any HTTP proxy and survives a replica's
// restart with no reconnect logic. The next read starts only when the last one ended, so a slow
// API is never asked twice at once.
import { ApiError, get, post, seg, setToken, token } from './api.js';
import { clusterView } from './cluster-view.js';
import { listView } from './list-view.js';

const POLL_MS = 1000;
const main = document.getElementById('main');
const message = document.getElementById('message');
const updated = document.getElementById('updated');

let shown = '';          // the JSON last drawn: the page is redrawn only when it changes...
let drawnAt = 0;
const REDRAW_MS = 5000;  // ...or every 5 s, for its "N s ago" (a redraw loses a text selection)
let timer = null;
let generation = 0;      // a read that ends after the page changed is dropped

function route() {
  const m = /^#\/cluster\/([^/]+)$/.exec(location.hash);
  return m ? { page: 'cluster', name: decodeURIComponent(m[1]) } : { page: 'list' };
}

async function read(r) {
  if (r.page === 'cluster') return { r, data: await get(`/v1/clusters/${seg(r.name)}/overview`) };
  const [clusters, controllers] = await Promise.all([get('/v1/clusters'), get('/v1/controllers')]);
  return { r, data: { clusters, controllers } };
}

function draw({ r, data }) {
  // Read times ("at") change on every read; what was read is what matters.
  const json = JSON.stringify({ r, data }, (key, value) => (key === 'at' ? undefined : value));
  if (json !== shown || Date.now() - drawnAt >= REDRAW_MS) {
    shown = json;
    drawnAt = Date.now();
    // Keep open <details> (a task's steps) open across redraws.
    const open = new Set([...main.querySelectorAll('details[open]')].map((d) => d.closest('[data-task]')?.dataset.task));
    main.replaceChildren(r.page === 'cluster' ? clusterView(data) : listView(data.clusters, data.controllers));
    for (const row of main.querySelectorAll('[data-task]')) if (open.has(row.dataset.task)) row.querySelector('details')?.setAttribute('open', '');
    document.title = r.page === 'cluster' ? `${r.name} · cfgserver` : 'cfgserver';
  }
  updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
  updated.classList.remove('bad');
}

async function poll() {
  const mine = generation;
  try {
    const result = await read(route());
    if (mine === generation) draw(result);
  } catch (err) {
    if (mine === generation) {
      // The last good page stays on screen; the header says it is stale and why.
      updated.textContent = `not updated: ${describe(err)}`;
      updated.classList.add('bad');
      if (!shown) main.replaceChildren(document.createTextNode(describe(err)));
    }
  } finally {
    if (mine === generation) timer = setTimeout(poll, POLL_MS);
  }
}

function restart() {
  generation++;
  clearTimeout(timer);
  shown = '';
  poll();
}

function describe(err) {
  if (err instanceof ApiError && err.status === 401) {
    return token()
      ? `Refused (401): the API token given is not accepted — ${err.message}. Paste the right one above.`
      : `Refused (401): this needs the API token — ${err.message}. Paste it in the "API token" box above.`;
  }
  if (err instanceof ApiError && err.status === 403) return `Refused (403): ${err.message}. The token pasted is the read-only one; paste the API token to act.`;
  if (err instanceof ApiError) return `${err.code}: ${err.message}`;
  return `the controller did not answer: ${err && err.message ? err.message : err}`;
}

function say(text, kind) {
  message.textContent = text;
  message.className = kind;
  message.hidden = false;
}

// What each button asks of the API, and what to say when it is done. `d` is the button's dataset.
const ACTIONS = {
  pause: (c) => ({ ask: `Pause cluster ${c}? No automatic failover or repair until resumed.`, path: `/v1/clusters/${seg(c)}/pause`, done: () => `Cluster ${c} paused.` }),
  resume: (c) => ({ ask: `Resume automatic actions on cluster ${c}?`, path: `/v1/clusters/${seg(c)}/resume`, done: () => `Cluster ${c} resumed.` }),
  switchover: (c, d) => ({
    ask: `Switch shard ${d.shard}'s master over to ${d.to || 'its best slave'}? Clients pause briefly; no acknowledged write is lost.`,
    path: `/v1/clusters/${seg(c)}/switchover`,
    body: d.to ? { shard: d.shard, to: d.to, by: 'dashboard' } : { shard: d.shard, by: 'dashboard' },
    done: (t) => `Switchover of ${d.shard} asked: task ${t.id}. Follow it under Tasks.`,
  }),
  'cancel-task': (c, d) => ({ ask: `Cancel task ${d.id}? What it did is undone.`, path: `/v1/clusters/${seg(c)}/tasks/${seg(d.id)}/cancel`, body: { by: 'dashboard' }, done: () => `Cancel of task ${d.id} asked.` }),
  migration: (c, d) => ({
    ask: d.op === 'cancel' ? `Cancel migration ${d.id}? Keys already moved go back.` : `${d.op === 'pause' ? 'Pause' : 'Resume'} migration ${d.id}?`,
    path: `/v1/clusters/${seg(c)}/migrations/${seg(d.id)}/${seg(d.op)}`,
    body: { by: 'dashboard' },
    done: () => `Migration ${d.id}: ${d.op} asked.`,
  }),
  split: (c, d) => ({
    ask:
      d.op === 'cancel'
        ? `Cancel split ${d.id}? The new shard leaves the route and its instances are detached; the source keeps every slot and key.`
        : d.op === 'pause'
          ? `Pause split ${d.id}? Its new master keeps replicating; no cut-over (or no more trimming) until resumed.`
          : `Resume split ${d.id}?`,
    path: `/v1/clusters/${seg(c)}/splits/${seg(d.id)}/${seg(d.op)}`,
    body: { by: 'dashboard' },
    done: () => `Split ${d.id}: ${d.op} asked.`,
  }),
};

main.addEventListener('click', async (event) => {
  const btn = event.target.closest('button[data-action]');
  const r = route();
  if (!btn || r.page !== 'cluster' || !ACTIONS[btn.dataset.action]) return;
  const action = ACTIONS[btn.dataset.action](r.name, btn.dataset);
  if (!confirm(action.ask)) return;
  btn.disabled = true;
  try {
    say(action.done(await post(action.path, action.body)), 'ok');
  } catch (err) {
    say(`Not done. ${describe(err)}`, 'bad');
  } finally {
    btn.disabled = false;
    restart();
  }
});

const tokenForm = document.getElementById('token-form');
const tokenInput = document.getElementById('token');
const tokenState = document.getElementById('token-state');

function showTokenState() {
  tokenState.textContent = token() ? 'token set (this tab only)' : 'no token: read-only unless the API is open';
}

tokenForm.addEventListener('submit', (event) => {
  event.preventDefault();
  setToken(tokenInput.value.trim());
  tokenInput.value = '';
  showTokenState();
  message.hidden = true;
  restart();
});
document.getElementById('token-forget').addEventListener('click', () => {
  setToken('');
  showTokenState();
  restart();
});

async function servedBy() {
  try {
    const me = await get('/healthz');
    document.getElementById('served-by').textContent = `served by ${me.controller}${me.leader ? ' (leader)' : ''}`;
  } catch {
    // Only a label: the page works without it.
  }
}

window.addEventListener('hashchange', () => {
  message.hidden = true;
  restart();
});
showTokenState();
servedBy();
poll();
