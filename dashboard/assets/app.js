// shoal dashboard: a model of nodes, services and tasks loaded from
// /api/state and kept current by the server-sent events of /api/events.
// Plain JavaScript, no framework, no build step.
"use strict";

const RUNNING = 512, COMPLETE = 576;
const TASK_ROWS = 500; // rows the task table shows at most
const FEED_LINES = 200;

const model = { nodes: new Map(), services: new Map(), tasks: new Map() };
let loading = false, pending = [], live = false;
window.dashboard = { loads: 0, changes: 0, model: model, firstRender: 0, drawMs: 0 };

// ---------- helpers

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat()) {
    if (k === undefined || k === null) continue;
    el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return el;
}

const short = (id) => (id || "").slice(0, 12);

// naturalLess orders names with numbers by value: web.2 < web.10.
const collator = new Intl.Collator(undefined, { numeric: true });
const natural = (a, b) => collator.compare(a, b);

// humanDuration is Docker's units.HumanDuration, as `service ps` words ages.
function humanDuration(ms) {
  const s = Math.floor(ms / 1000);
  if (s < 1) return "less than a second";
  if (s === 1) return "1 second";
  if (s < 60) return s + " seconds";
  const m = Math.floor(ms / 60000);
  if (m === 1) return "about a minute";
  if (m < 60) return m + " minutes";
  const hr = Math.floor(ms / 3600000 + 0.5);
  if (hr === 1) return "about an hour";
  if (hr < 48) return hr + " hours";
  if (hr < 24 * 7 * 2) return Math.floor(hr / 24) + " days";
  if (hr < 24 * 30 * 2) return Math.floor(hr / 24 / 7) + " weeks";
  if (hr < 24 * 365 * 2) return Math.floor(hr / 24 / 30) + " months";
  return Math.floor(ms / 3600000 / 24 / 365) + " years";
}
const ago = (ts) => (ts ? humanDuration(Date.now() - Date.parse(ts)) + " ago" : "");

function bytes(n) {
  if (!n) return "";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (n >= 10 || i === 0 ? Math.round(n) : n.toFixed(1)) + " " + u[i];
}

// ---------- service counts, as `service ls` counts them (CountTasks)

const isJob = (s) => s.mode === "replicated job" || s.mode === "global job";
const isGlobal = (s) => s.mode === "global" || s.mode === "global job";

function serviceTasks() {
  const by = new Map();
  for (const t of model.tasks.values()) {
    let l = by.get(t.serviceId);
    if (!l) by.set(t.serviceId, (l = []));
    l.push(t);
  }
  return by;
}

function counts(s, tasks) {
  let running = 0, completed = 0, updated = 0;
  const nodes = new Set();
  for (const t of tasks || []) {
    if (isJob(s) && (t.jobIteration || 0) !== (s.jobIteration || 0)) continue;
    const wanted = t.desiredNum <= RUNNING || (isJob(s) && t.desiredNum === COMPLETE);
    if (wanted && t.stateNum === RUNNING) {
      running++;
      if (t.specVersion === s.specVersion) updated++;
    }
    if (isJob(s) && t.stateNum === COMPLETE) completed++;
    if (isGlobal(s) && t.desiredNum <= RUNNING && t.nodeId) nodes.add(t.nodeId);
  }
  let desired = 0;
  if (s.mode === "replicated") desired = s.replicas;
  else if (s.mode === "replicated job") {
    const total = s.totalCompletions || Math.max(s.maxConcurrent || 0, 1);
    const conc = s.maxConcurrent || total;
    desired = Math.min(conc, total - Math.min(total, completed));
  } else desired = nodes.size;
  let text = running + "/" + desired;
  if (s.mode === "replicated" && s.maxPerNode) text += " (max " + s.maxPerNode + " per node)";
  if (s.mode === "replicated job") {
    const total = s.totalCompletions || Math.max(s.maxConcurrent || 0, 1);
    text += " (" + completed + "/" + total + " completed)";
  }
  if (s.mode === "global job") text += " (" + completed + "/" + (desired + completed) + " completed)";
  return { running, desired, completed, updated, text };
}

// ---------- applying state and changes

async function load() {
  loading = true;
  try {
    const r = await fetch("/api/state", { headers: { Accept: "application/json" } });
    const body = await r.json();
    if (!r.ok) throw new Error(body.message || r.statusText);
    model.nodes.clear(); model.services.clear(); model.tasks.clear();
    for (const n of body.nodes) model.nodes.set(n.id, n);
    for (const s of body.services) model.services.set(s.id, s);
    for (const t of body.tasks) model.tasks.set(t.id, t);
    window.dashboard.loads++;
  } catch (e) {
    notice("Could not load the cluster: " + e.message);
  } finally {
    loading = false;
  }
  const queued = pending; pending = [];
  for (const c of queued) apply(c, false);
  render();
}

