// redisjobs dashboard: live updates from the server's event stream. No framework, no build.
// Pages are rendered on the server; this only changes what the stream reports, and always
// through textContent (innerHTML only takes fragments our server rendered and escaped: a job's
// detail, a list page's list).
"use strict";

(function () {
  const FINAL = new Set(["completed", "failed", "cancelled"]);
  const body = document.body;
  const page = body.dataset.page;

  // -- small helpers ---------------------------------------------------------------------------

  function number(n) {
    return Number(n || 0).toLocaleString("en-US");
  }

  function rate(perSecond) {
    if (!perSecond) return "0";
    if (perSecond < 1) return perSecond.toFixed(2);
    if (perSecond < 100) return perSecond.toFixed(1);
    return Math.round(perSecond).toLocaleString("en-US");
  }

  function duration(seconds) {
    if (seconds < 1) return Math.round(seconds * 1000) + " ms";
    if (seconds < 10) return seconds.toFixed(1) + " s";
    if (seconds < 60) return Math.round(seconds) + " s";
    const minutes = Math.floor(seconds / 60);
    const secs = Math.floor(seconds % 60);
    if (minutes < 60) return secs ? minutes + " min " + secs + " s" : minutes + " min";
    const hours = Math.floor(minutes / 60);
    if (hours < 48) return minutes % 60 ? hours + " h " + (minutes % 60) + " min" : hours + " h";
    return Math.floor(hours / 24) + " d " + (hours % 24) + " h";
  }

  function ago(date) {
    const seconds = (Date.now() - date.getTime()) / 1000;
    if (seconds < 0) return "in " + duration(-seconds);
    return seconds < 1 ? "just now" : duration(seconds) + " ago";
  }

  function dig(obj, path) {
    return path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
  }

  function setText(el, text) {
    if (el && el.textContent !== text) el.textContent = text;
  }

  function timeEl(ms) {
    const t = document.createElement("time");
    const d = new Date(ms);
    t.dateTime = d.toISOString();
    t.title = d.toISOString();
    t.textContent = ago(d);
    return t;
  }

  // Relative times ("12 s ago") stay true while the page is open.
  function refreshTimes() {
    for (const t of document.querySelectorAll("time[datetime]")) {
      setText(t, ago(new Date(t.dateTime)));
    }
  }
  setInterval(refreshTimes, 5000);

  // Buttons that destroy something ask first.
  document.addEventListener("submit", (e) => {
    const form = e.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      e.preventDefault();
    }
  });

  // Bulk actions: the header's box ticks every job of the page; the bar says how many are.
  const pickAll = document.querySelector("[data-pick-all]");
  const boxes = () => document.querySelectorAll('input[name="ids"][form="bulk"]');
  function showPicked() {
    const n = Array.from(boxes()).filter((box) => box.checked).length;
    setText(document.querySelector("[data-selected]"), n ? n + " selected:" : "With the selected jobs:");
    for (const button of document.querySelectorAll("#bulk button")) button.disabled = n === 0;
  }
  if (pickAll) {
    pickAll.addEventListener("change", () => {
      for (const box of boxes()) box.checked = pickAll.checked;
      showPicked();
    });
    document.addEventListener("change", (e) => {
      if (e.target instanceof HTMLInputElement && e.target.name === "ids") showPicked();
    });
    showPicked();
  }

  // -- what each event changes -----------------------------------------------------------------

  function applyCounts(root, q) {
    if (!root) return;
    for (const el of root.querySelectorAll("[data-count]")) {
      const value = dig(q, el.dataset.count);
      if (value !== undefined) {
        setText(el, number(value));
        const tile = el.closest(".count");
        if (tile) tile.classList.toggle("zero", !value);
      }
    }
    for (const el of root.querySelectorAll("[data-rate]")) {
      setText(el, rate(q.rates[el.dataset.rate]));
    }
  }

  function applyQueue(q) {
    document.dispatchEvent(new CustomEvent("rj:queue", { detail: q })); // the charts' live point
    if (page === "overview") {
      const card = document.querySelector('.card[data-queue="' + CSS.escape(q.name) + '"]');
      if (!card) return;
      applyCounts(card, q);
      const w = card.querySelector('[data-field="workers"]');
      setText(w, q.workers + (q.workers === 1 ? " worker" : " workers") + " · " + q.busy + "/" + q.slots + " busy");
      const warning = card.querySelector('[data-field="warning"]');
      if (warning) {
        warning.hidden = !q.warning;
        setText(warning, q.warning || "");
      }
    } else if (page === "queue") {
      for (const root of document.querySelectorAll('[data-queue="' + CSS.escape(q.name) + '"]')) {
        applyCounts(root, q);
        setText(root.querySelector('[data-field="workers"]'), String(q.workers));
      }
      const warning = document.querySelector("[data-queue-warning]");
      if (warning) {
        warning.hidden = !q.warning;
        setText(warning, q.warning || "");
      }
    }
  }

  function applyOverview(o) {
    document.dispatchEvent(new CustomEvent("rj:overview", { detail: o }));
    for (const q of o.queues) applyQueue(q);
    if (page !== "overview") return;
    setText(document.querySelector('[data-total="workers"]'), number(o.workers));
    setText(document.querySelector('[data-total="queues"]'), number(o.queues.length));
    const total = o.queues.reduce((sum, q) => sum + (q.rates.completed || 0), 0);
    setText(document.querySelector('[data-total="rate"]'), rate(total));
  }

  function applyStatus(root, status) {
    const badge = root.querySelector('[data-field="status"]');
    if (badge && status) {
      badge.className = "badge st-" + status;
      setText(badge, status);
    }
  }

  function applyProgress(root, value, message) {
    const bar = root.querySelector('progress[data-field="progress"]');
    if (bar) bar.value = value;
    const pct = root.querySelector('[data-field="pct"]');
    if (pct) setText(pct, (page === "job" ? Math.round(value * 10) / 10 : Math.round(value)) + "%");
    if (message !== undefined) setText(root.querySelector('[data-field="message"]'), message || "");
  }

  // The status an event leaves its job in.
  const STATUS_AFTER = {
    enqueued: "pending", started: "running", progress: "running", retrying: "scheduled",
    reclaimed: "pending", released: "pending", deferred: "scheduled", completed: "completed", failed: "failed",
    cancelled: "cancelled", ready: "pending", waiting: "waiting",
  };

  function applyJobEvent(root, ev) {
    const status = STATUS_AFTER[ev.type];
    applyStatus(root, status);
    for (const holder of root.querySelectorAll(".bar, .progress-panel")) {
      holder.className = holder.className.replace(/\bis-\w+/, "is-" + status);
    }
    if (ev.type === "progress") applyProgress(root, ev.data.progress, ev.data.message);
    if (ev.type === "completed") applyProgress(root, 100);
    if (ev.type === "started") {
      applyProgress(root, 0, "");
      setText(root.querySelector('[data-field="attempt"]'), String(ev.attempt));
      setText(root.querySelector('[data-field="worker"]'), ev.data.worker || "");
    }
  }

  function details(ev) {
    const d = ev.data || {};
    const parts = [];
    if (d.progress !== undefined) parts.push((Math.round(d.progress) + "% " + (d.message || "")).trim());
    if (d.worker) parts.push("on " + d.worker);
    if (d.error) parts.push(String(d.error));
    if (d.due) parts.push("retry at " + new Date(d.due).toISOString().slice(11, 19) + " UTC");
    if (d.crashes !== undefined) parts.push(d.crashes + " crashed deliveries");
    if (d.requeued) parts.push("back to the queue");
    if (d.result !== undefined) parts.push("→ " + JSON.stringify(d.result));
    const text = parts.join(" · ");
    return text.length > 160 ? text.slice(0, 159) + "…" : text;
  }

  // A run of progress events shows as one row, the latest, with how many it stands for.
  function appendEvent(ev) {
    const tbody = document.getElementById("events");
    if (!tbody) return;
    const placeholder = tbody.querySelector(".placeholder");
    if (placeholder) placeholder.remove();
    const last = tbody.lastElementChild;
    let n = 1;
    if (ev.type === "progress" && last && last.dataset.type === "progress" && last.dataset.attempt === String(ev.attempt)) {
      n = Number(last.dataset.n || 1) + 1;
      last.remove();
    }
    const tr = document.createElement("tr");
    tr.className = "flash";
    tr.dataset.type = ev.type;
    tr.dataset.attempt = String(ev.attempt);
    tr.dataset.n = String(n);
    const cells = [timeEl(ev.ts), null, String(ev.attempt), details(ev) + (n > 1 ? " (" + n + " updates)" : "")];
    cells.forEach((content, i) => {
      const td = document.createElement("td");
      if (i === 1) {
        const badge = document.createElement("span");
        badge.className = "badge ev-" + ev.type;
        badge.textContent = ev.type;
        td.appendChild(badge);
      } else if (content instanceof Node) {
        td.appendChild(content);
      } else {
        td.textContent = content;
      }
      if (i === 2) td.className = "num";
      if (i === 3) td.className = "small";
      tr.appendChild(td);
    });
    tbody.appendChild(tr);
  }

  // The job page's result, error and log lines: fetched again (at most once a second) while
  // events come in, since log lines are not events.
  let detailTimer = null;
  function refreshDetail() {
    const head = document.querySelector("[data-detail]");
    const box = document.getElementById("job-detail");
    if (!head || !box || detailTimer) return;
    detailTimer = setTimeout(async () => {
      detailTimer = null;
      try {
        const response = await fetch(head.dataset.detail, { credentials: "same-origin" });
        if (response.ok) {
          box.innerHTML = await response.text();
          tailLogs();
        }
      } catch (err) {
        // The stream reconnects by itself; the next event fetches again.
      }
    }, 1000);
  }

  // A log reads from its end: show the latest lines.
  function tailLogs() {
    for (const pre of document.querySelectorAll("pre.log")) pre.scrollTop = pre.scrollHeight;
  }
  tailLogs();

  // A list page (workers, dead letters, schedules, limits) gets its list anew when it changed.
  // While rows are ticked for a bulk action the new list waits, so that no choice is lost.
  let heldFragment = null;
  function ticked() {
    return document.querySelector("#live-part input[type=checkbox]:checked");
  }
  function applyFragment(html) {
    const part = document.getElementById("live-part");
    if (!part) return;
    if (ticked()) {
      heldFragment = html;
      return;
    }
    heldFragment = null;
    if (part.innerHTML !== html) part.innerHTML = html;
    refreshTimes();
  }
  document.addEventListener("change", () => {
    if (heldFragment !== null && !ticked()) applyFragment(heldFragment);
  });

  // -- the stream ------------------------------------------------------------------------------

  const url = body.dataset.stream;
  if (!url || !window.EventSource) return;
  const live = document.getElementById("live");
  const source = new EventSource(url);

  function state(name, label) {
    if (!live) return;
    live.dataset.state = name;
    setText(live, label);
  }

  source.onopen = () => state("live", "live");
  source.onerror = () => state("reconnecting", "reconnecting…");
  source.addEventListener("overview", (e) => applyOverview(JSON.parse(e.data)));
  source.addEventListener("fragment", (e) => applyFragment(JSON.parse(e.data).html));
  source.addEventListener("stats", (e) => applyQueue(JSON.parse(e.data)));
  source.onmessage = (e) => {
    const ev = JSON.parse(e.data);
    if (page === "job") {
      const head = document.querySelector(".page-head[data-job]");
      if (!head) return;
      if (head.dataset.job === ev.job_id && head.dataset.queue === ev.queue) {
        applyJobEvent(document, ev);
        appendEvent(ev);
        refreshDetail();
      } else if (document.getElementById("flow")) {
        refreshDetail(); // another job of the flow changed: its tree is part of the detail
      }
    } else if (page === "queue") {
      const row = document.querySelector('tr[data-job="' + CSS.escape(ev.job_id) + '"]');
      if (row) {
        applyJobEvent(row, ev);
        if (FINAL.has(ev.type)) row.classList.add(ev.type === "completed" ? "done" : "over");
      } else if (ev.type === "enqueued") {
        const note = document.getElementById("new-jobs");
        if (note) note.hidden = false;
      }
    }
  };
  // A job's stream ends with `end`: show the page as the server renders a finished job
  // (its result, and the buttons that fit now). That page opens no stream, so this runs once.
  source.addEventListener("end", () => {
    source.close();
    state("ended", "finished");
    const next = new URL(window.location.href);
    next.searchParams.delete("done");
    next.searchParams.delete("n");
    next.searchParams.delete("m");
    setTimeout(() => window.location.replace(next.toString()), 400);
  });
})();
