// The admin page's script (docs/operations.md section 6). Bundled with uPlot into dist/admin/admin.js by
// scripts/build-admin.mjs. It polls the broker's /admin/api/* (a bearer header can go with fetch, not with
// EventSource, hence polling): the overview every POLL_MS, which also keeps the broker's sampler running; the
// open view's list a little less often. Every text from the broker goes into the page as text, never as HTML.
import uPlot from 'uplot';

const POLL_MS = 1000;
const LIST_MS = 2000;
const PAGE = 50;
const TOKEN_KEY = 'socketd-admin-token';
/** Five minutes of one-second samples, as the broker keeps them. */
const MAX_POINTS = 300;

const $ = (id) => document.getElementById(id);
const body = document.body;

// ----- talking to the broker --------------------------------------------------------------------------------

class Refused extends Error {
  constructor(status, info) {
    super(info.hint ?? info.error ?? `HTTP ${status}`);
    this.status = status;
    this.info = info;
  }
}

class Unreachable extends Error {}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) ?? '';
}

async function api(path, init = {}) {
  const headers = { ...(init.headers ?? {}) };
  const t = token();
  if (t !== '') headers.authorization = `Bearer ${t}`;
  let res;
  try {
    res = await fetch(`./api/${path}`, { ...init, headers, cache: 'no-store', credentials: 'omit' });
  } catch (error) {
    throw new Unreachable(error.message);
  }
  let data = {};
  try {
    data = await res.json();
  } catch {
    if (!res.ok) throw new Unreachable(`HTTP ${res.status}`);
  }
  if (!res.ok) {
    if (res.status >= 500 || res.status === 502 || res.status === 504) throw new Unreachable(`HTTP ${res.status}`);
    throw new Refused(res.status, data);
  }
  return data;
}

// ----- states: live, unreachable, asking for the token, not trusted ----------------------------------------

function setState(state, text) {
  body.dataset.state = state;
  $('status-text').textContent = text;
  const blocked = state === 'token' || state === 'untrusted';
  $('login').hidden = state !== 'token';
  $('untrusted').hidden = state !== 'untrusted';
  document.querySelector('main').hidden = blocked;
  $('banner').hidden = state !== 'unreachable';
  if (state === 'unreachable') $('banner').textContent = `Broker unreachable (${text}): retrying every ${POLL_MS / 1000} s. The data below is from before.`;
  $('forget').hidden = token() === '';
}

/** Handles an error of any poll; true when polling should go on. */
function failed(error) {
  if (error instanceof Refused && error.status === 401) {
    if (error.info.reason === 'untrusted_address') {
      $('untrusted-text').textContent = error.info.hint ?? 'This address is not on http.adminTrusted.';
      setState('untrusted', 'not allowed');
      return false;
    }
    if (error.info.reason === 'bad_token' && token() !== '') {
      $('login-error').textContent = 'That token does not match http.adminToken.';
      $('login-error').hidden = false;
    }
    sessionStorage.removeItem(TOKEN_KEY);
    setState('token', 'token needed');
    $('token').focus();
    return false;
  }
  setState('unreachable', error.message || 'no answer');
  return true;
}

$('login').addEventListener('submit', (event) => {
  event.preventDefault();
  const value = $('token').value.trim();
  if (value === '') return;
  sessionStorage.setItem(TOKEN_KEY, value);
  $('token').value = '';
  $('login-error').hidden = true;
  setState('loading', 'connecting…');
  start();
});

$('forget').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  location.reload();
});

// ----- formatting -------------------------------------------------------------------------------------------

function bytes(n) {
  if (n == null) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = Math.abs(n);
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  const shown = v >= 100 || i === 0 ? String(Math.round(v)) : v.toFixed(1).replace(/\.0$/, '');
  return `${n < 0 ? '-' : ''}${shown} ${units[i]}`;
}

function count(n) {
  if (n == null) return '';
  const v = Math.abs(n);
  if (v >= 1e9) return `${(n / 1e9).toFixed(1)}G`;
  if (v >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (v >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  if (Number.isInteger(n)) return String(n);
  return v >= 10 ? n.toFixed(0) : n.toFixed(1);
}

function ms(n) {
  if (n == null) return '';
  return `${n === 0 || n >= 10 ? Math.round(n) : n.toFixed(1)} ms`;
}

function ago(iso) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'class') node.className = value;
    else if (key === 'data') Object.assign(node.dataset, value);
    else node[key] = value;
  }
  for (const child of children) if (child != null) node.append(child instanceof Node ? child : String(child));
  return node;
}