const maps = { node: model.nodes, service: model.services, task: model.tasks };

function apply(c, feed) {
  const m = maps[c.kind];
  if (!m) return;
  const old = m.get(c.object.id);
  if (c.action === "delete") {
    m.delete(c.object.id);
  } else {
    if (old && old.version > c.object.version) return; // older than what we have
    m.set(c.object.id, c.object);
  }
  window.dashboard.changes++;
  if (feed) feedLine(c, old);
}

function feedLine(c, old) {
  const o = c.object;
  let text = null;
  if (c.kind === "service") {
    text = "service " + o.name + " " + c.action;
    if (o.updateState && (!old || old.updateState !== o.updateState)) text += " (" + o.updateState + ")";
  } else if (c.kind === "node") {
    text = "node " + (o.hostname || short(o.id)) + " " + c.action;
    if (old) {
      const diffs = [];
      if (old.status !== o.status) diffs.push(o.status);
      if (old.availability !== o.availability) diffs.push(o.availability);
      if (old.managerStatus !== o.managerStatus && o.managerStatus) diffs.push(o.managerStatus);
      if (diffs.length) text = "node " + (o.hostname || short(o.id)) + ": " + diffs.join(", ");
    }
  } else if (c.kind === "task") {
    if (c.action === "delete") return; // history trimming: not news
    if (old && old.state === o.state && old.desiredState === o.desiredState) return;
    text = "task " + o.name + " (" + short(o.id) + ") " + o.state;
    if (o.desiredState !== "Running" && o.desiredState !== o.state) text += ", desired " + o.desiredState;
    if (o.error) text += ": " + o.error;
  }
  if (!text) return;
  const feed = document.getElementById("feed");
  feed.prepend(h("li", {}, h("time", {}, new Date().toLocaleTimeString()), text));
  while (feed.childElementCount > FEED_LINES) feed.lastElementChild.remove();
}

// ---------- rendering, coalesced to one draw per animation frame (a
// burst of changes is drawn once; a background tab draws when shown)

let scheduled = false;
function render() {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => {
    scheduled = false;
    const t0 = performance.now();
    draw();
    window.dashboard.drawMs = performance.now() - t0;
    if (!window.dashboard.firstRender && window.dashboard.loads) {
      window.dashboard.firstRender = performance.now();
    }
  });
}

function draw() {
  const byService = serviceTasks();
  const hostname = (id) => (model.nodes.get(id) || {}).hostname || id;
  drawRaft();
  drawNodes();
  drawServices(byService);
  drawTasks(hostname);
  const badge = document.getElementById("live");
  badge.textContent = live ? "live" : "reconnecting…";
  badge.className = "badge" + (live ? "" : " off");
}

function drawRaft() {
  const managers = [...model.nodes.values()].filter((n) => n.managerStatus);
  managers.sort((a, b) => natural(a.hostname, b.hostname));
  const reachable = managers.filter((n) => /^(Leader|Reachable)/.test(n.managerStatus)).length;
  const leader = managers.find((n) => n.managerStatus.startsWith("Leader"));
  const quorum = Math.floor(managers.length / 2) + 1;
  const el = document.getElementById("raft");
  el.replaceChildren(
    h("span", { id: "raft-summary" }, "Raft: leader " + (leader ? leader.hostname : "none") + ", " + reachable + "/" +
      managers.length + " managers reachable" + (reachable < quorum ? " (no quorum)" : "")),
    ...managers.map((n) => h("span", { class: "member " + n.managerStatus.split(" ")[0], title: n.raftAddr },
      n.hostname + ": " + n.managerStatus)));
}

