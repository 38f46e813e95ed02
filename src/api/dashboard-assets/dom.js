// Building DOM from data, and the small formatters the views share. Text always goes in as text
// (never as HTML): whatever a history reason or an error message holds is shown, not run.

/**
 * h('td', {class: 'x', dataset: {state: 'done'}}, 'text', child, [more]) — an element. Attributes
 * with null/undefined/false are left out; children may be strings, numbers, nodes, arrays or null.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** A table with a header row; `rows` are <tr> elements. */
export function table(headers, rows, attrs = {}) {
  return h('table', attrs, h('thead', {}, h('tr', {}, headers.map((t) => h('th', {}, t)))), h('tbody', {}, rows));
}

/** A section with a heading; an empty list says so instead of an empty table. */
export function section(title, body, attrs = {}) {
  return h('section', attrs, h('h2', {}, title), body);
}

export function badge(text, kind = '') {
  return h('span', { class: `badge ${kind}` }, text);
}

/** "3 s ago", "5 min ago" from an ISO time, against `now` (ms). */
export function ago(iso, now = Date.now()) {
  if (!iso) return '—';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

/** Local time of day, with the date when not today. */
export function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}

export function duration(ms) {
  if (ms === null || ms === undefined) return '';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 60000)} min`;
}

export function seconds(s) {
  if (s === null || s === undefined) return '—';
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

/** Replication offsets are bytes: a lag reads best in KiB/MiB. */
export function bytes(n) {
  if (n === null || n === undefined) return '—';
  if (Math.abs(n) < 1024) return `${n} B`;
  if (Math.abs(n) < 1048576) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1048576).toFixed(1)} MiB`;
}

export function number(n) {
  return n === null || n === undefined ? '—' : Number(n).toLocaleString('en');
}

/** Slot ranges [[a,b],...] as "0-511, 600". */
export function ranges(slots) {
  if (!slots || slots.length === 0) return 'none';
  return slots.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(', ');
}