function badge(text, kind = '') {
  return el('span', { class: `badge ${kind}` }, text);
}

// ----- overview: cards and charts --------------------------------------------------------------------------

const PALETTE = ['#3461d1', '#d1495b', '#1e9e5a', '#edae49', '#8e44ad', '#00798c'];

/**
 * Each chart: its series (a label and how to read the value from a sample), and how to format its values.
 * `sessions` is special: one series per transport, as transports appear.
 */
const CHARTS = [
  { id: 'sessions', title: 'Sessions by transport', fmt: count, floor: 4, dynamic: (s) => s.sessions },
  { id: 'frames', title: 'Frames / s', fmt: count, series: [['in', (s) => s.framesIn], ['out', (s) => s.framesOut]] },
  { id: 'bytes', title: 'Bytes / s', fmt: bytes, floor: 1024, series: [['in', (s) => s.bytesIn], ['out', (s) => s.bytesOut]] },
  { id: 'deliveries', title: 'Deliveries and drops / s', fmt: count, series: [['deliveries', (s) => s.deliveries], ['dropped', (s) => s.dropped]] },
  { id: 'pressure', title: 'Pressure and slow consumers / s', fmt: count, series: [['pressure sent', (s) => s.pressure], ['slow consumers', (s) => s.slowConsumers]] },
  { id: 'streams', title: 'Streams open and subscriptions', fmt: count, floor: 4, series: [['streams open', (s) => s.streamsOpen], ['subscriptions', (s) => s.subscriptions]] },
  { id: 'queued', title: 'Outbound queues', fmt: bytes, floor: 1024, series: [['queued to all sessions', (s) => s.queuedBytes]] },
  { id: 'lag', title: 'Event-loop lag', fmt: ms, floor: 10, series: [['max', (s) => s.lagMaxMs], ['p99', (s) => s.lagP99Ms]] },
  { id: 'memory', title: 'Process memory', fmt: bytes, floor: 1024, series: [['heap used', (s) => s.heapUsedBytes], ['rss', (s) => s.rssBytes]] },
];

let overview = null;
let samples = [];
let lastT = 0;
const plots = new Map();

function buildCharts() {
  const root = $('charts');
  for (const chart of CHARTS) {
    const box = el('div', { class: 'chart', id: `chart-${chart.id}`, data: { points: '0', max: '0' } },
      el('h2', {}, chart.title),
      el('div', { class: 'plot' }, el('div', { class: 'waiting' }, 'collecting samples…')));
    root.append(box);
  }
}

function seriesOf(chart) {
  if (!chart.dynamic) return chart.series;
  const names = new Set();
  for (const s of samples) for (const name of Object.keys(chart.dynamic(s))) names.add(name);
  return [...names].sort().map((name) => [name, (s) => chart.dynamic(s)[name] ?? 0]);
}

function makePlot(chart, series, box) {
  const plot = box.querySelector('.plot');
  plot.replaceChildren();
  const width = Math.max(200, plot.clientWidth);
  const opts = {
    width,
    height: 150,
    cursor: { drag: { x: false, y: false } },
    legend: { live: false },
    // From 0, with some room on top; a floor keeps an idle chart from showing ticks like 0.5 B or 0.25 sessions.
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(chart.floor ?? 1, max * 1.1)] } },
    axes: [
      { stroke: '#6b7488', grid: { stroke: '#eef0f5' }, ticks: { stroke: '#eef0f5' }, size: 30, font: '11px system-ui' },
      // Wide enough for the longest label of the chart's unit ("1023.9 KiB", "100 ms", "10.5k").
      { stroke: '#6b7488', grid: { stroke: '#eef0f5' }, ticks: { stroke: '#eef0f5' }, size: chart.fmt === bytes ? 74 : chart.fmt === ms ? 60 : 50, font: '11px system-ui', values: (u, vals) => vals.map((v) => chart.fmt(v)) },
    ],
    series: [
      { value: (u, v) => (v == null ? '' : new Date(v * 1000).toLocaleTimeString()) },
      ...series.map(([label], i) => ({
        label,
        stroke: PALETTE[i % PALETTE.length],
        width: 1.5,
        fill: i === 0 ? `${PALETTE[0]}14` : undefined,
        value: (u, v) => chart.fmt(v),
      })),
    ],
  };
  return new uPlot(opts, [[], ...series.map(() => [])], plot);
}

