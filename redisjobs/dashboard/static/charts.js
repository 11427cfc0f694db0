// redisjobs dashboard: the history charts (uPlot, vendored). The server gives the columns a
// minute apart, as the workers noted them; the page's stream moves a live point at the end as
// the counts change, and the columns are read again each minute.
"use strict";

(function () {
  const holder = document.querySelector("[data-history]");
  if (!holder || !window.uPlot) return;

  const SPECS = [
    {
      id: "throughput",
      unit: "/min",
      series: [["processed", "completed", "processed"], ["failed", "failed", "failed"]],
    },
    {
      id: "depth",
      unit: "",
      series: [["pending", "pending", "pending"], ["scheduled", "scheduled", "scheduled"], ["running", "running", "running"]],
    },
    { id: "latency", unit: " s", series: [["latency", "warn", "oldest pending"]] },
  ];
  const charts = [];
  let minutes = 60;
  let data = null; // the server's columns
  let live = null; // the live point: {t, processed, failed, pending, ...}

  function cssVar(name) {
    return getComputedStyle(document.body).getPropertyValue("--" + name).trim();
  }

  function columns(spec) {
    const t = data.t.slice();
    const cols = spec.series.map(([key]) => data[key].slice());
    if (live && (!t.length || live.t > t[t.length - 1])) {
      t.push(live.t);
      spec.series.forEach(([key], i) => cols[i].push(live[key]));
    }
    return [t, ...cols];
  }

  function options(spec, width) {
    const text = cssVar("muted");
    const grid = cssVar("border");
    const axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    return {
      width: width,
      height: 170,
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      axes: [axis, { ...axis, size: 64, values: (u, ticks) => ticks.map((v) => compact(v) + spec.unit) }],
      series: [
        {},
        ...spec.series.map(([, color, label]) => ({
          label: label,
          stroke: cssVar(color),
          width: 2,
          spanGaps: false,
          // a point per note while they are few (one note and the live point make no line)
          points: { show: (u) => u.data[0].length <= 60, size: 5 },
          value: (u, v) => (v == null ? "—" : format(v) + spec.unit),
        })),
      ],
    };
  }

  // An axis label: 1.5k rather than 1,500, so that it fits its narrow margin.
  function compact(v) {
    if (Math.abs(v) >= 1e6) return +(v / 1e6).toFixed(1) + "M";
    if (Math.abs(v) >= 1e3) return +(v / 1e3).toFixed(1) + "k";
    return format(v);
  }

  function format(v) {
    if (v == null) return "—";
    if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString("en-US");
    return Math.abs(v) >= 10 || Number.isInteger(v) ? String(Math.round(v)) : v.toFixed(1);
  }

  function build() {
    while (charts.length) charts.pop().destroy();
    for (const spec of SPECS) {
      const box = holder.querySelector('[data-chart="' + spec.id + '"]');
      if (!box) continue;
      box.textContent = "";
      charts.push({ spec, box, plot: new uPlot(options(spec, box.clientWidth || 320), columns(spec), box) });
    }
    describe();
  }

  function redraw() {
    for (const c of charts) c.plot.setData(columns(c.spec));
    describe();
  }

  // What a screen reader hears, and a test reads: the newest values.
  function describe() {
    const summary = holder.querySelector("[data-chart-summary]");
    if (!summary || !data) return;
    const point = live || lastOf(data);
    if (!point) {
      summary.textContent = "No history yet: workers note it once a minute while they run.";
      return;
    }
    summary.textContent =
      "Latest: " + format(point.processed) + " processed and " + format(point.failed) +
      " failed per minute; " + format(point.pending) + " pending, " + format(point.running) +
      " running; the oldest pending job waited " + format(point.latency) + " s.";
    holder.dataset.points = String(data.t.length + (live ? 1 : 0));
    holder.dataset.live = live ? String(live.processed) : "";
  }

  function lastOf(d) {
    const n = d.t.length - 1;
    if (n < 0) return null;
    const point = {};
    for (const key of Object.keys(d)) if (Array.isArray(d[key])) point[key] = d[key][n];
    return point;
  }

  async function load() {
    try {
      const response = await fetch(holder.dataset.history + "?minutes=" + minutes, { credentials: "same-origin" });
      if (!response.ok) return;
      data = await response.json();
      live = null;
      build();
    } catch (err) {
      // the next minute's load tries again
    }
  }

  // A live point from queue summaries (the stream's counts): the runs since the newest note
  // over the time since it, per minute; the depths and latency as they are now.
  function livePoint(queues) {
    if (!data || !data.last || !queues.length) return;
    const at = Math.max(...queues.map((q) => q.read_at || 0));
    const span = (at - data.last.t) / 60;
    if (span <= 0) return;
    const sum = (f) => queues.reduce((n, q) => n + f(q), 0);
    const done = sum((q) => q.totals.completed + q.totals.failed);
    live = {
      t: at,
      processed: Math.max(0, done - data.last.completed - data.last.failed) / span,
      failed: Math.max(0, sum((q) => q.totals.failed) - data.last.failed) / span,
      pending: sum((q) => q.counts.pending),
      scheduled: sum((q) => q.counts.scheduled),
      running: sum((q) => q.counts.running),
      latency: Math.max(...queues.map((q) => q.latency || 0)),
    };
    redraw();
  }

  const mine = holder.dataset.queue;
  document.addEventListener("rj:queue", (e) => {
    if (mine && e.detail.name === mine) livePoint([e.detail]);
  });
  document.addEventListener("rj:overview", (e) => {
    if (!mine) livePoint(e.detail.queues);
  });

  for (const button of holder.querySelectorAll("[data-range]")) {
    button.addEventListener("click", () => {
      minutes = Number(button.dataset.range);
      for (const b of holder.querySelectorAll("[data-range]")) b.setAttribute("aria-pressed", String(b === button));
      load();
    });
  }
  window.addEventListener("resize", () => {
    for (const c of charts) c.plot.setSize({ width: c.box.clientWidth || 320, height: 170 });
  });
  const dark = window.matchMedia("(prefers-color-scheme: dark)");
  if (dark.addEventListener) dark.addEventListener("change", build);
  setInterval(load, 60000);
  load();
})();