function drawNodes() {
  const nodes = [...model.nodes.values()].sort((a, b) => natural(a.hostname, b.hostname));
  const tasksOn = new Map();
  for (const t of model.tasks.values()) {
    if (t.nodeId && t.desiredNum <= RUNNING) tasksOn.set(t.nodeId, (tasksOn.get(t.nodeId) || 0) + 1);
  }
  document.getElementById("node-count").textContent = nodes.length;
  keyed(document.querySelector("#nodes tbody"), rowCache.nodes, nodes,
    (n) => n.version + "|" + n.status + "|" + (tasksOn.get(n.id) || 0), (n) => {
    const labels = Object.entries(n.labels || {}).map(([k, v]) => k + "=" + v).sort().join(", ");
    const next = n.availability === "Active" ? "drain" : "active";
    return h("tr", { "data-id": n.id, "data-hostname": n.hostname },
      h("td", { class: "mono" }, short(n.id)),
      h("td", {}, n.hostname),
      h("td", {}, n.role),
      h("td", { class: "status st-" + n.status }, n.status),
      h("td", { class: "availability st-" + n.availability }, n.availability),
      h("td", { class: "manager st-" + (n.managerStatus || "").split(" ")[0] }, n.managerStatus),
      h("td", {}, labels),
      h("td", {}, n.nanoCPUs ? (n.nanoCPUs / 1e9).toString() : ""),
      h("td", {}, bytes(n.memoryBytes)),
      h("td", { class: "tasks" }, tasksOn.get(n.id) || 0),
      h("td", {}, h("button", { class: "node-" + next, onclick: () => confirmNode(model.nodes.get(n.id) || n, next) },
        next === "drain" ? "Drain" : "Activate")));
  });
  const sel = document.getElementById("task-node");
  fillSelect(sel, nodes.map((n) => [n.id, n.hostname]));
}

function drawServices(byService) {
  const services = [...model.services.values()].sort((a, b) => natural(a.name, b.name));
  document.getElementById("service-count").textContent = services.length;
  const cs = new Map(services.map((s) => [s.id, counts(s, byService.get(s.id))]));
  keyed(document.querySelector("#services tbody"), rowCache.services, services,
    (s) => s.version + "|" + cs.get(s.id).text + "|" + cs.get(s.id).updated, (s) => {
    const c = cs.get(s.id);
    let update = "";
    if (s.updateState) {
      const inProgress = s.updateState === "updating" || s.updateState === "rollback_started";
      const bar = h("span", { class: "progress" }, h("span"));
      bar.firstChild.style.width = (c.desired ? Math.min(100, 100 * c.updated / c.desired) : 100) + "%";
      update = h("span", { class: "st-" + s.updateState, title: s.updateMessage || "" },
        inProgress ? bar : null, s.updateState + (inProgress ? " " + c.updated + "/" + c.desired : ""));
    }
    return h("tr", { "data-id": s.id, "data-name": s.name },
      h("td", { class: "mono" }, short(s.id)),
      h("td", {}, s.name),
      h("td", {}, s.mode),
      h("td", { class: "replicas" }, c.text),
      h("td", {}, s.image),
      h("td", {}, s.ports),
      h("td", { class: "update" }, update),
      h("td", {},
        s.mode === "replicated" || s.mode === "replicated job"
          ? h("button", { class: "scale", onclick: () => confirmScale(model.services.get(s.id) || s) }, "Scale") : null,
        " ",
        s.canRollback ? h("button", { class: "rollback", onclick: () => confirmRollback(model.services.get(s.id) || s) }, "Rollback") : null));
  });
  fillSelect(document.getElementById("task-service"), services.map((s) => [s.id, s.name]));
}

function fillSelect(sel, options) {
  const key = options.map((o) => o.join("=")).join("\n");
  if (sel.dataset.key === key) return;
  const value = sel.value;
  sel.replaceChildren(h("option", { value: "" }, "all"), ...options.map(([v, t]) => h("option", { value: v }, t)));
  sel.value = value;
  sel.dataset.key = key;
}

// keyed fills body with one row per item, rebuilding a row only when its
// signature changed and touching the DOM only when the rows differ.
function keyed(body, cache, items, sig, build) {
  const next = new Map();
  const rows = items.map((it) => {
    const s = sig(it);
    let e = cache.get(it.id);
    if (!e || e.sig !== s) e = { sig: s, tr: build(it) };
    next.set(it.id, e);
    return e.tr;
  });
  cache.clear();
  for (const [k, v] of next) cache.set(k, v);
  const kids = body.children;
  let same = kids.length === rows.length;
  for (let i = 0; same && i < rows.length; i++) same = kids[i] === rows[i];
  if (!same) body.replaceChildren(...rows);
}
const rowCache = { nodes: new Map(), services: new Map(), tasks: new Map() };