function drawCharts() {
  for (const chart of CHARTS) {
    const box = $(`chart-${chart.id}`);
    const series = seriesOf(chart);
    const key = series.map(([label]) => label).join('|');
    let entry = plots.get(chart.id);
    if (samples.length < 2 || series.length === 0) continue;
    if (entry === undefined || entry.key !== key) {
      entry?.plot.destroy();
      entry = { key, plot: makePlot(chart, series, box) };
      plots.set(chart.id, entry);
    }
    const xs = samples.map((s) => s.t / 1000);
    const ys = series.map(([, read]) => samples.map((s) => read(s)));
    entry.plot.setData([xs, ...ys]);
    let max = 0;
    for (const column of ys) for (const v of column) if (v != null && v > max) max = v;
    box.dataset.points = String(xs.length);
    box.dataset.max = String(max);
  }
}

const resize = new ResizeObserver(() => {
  for (const [id, entry] of plots) {
    const plot = $(`chart-${id}`).querySelector('.plot');
    const width = Math.max(200, plot.clientWidth);
    if (Math.abs(entry.plot.width - width) > 2) entry.plot.setSize({ width, height: 150 });
  }
});

function card(label, value, alert = false) {
  return el('div', { class: `card${alert ? ' alert' : ''}` }, el('div', { class: 'label' }, label), el('div', { class: 'value' }, value));
}

function drawTotals() {
  const o = overview;
  const last = samples[samples.length - 1];
  const t = o.totals;
  $('totals').replaceChildren(
    card('sessions', count(t.sessions)),
    card('connections', count(t.connections)),
    card('@ names', count(t.names)),
    card('subscriptions', count(t.subscriptions)),
    card('streams open', count(t.streamsOpen)),
    card('frames in / s', last ? count(last.framesIn) : '…'),
    card('queued', last ? bytes(last.queuedBytes) : '…', last?.overBudget === true),
    card('uptime', uptime(o.uptimeSeconds)),
  );
}

