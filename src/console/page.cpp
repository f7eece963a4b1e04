// The page reads /dump.json every second and rebuilds its views from it. Its safety rule:
// data from the runtime (task names, spawn locations, failure messages) reaches the document
// only as textContent or as a canvas text, never as markup, so a name such as
// `<script>alert(1)</script>` is shown as those characters. No innerHTML anywhere.
#include "page.hpp"

namespace swarm::console::detail {
namespace {

constexpr std::string_view nonce_slot = "{{nonce}}";

constexpr std::string_view page = R"page(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>swarm console</title>
<style nonce="{{nonce}}">
:root { --bg: #f6f6f4; --fg: #1d1d1f; --muted: #6b6b70; --line: #dcdce0; --warn: #fff0bf;
        --warn-line: #e2bd4f; --bad: #b3261e; }
* { box-sizing: border-box; }
body { margin: 0; font: 13px/1.4 system-ui, sans-serif; background: var(--bg); color: var(--fg); }
header { display: flex; flex-wrap: wrap; gap: 1.4em; align-items: baseline; padding: .6em 1em;
         background: #1d1d1f; color: #f2f2f4; }
header h1 { font-size: 15px; margin: 0; }
header b { font-weight: 600; }
#status { margin-left: auto; color: #b8e0b0; }
#status.error { color: #ff8a80; }
#tracking.off { color: #ffd27a; }
main { padding: 0 1em 1em; }
h2 { font-size: 12px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted);
     margin: 1.1em 0 .4em; }
#workers { display: flex; flex-wrap: wrap; gap: .6em; }
.worker { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .4em .6em;
          width: 10em; text-align: center; }
.worker.warn { background: var(--warn); border-color: var(--warn-line); }
.worker canvas { display: block; margin: 0 auto; }
.worker .title { font-weight: 600; }
.worker .detail { color: var(--muted); font-size: 12px; }
.panel { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .5em;
         display: inline-block; }
#legend span { margin-right: 1.2em; font-size: 12px; white-space: nowrap; }
#legend i { display: inline-block; width: .8em; height: .8em; margin-right: .3em; vertical-align: -1px; }
#filter { width: 26em; padding: .3em .5em; font: inherit; }
#shown { margin-left: .8em; color: var(--muted); }
table { border-collapse: collapse; background: #fff; width: 100%; margin-top: .5em; }
th, td { border-bottom: 1px solid var(--line); padding: .25em .5em; text-align: left; vertical-align: top; }
th { cursor: pointer; user-select: none; background: #ececef; position: sticky; top: 0; white-space: nowrap; }
th.sorted::after { content: " \25B2"; }
th.sorted.desc::after { content: " \25BC"; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.name { white-space: pre-wrap; word-break: break-all; max-width: 28em; }
td.where { font-family: ui-monospace, monospace; font-size: 12px; word-break: break-all; }
tr.warn td { background: var(--warn); }
.badge { display: inline-block; padding: 0 .45em; border-radius: 3px; background: #c98a00; color: #fff;
         font-size: 11px; margin-right: .3em; white-space: nowrap; }
.muted { color: var(--muted); }
#failures li { color: var(--bad); }
button.abort { font: inherit; font-size: 11px; }
</style>
</head>
<body>
<header>
  <h1>swarm console</h1>
  <span>uptime <b id="uptime">-</b></span>
  <span>tasks <b id="task-count">-</b></span>
  <span>global queue <b id="global-queue">-</b></span>
  <span>blocking pool <b id="blocking">-</b></span>
  <span id="tracking"></span>
  <span id="status">connecting...</span>
</header>
<main>
  <h2>Workers</h2>
  <div id="workers"></div>
  <h2>Polls per second per worker, last minute</h2>
  <div class="panel"><canvas id="plot" width="720" height="170"></canvas><div id="legend"></div></div>
  <section id="failures-box" hidden>
    <h2>Unobserved failures (a task failed after its join handle was dropped)</h2>
    <ul id="failures"></ul>
  </section>
  <h2>Tasks</h2>
  <input id="filter" type="search" placeholder="filter by name, state, location, id, warning" autocomplete="off">
  <span id="shown"></span>
  <table id="tasks"><thead><tr id="task-head"></tr></thead><tbody id="task-body"></tbody></table>
</main>
<script nonce="{{nonce}}">
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  // Every piece of data goes in as text.
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = String(text);
    return e;
  };

  const duration = (ns) => {
    if (ns < 1e3) return ns + ' ns';
    if (ns < 1e6) return (ns / 1e3).toFixed(1) + ' \u00b5s';
    if (ns < 1e9) return (ns / 1e6).toFixed(1) + ' ms';
    const s = ns / 1e9;
    if (s < 60) return s.toFixed(2) + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + Math.floor(s % 60) + ' s';
    return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  };
  const waitText = (t) => {
    switch (t.waiting_on) {
      case 'join': return t.wait_target === null ? 'a join' : 'join of task ' + t.wait_target;
      case 'join_set': return 'a join_set';
      case 'asio_operation': return 'an Asio operation';
      default: return '';
    }
  };
  const where = (t) => t.spawn.file ? t.spawn.file + ':' + t.spawn.line : '';

  const columns = [
    { key: 'id', label: 'id', num: true, value: (t) => t.id },
    { key: 'name', label: 'name', value: (t) => t.name },
    { key: 'state', label: 'state', value: (t) => t.state },
    { key: 'polls', label: 'polls', num: true, value: (t) => t.polls },
    { key: 'busy', label: 'busy', num: true, value: (t) => t.busy_ns, show: duration },
    { key: 'idle', label: 'since last poll', num: true, value: (t) => t.since_last_poll_ns, show: duration },
    { key: 'longest', label: 'longest poll', num: true, value: (t) => t.longest_poll_ns, show: duration },
    { key: 'waiting', label: 'waiting on', value: waitText },
    { key: 'where', label: 'spawned at', value: where },
    { key: 'warnings', label: 'warnings', value: (t) => t.warnings.join(' ') },
  ];
  const view = { sort: 'id', desc: false, filter: '', dump: null, previous: null, history: [], updates: 0 };

  const buildHead = () => {
    const head = $('task-head');
    head.replaceChildren();
    for (const c of columns) {
      const th = el('th', c.num ? 'num' : '', c.label);
      if (c.key === view.sort) th.classList.add('sorted');
      if (c.key === view.sort && view.desc) th.classList.add('desc');
      th.addEventListener('click', () => {
        if (view.sort === c.key) view.desc = !view.desc;
        else { view.sort = c.key; view.desc = false; }
        buildHead();
        renderTasks();
      });
      head.appendChild(th);
    }
    if (view.dump && view.dump.abort_allowed) head.appendChild(el('th', '', ''));
  };

  const abortTask = async (id) => {
    if (!window.confirm('Abort task ' + id + '?')) return;
    try {
      const r = await fetch('/tasks/' + id + '/abort', { method: 'POST', headers: { 'X-Swarm-Console': 'abort' } });
      if (!r.ok) window.alert('abort of task ' + id + ': HTTP ' + r.status);
    } catch (e) {
      window.alert('abort of task ' + id + ': ' + e.message);
    }
  };

  const renderTasks = () => {
    const d = view.dump;
    if (!d) return;
    const column = columns.find((c) => c.key === view.sort) || columns[0];
    const q = view.filter.toLowerCase();
    const rows = d.tasks.filter((t) => !q ||
        [t.id, t.name, t.state, where(t), t.spawn.function, waitText(t), t.warnings.join(' ')]
            .some((v) => String(v).toLowerCase().includes(q)));
    rows.sort((a, b) => {
      const x = column.value(a), y = column.value(b);
      const order = column.num ? x - y : String(x).localeCompare(String(y));
      return (view.desc ? -order : order) || a.id - b.id;
    });
    const body = $('task-body');
    body.replaceChildren();
    for (const t of rows) {
      const tr = el('tr', t.warnings.length ? 'warn' : '');
      tr.dataset.taskId = String(t.id);
      for (const c of columns) {
        const td = el('td', c.num ? 'num' : '');
        const v = c.value(t);
        if (c.key === 'name') {
          td.className = 'name';
          if (v) td.textContent = v;
          else td.appendChild(el('span', 'muted', '(unnamed)'));
        } else if (c.key === 'where') {
          td.className = 'where';
          td.textContent = v;
          td.title = t.spawn.function;
        } else if (c.key === 'warnings') {
          for (const w of t.warnings)
            td.appendChild(el('span', 'badge', w === 'long_poll' ? 'long poll' : w === 'lost_waker' ? 'lost waker' : w));
        } else {
          td.textContent = c.show ? c.show(v) : String(v);
        }
        tr.appendChild(td);
      }
      if (d.abort_allowed) {
        const td = el('td');
        const b = el('button', 'abort', 'abort');
        b.addEventListener('click', () => abortTask(t.id));
        td.appendChild(b);
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
    $('shown').textContent = rows.length === d.tasks.length ? '' : rows.length + ' of ' + d.tasks.length + ' shown';
  };

  const drawGauge = (canvas, ratio) => {
    const g = canvas.getContext('2d');
    const w = canvas.width, h = canvas.height, r = Math.min(w / 2, h) - 6;
    g.clearRect(0, 0, w, h);
    g.lineWidth = 9;
    g.lineCap = 'butt';
    g.strokeStyle = '#e3e3e8';
    g.beginPath();
    g.arc(w / 2, h - 4, r, Math.PI, 2 * Math.PI);
    g.stroke();
    g.strokeStyle = ratio > 0.9 ? '#c62828' : ratio > 0.6 ? '#e08a00' : '#2e7d32';
    g.beginPath();
    g.arc(w / 2, h - 4, r, Math.PI, Math.PI * (1 + ratio));
    g.stroke();
    g.fillStyle = '#1d1d1f';
    g.font = '600 13px system-ui, sans-serif';
    g.textAlign = 'center';
    g.fillText(Math.round(ratio * 100) + '%', w / 2, h - 6);
  };

  const renderWorkers = () => {
    const d = view.dump, p = view.previous;
    const box = $('workers');
    box.replaceChildren();
    for (const w of d.workers) {
      // Busy over the last interval when there is one; over the runtime's life otherwise.
      let ratio = w.busy_ratio;
      const before = p && p.workers.find((x) => x.index === w.index);
      if (before && d.uptime_ns > p.uptime_ns)
        ratio = (w.busy_ns - before.busy_ns) / (d.uptime_ns - p.uptime_ns);
      ratio = Math.min(1, Math.max(0, ratio || 0));
      const card = el('div', 'worker' + (w.parked_with_work ? ' warn' : ''));
      card.dataset.worker = String(w.index);
      card.appendChild(el('div', 'title', 'worker ' + w.index));
      const gauge = el('canvas');
      gauge.width = 96;
      gauge.height = 56;
      drawGauge(gauge, ratio);
      card.appendChild(gauge);
      card.appendChild(el('div', '', w.state.replace('_', ' ')));
      card.appendChild(el('div', 'detail', 'queue ' + w.local_queue_depth));
      card.appendChild(el('div', 'detail', w.polls + ' polls, ' + w.steals + ' steals'));
      if (w.parked_with_work) card.appendChild(el('span', 'badge', 'parked with work'));
      box.appendChild(card);
    }
  };

  const colour = (i) => 'hsl(' + ((i * 137) % 360) + ', 65%, 42%)';

  const renderPlot = () => {
    const d = view.dump, hist = view.history;
    const t = d.uptime_ns / 1e9;
    hist.push({ t, polls: d.workers.map((w) => w.polls) });
    while (hist.length > 2 && hist[0].t < t - 61) hist.shift();
    const series = d.workers.map(() => []);
    for (let k = 1; k < hist.length; ++k) {
      const dt = hist[k].t - hist[k - 1].t;
      if (dt <= 0) continue;
      for (let i = 0; i < series.length; ++i) {
        const a = hist[k - 1].polls[i], b = hist[k].polls[i];
        if (a !== undefined && b !== undefined) series[i].push({ t: hist[k].t, rate: Math.max(0, (b - a) / dt) });
      }
    }
    let top = 4; // at least 4 polls/s at the top: four whole gridlines
    for (const s of series) for (const p of s) top = Math.max(top, p.rate);
    const step = Math.pow(10, Math.floor(Math.log10(top)));
    top = Math.ceil(top / step) * step;

    const c = $('plot'), g = c.getContext('2d');
    const left = 56, right = 14, topPad = 8, bottom = 20;
    const w = c.width - left - right, h = c.height - topPad - bottom;
    const x = (tt) => left + w * (1 - (t - tt) / 60);
    const y = (r) => topPad + h * (1 - r / top);
    g.clearRect(0, 0, c.width, c.height);
    g.font = '11px system-ui, sans-serif';
    g.fillStyle = '#6b6b70';
    g.strokeStyle = '#e3e3e8';
    g.lineWidth = 1;
    g.textAlign = 'right';
    for (let k = 0; k <= 4; ++k) {
      const r = (top * k) / 4;
      g.beginPath();
      g.moveTo(left, y(r));
      g.lineTo(left + w, y(r));
      g.stroke();
      const label = r >= 1000 ? (r / 1000).toFixed(r >= 10000 ? 0 : 1) + 'k' : String(Math.round(r * 10) / 10);
      g.fillText(label, left - 6, y(r) + 4);
    }
    for (const ago of [60, 45, 30, 15, 0]) {
      g.textAlign = ago === 60 ? 'left' : ago === 0 ? 'right' : 'center';
      g.fillText(ago ? '-' + ago + ' s' : 'now', x(t - ago), c.height - 5);
    }
    g.lineWidth = 1.6;
    series.forEach((s, i) => {
      g.strokeStyle = colour(i);
      g.beginPath();
      s.forEach((p, k) => (k ? g.lineTo(x(p.t), y(p.rate)) : g.moveTo(x(p.t), y(p.rate))));
      g.stroke();
    });
    const legend = $('legend');
    legend.replaceChildren();
    series.forEach((s, i) => {
      const item = el('span');
      const swatch = el('i');
      swatch.style.background = colour(i);
      item.appendChild(swatch);
      item.appendChild(document.createTextNode('worker ' + i + ': ' + (s.length ? Math.round(s[s.length - 1].rate) : 0) + '/s'));
      legend.appendChild(item);
    });
  };

  const renderFailures = () => {
    const list = $('failures');
    list.replaceChildren();
    for (const f of view.dump.unobserved_failures) {
      const where = f.spawn.file ? ' (' + f.spawn.file + ':' + f.spawn.line + ')' : '';
      list.appendChild(el('li', '', 'task ' + f.id + (f.name ? ' ' + f.name : '') + where + ': ' + f.what));
    }
    $('failures-box').hidden = view.dump.unobserved_failures.length === 0;
  };

  const render = (d) => {
    view.previous = view.dump;
    view.dump = d;
    $('uptime').textContent = duration(d.uptime_ns);
    $('task-count').textContent = String(d.tasks.length);
    $('global-queue').textContent = String(d.global_queue_depth);
    $('blocking').textContent = d.blocking.threads + ' threads, ' + d.blocking.idle + ' idle, ' + d.blocking.queue_depth + ' queued';
    const tracking = $('tracking');
    tracking.textContent = d.tracking ? 'task tracking on' : 'task tracking off (runtime_options::track_tasks)';
    tracking.className = d.tracking ? '' : 'off';
    if (!view.previous || view.previous.abort_allowed !== d.abort_allowed) buildHead();
    renderWorkers();
    renderPlot();
    renderFailures();
    renderTasks();
  };

  const status = (text, error) => {
    const s = $('status');
    s.textContent = text;
    s.className = error ? 'error' : '';
  };

  const refresh = async () => {
    try {
      const r = await fetch('/dump.json', { cache: 'no-store' });
      if (!r.ok) throw new Error('HTTP ' + r.status);
      render(await r.json());
      view.updates += 1;
      document.body.dataset.updates = String(view.updates);
      status('updated ' + new Date().toLocaleTimeString(), false);
    } catch (e) {
      status('no answer: ' + e.message, true);
    } finally {
      window.setTimeout(refresh, 1000);
    }
  };

  $('filter').addEventListener('input', (e) => {
    view.filter = e.target.value;
    renderTasks();
  });
  buildHead();
  refresh();
})();
</script>
</body>
</html>
)page";

} // namespace

std::string render_page(std::string_view nonce) {
  std::string out;
  out.reserve(page.size() + 2 * nonce.size());
  std::size_t from = 0;
  for (std::size_t at; (at = page.find(nonce_slot, from)) != std::string_view::npos;
       from = at + nonce_slot.size()) {
    out.append(page.substr(from, at - from));
    out.append(nonce);
  }
  out.append(page.substr(from));
  return out;
}

} // namespace swarm::console::detail