// drawTasks lists tasks as `service ps` does: by name, the newest task of a
// slot first and its history indented under it.
function drawTasks(hostname) {
  const svc = document.getElementById("task-service").value;
  const node = document.getElementById("task-node").value;
  const history = document.getElementById("task-history").checked;
  let tasks = [...model.tasks.values()].filter((t) => (!svc || t.serviceId === svc) && (!node || t.nodeId === node));
  // Order as `service ps`: service names naturally (ranked once), then the
  // slot (or node ID), then the newest first; no collator per comparison.
  const names = new Set();
  for (const t of tasks) {
    if (t._svc === undefined) {
      const i = t.name.lastIndexOf(".");
      t._svc = t.name.slice(0, i);
    }
    names.add(t._svc);
  }
  const rank = new Map([...names].sort(natural).map((n, i) => [n, i]));
  tasks.sort((a, b) => rank.get(a._svc) - rank.get(b._svc) || a.slot - b.slot ||
    (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0) || (b.timestamp || "").localeCompare(a.timestamp || ""));
  const shown = [];
  let prev = null;
  for (const t of tasks) {
    const older = prev !== null && prev === t.name;
    prev = t.name;
    if (older && !history) continue;
    if (shown.length >= TASK_ROWS) break;
    shown.push({ id: t.id, t: t, older: older, host: t.nodeId ? hostname(t.nodeId) : "", age: ago(t.timestamp) });
  }
  const body = document.querySelector("#tasks tbody");
  body.querySelector("tr.more-row")?.remove();
  keyed(body, rowCache.tasks, shown, (r) => r.t.version + "|" + r.older + "|" + r.host + "|" + r.age, (r) => {
    const t = r.t, older = r.older;
    return h("tr", { "data-id": t.id, "data-name": t.name, "data-state": t.state, class: older ? "history" : "" },
      h("td", { class: "mono" }, short(t.id)),
      h("td", { class: "name" }, (older ? " \\_ " : "") + t.name),
      h("td", {}, t.image),
      h("td", {}, r.host),
      h("td", { class: "desired st-" + t.desiredState }, t.desiredState),
      h("td", { class: "state st-" + t.state, title: t.message || "" }, t.state + " " + r.age),
      h("td", { class: "err" }, t.error ? JSON.stringify(t.error) : ""));
  });
  const rows = shown;
  document.getElementById("task-count").textContent = tasks.length;
  if (tasks.length > rows.length) {
    body.append(h("tr", { class: "more-row" }, h("td", { colspan: 7, class: "more" },
      "showing " + rows.length + " of " + tasks.length + " tasks: choose a service or a node")));
  }
}

// ---------- actions, each behind a confirmation

function notice(msg, ok) {
  const el = document.getElementById("notice");
  el.textContent = msg;
  el.className = ok ? "ok" : "";
  el.hidden = !msg;
}

function ask(text, field) {
  const dlg = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  const label = document.getElementById("confirm-field");
  const input = document.getElementById("confirm-input");
  label.hidden = field === undefined;
  if (field !== undefined) input.value = field;
  return new Promise((resolve) => {
    dlg.addEventListener("close", () => resolve(dlg.returnValue === "ok" ? input.value : null), { once: true });
    dlg.returnValue = "";
    dlg.showModal();
  });
}

async function act(url, body, done) {
  try {
    const r = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const out = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(out.message || r.statusText);
    notice(done, true);
  } catch (e) {
    notice(e.message);
  }
}

async function confirmScale(s) {
  const v = await ask("Scale service " + s.name + " to how many replicas?", s.mode === "replicated" ? s.replicas : s.maxConcurrent);
  if (v === null) return;
  const n = Number(v);
  await act("/api/services/" + s.id + "/scale", { version: s.version, replicas: Number.isInteger(n) ? n : -1 },
    s.name + " scaled to " + v);
}

async function confirmRollback(s) {
  if (await ask("Roll service " + s.name + " back to its previous specification?") === null) return;
  await act("/api/services/" + s.id + "/rollback", { version: s.version }, s.name + ": rollback started");
}

async function confirmNode(n, availability) {
  const what = availability === "drain" ? "Drain node " + n.hostname + "? Its tasks move to other nodes."
    : "Make node " + n.hostname + " active again?";
  if (await ask(what) === null) return;
  await act("/api/nodes/" + n.id + "/availability", { version: n.version, availability: availability },
    n.hostname + ": " + availability);
}

// ---------- the event stream

function connect() {
  const es = new EventSource("/api/events");
  es.addEventListener("hello", () => { live = true; load(); });
  es.addEventListener("resync", () => load());
  es.addEventListener("change", (e) => {
    const c = JSON.parse(e.data);
    if (loading) { pending.push(c); return; }
    apply(c, true);
    render();
  });
  es.onerror = () => { live = false; render(); };
}

document.getElementById("task-service").addEventListener("change", render);
document.getElementById("task-node").addEventListener("change", render);
document.getElementById("task-history").addEventListener("change", render);
setInterval(render, 5000); // ages
connect();