function uptime(s) {
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

async function pollOverview() {
  const o = await api(`overview?since=${lastT}`);
  overview = o;
  // A broker restarted, or its sampler restarted after nobody looked for a while (a hidden tab): its history
  // starts over, and so do the charts rather than draw a line across the gap.
  if (o.samples.length > 0 && (o.samples[0].t <= lastT || o.samples[0].t - lastT > 5 * o.sampleMs)) samples = [];
  for (const s of o.samples) samples.push(s);
  if (samples.length > MAX_POINTS) samples.splice(0, samples.length - MAX_POINTS);
  if (samples.length > 0) lastT = samples[samples.length - 1].t;
  $('nodes-tab').hidden = !o.clustered;
  $('chart-queued').querySelector('h2').textContent = `Outbound queues (memory budget ${bytes(o.memoryBudgetBytes)})`;
  setState('live', `live · ${o.totals.sessions} session${o.totals.sessions === 1 ? '' : 's'}`);
  if (view === 'overview') {
    drawTotals();
    drawCharts();
  }
}

// ----- sessions ---------------------------------------------------------------------------------------------

let offset = 0;
let selected = null;

function stateBadges(s) {
  const out = [];
  if (s.state === 'handshake') out.push(badge('handshake', 'warn'));
  if (s.congested) out.push(badge('congested', 'bad'));
  if (s.readingPaused) out.push(badge('paused', 'warn'));
  if (out.length === 0) out.push(badge('ok'));
  return out;
}

async function pollSessions() {
  const q = $('session-search').value.trim();
  const data = await api(`sessions?offset=${offset}&limit=${PAGE}&q=${encodeURIComponent(q)}`);
  if (data.total > 0 && offset >= data.total) {
    offset = Math.max(0, Math.floor((data.total - 1) / PAGE) * PAGE);
    return pollSessions();
  }
  const hasNs = data.sessions.some((s) => s.namespace !== undefined);
  for (const cell of document.querySelectorAll('#sessions .ns')) cell.hidden = !hasNs;
  const rows = data.sessions.map((s) => {
    const row = el('tr', { data: { id: s.id } },
      el('td', {}, el('code', {}, s.id)),
      el('td', {}, s.name || '—'),
      hasNs ? el('td', { class: 'ns' }, s.namespace ?? '') : null,
      el('td', {}, badge(s.transport, `t-${s.transport}`)),
      el('td', { class: 'wide' }, s.remote),
      el('td', { class: 'wide', title: s.since }, ago(s.since)),
      el('td', { class: 'num' }, bytes(s.queuedBytes)),
      el('td', { class: 'num' }, String(s.subscriptions)),
      el('td', {}, ...stateBadges(s)));
    if (s.id === selected) row.classList.add('selected');
    row.addEventListener('click', () => select(s.id));
    return row;
  });
  document.querySelector('#sessions tbody').replaceChildren(...rows);
  const empty = data.total === 0;
  $('sessions-empty').hidden = !empty || q !== '';
  if (empty && q !== '') document.querySelector('#sessions tbody').replaceChildren(el('tr', {}, el('td', { colSpan: 9, class: 'muted' }, `No session matches “${q}”.`)));
  $('session-count').textContent = empty ? '' : `${offset + 1}–${offset + data.sessions.length} of ${data.total}`;
  $('prev').disabled = offset === 0;
  $('next').disabled = offset + PAGE >= data.total;
  if (selected !== null) await showDetail();
}

function select(id) {
  selected = id;
  for (const row of document.querySelectorAll('#sessions tbody tr')) row.classList.toggle('selected', row.dataset.id === id);
  $('disconnect-note').textContent = '';
  showDetail().catch(failed);
}

async function showDetail() {
  let d;
  try {
    d = await api(`sessions/${encodeURIComponent(selected)}`);
  } catch (error) {
    if (error instanceof Refused && error.status === 404) {
      $('detail-title').textContent = 'Session gone';
      $('detail-fields').replaceChildren(el('dt', {}, 'id'), el('dd', {}, selected));
      $('detail-subs').replaceChildren();
      $('disconnect').hidden = true;
      $('detail').hidden = false;
      return;
    }
    throw error;
  }
  $('detail').hidden = false;
  $('detail-title').textContent = d.name ? `@${d.name}` : d.id;
  const fields = [
    ['id', d.id], ['name', d.name || '—'], ['namespace', d.namespace], ['user', d.user], ['transport', d.transport],
    ['remote', d.remote], ['state', d.state], ['since', `${new Date(d.since).toLocaleString()} (${ago(d.since)})`], ['last seen', ago(d.lastSeen)],
    ['queued', bytes(d.queuedBytes)], ['congested', d.congested ? `since ${d.congestedSince}` : 'no'],
    ['reading paused', d.readingPaused ? 'yes' : 'no'], ['streams open', d.streamsOpen], ['streams answering', d.streamsAnswering],
    ['fragments in flight', d.fragmentsInFlight],
  ].filter(([, v]) => v !== undefined);
  $('detail-fields').replaceChildren(...fields.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, String(v))]));
  const subs = d.subscriptionList.map((s) => el('li', {}, el('code', {}, s.pattern),
    s.group ? el('span', { class: 'muted' }, ` group ${s.group}`) : null, s.presence ? el('span', { class: 'muted' }, ' presence') : null));
  $('detail-subs').replaceChildren(...(subs.length > 0 ? subs : [el('li', { class: 'muted' }, 'none')]));
  const form = $('disconnect');
  form.hidden = false;
  const can = overview?.actions === true;
  form.querySelector('button').disabled = !can;
  $('reason').disabled = !can;
  if (!can) $('disconnect-note').textContent = 'Actions need an admin token: set http.adminToken on the broker.';
}

$('disconnect').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = $('disconnect');
  const id = selected;
  const reason = $('reason').value.trim();
  try {
    const done = await api(`sessions/${encodeURIComponent(id)}/disconnect`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ reason }),
    });
    $('reason').value = '';
    // The session is gone: the panel keeps what it showed, with the outcome, and is no longer refreshed.
    selected = null;
    $('detail-title').textContent += ' (disconnected)';
    form.querySelector('button').disabled = true;
    $('reason').disabled = true;
    $('disconnect-note').textContent = `Disconnected ${done.name || done.disconnected}: ${done.reason}`;
    await pollSessions();
  } catch (error) {
    if (error instanceof Refused && error.status !== 401) $('disconnect-note').textContent = error.message;
    else failed(error);
  }
});

$('detail-close').addEventListener('click', () => {
  selected = null;
  $('detail').hidden = true;
  for (const row of document.querySelectorAll('#sessions tbody tr.selected')) row.classList.remove('selected');
});
$('prev').addEventListener('click', () => {
  offset = Math.max(0, offset - PAGE);
  pollSessions().catch(failed);
});
$('next').addEventListener('click', () => {
  offset += PAGE;
  pollSessions().catch(failed);
});
let searchTimer = null;
$('session-search').addEventListener('input', () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => {
    offset = 0;
    pollSessions().catch(failed);
  }, 200);
});

// ----- names and subscriptions ------------------------------------------------------------------------------

function member(m) {
  return el('span', { class: 'member' }, el('code', {}, m.id), m.name ? ` @${m.name}` : '');
}

async function pollRouting() {
  const q = encodeURIComponent($('routing-search').value.trim());
  const [names, patterns] = await Promise.all([api(`names?limit=200&q=${q}`), api(`subscriptions?limit=200&q=${q}`)]);
  $('names-count').textContent = names.total > 0 ? `(${names.total})` : '';
  $('patterns-count').textContent = patterns.total > 0 ? `(${patterns.total})` : '';
  document.querySelector('#names tbody').replaceChildren(...names.names.map((n) => el('tr', {},
    el('td', {}, el('code', {}, `@${n.name}`)),
    el('td', { class: 'num' }, String(n.sessions.length)),
    el('td', { class: 'wrap' }, ...n.sessions.map((s) => el('span', { class: 'member' }, el('code', {}, s.id), ' ', badge(s.transport, `t-${s.transport}`)))))));
  $('names-empty').hidden = names.total > 0;
  document.querySelector('#patterns tbody').replaceChildren(...patterns.patterns.map((p) => el('tr', {},
    el('td', {}, el('code', {}, p.pattern)),
    el('td', { class: 'num' }, String(p.subscribers)),
    el('td', { class: 'wrap' },
      ...p.groups.map((g) => el('div', {}, badge(`group ${g.group}`, 'warn'), ' ', ...g.members.map(member))),
      p.direct.length > 0 ? el('div', {}, ...p.direct.map(member)) : null))));
  $('patterns-empty').hidden = patterns.total > 0;
}
$('routing-search').addEventListener('input', () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => pollRouting().catch(failed), 200);
});

// ----- nodes (a clustered broker only) ----------------------------------------------------------------------

async function pollNodes() {
  const data = await api('nodes');
  document.querySelector('#nodes tbody').replaceChildren(...data.nodes.map((n) => {
    const { id, state, ...rest } = n;
    return el('tr', {}, el('td', {}, el('code', {}, id)), el('td', {}, badge(state, state === 'up' || state === 'connected' ? '' : 'warn')),
      el('td', { class: 'wrap' }, Object.entries(rest).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join(' · ')));
  }));
}

// ----- views and the polling loop ---------------------------------------------------------------------------

let view = 'overview';
const LISTS = { sessions: pollSessions, routing: pollRouting, nodes: pollNodes };

function showView() {
  const wanted = location.hash.replace('#', '') || 'overview';
  view = ['overview', 'sessions', 'routing', 'nodes'].includes(wanted) ? wanted : 'overview';
  body.dataset.view = view;
  for (const section of document.querySelectorAll('.view')) section.hidden = section.id !== `view-${view}`;
  for (const a of document.querySelectorAll('#tabs a')) a.classList.toggle('active', a.dataset.view === view);
  if (overview !== null && view === 'overview') {
    drawTotals();
    drawCharts();
  }
  LISTS[view]?.().catch(failed);
}
window.addEventListener('hashchange', showView);

let running = false;
let lastList = 0;

async function loop() {
  // A hidden tab asks for nothing, so the broker's sampler stops when no tab is visible.
  if (document.hidden) {
    setTimeout(loop, POLL_MS);
    return;
  }
  let go = true;
  try {
    await pollOverview();
    const list = LISTS[view];
    if (list !== undefined && Date.now() - lastList >= LIST_MS) {
      lastList = Date.now();
      await list();
    }
  } catch (error) {
    go = failed(error);
  }
  if (go) setTimeout(loop, POLL_MS);
  else running = false;
}

function start() {
  if (running) return;
  running = true;
  loop();
}

buildCharts();
resize.observe($('charts'));
showView();
start();
