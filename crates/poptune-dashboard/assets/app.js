"use strict";
// The page: which experiment, where its data comes from (embedded in a static file, or polled
// from the server: only what is new since the cursor), and redrawing when it changes.

const params = new URLSearchParams(location.search);
const TOKEN = params.get("token");
const EMBEDDED = JSON.parse(document.getElementById("poptune-data").textContent);

function emptyData() {
  return {
    gen: "", info: {}, summary: {}, members: {}, steps: {}, total: 0, events: [], faults: [],
    best: null, workers: null, hmemo: {}, cursor: { steps: 0, events: 0, faults: 0, members: 0 },
  };
}
let D = emptyData();
window.poptune = {
  data: () => D,
  pointXY: (m, i) => PT.pointXY(D, m, i),
  updates: 0,
  isStatic: EMBEDDED !== null,
  redraw: () => redraw(),
};

// Takes in one update: appends what is new, replaces what changed.
function apply(u) {
  if (u.reset) D = emptyData();
  if (u.info) D.info = u.info;
  D.gen = u.gen;
  D.summary = u.summary;
  for (const m of u.members) D.members[m.id] = m;
  const st = u.steps;
  if (u.steps_after === D.cursor.steps) {
    for (let i = 0; i < st.m.length; i++) {
      const m = st.m[i];
      const r = D.steps[m] || (D.steps[m] = { e: [], s: [], v: [] });
      r.e.push(st.e[i]); r.s.push(st.s[i]); r.v.push(st.v[i]);
    }
    D.total += st.m.length;
    D.cursor.steps = u.steps_after + st.m.length;
  }
  if (u.events_after === D.cursor.events) {
    for (const e of u.events) D.events.push(e);
    D.cursor.events += u.events.length;
  }
  if (u.faults_after === D.cursor.faults) {
    for (const f of u.faults) D.faults.push(f);
    D.cursor.faults += u.faults.length;
  }
  D.cursor.members = u.members_version;
  D.best = u.best;
  D.workers = u.workers;
  window.poptune.updates++;
  return u.reset || st.m.length > 0 || u.events.length > 0 || u.faults.length > 0 || u.members.length > 0;
}

let pending = false;
function redraw() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    const t0 = performance.now();
    document.getElementById("title").textContent = D.info.name || "dashboard";
    document.title = (D.info.name || "poptune") + " · poptune dashboard";
    PT.summary(D);
    PT.drawScores(D, document.getElementById("scores"));
    PT.legend(D);
    PT.drawTree(D, document.getElementById("tree"));
    PT.drawSchedules(D);
    PT.population(D);
    PT.faults(D);
    PT.workers(D);
    window.poptune.drawMs = performance.now() - t0;
    window.poptune.draws = (window.poptune.draws || 0) + 1;
    // Milliseconds from the start of navigation to the first page drawn with data.
    if (!window.poptune.readyAt && D.total > 0) window.poptune.readyAt = performance.now();
    document.body.dataset.members = String(Object.keys(D.members).length);
  });
}

function setStatus(text, cls) {
  const el = document.getElementById("status");
  el.textContent = text;
  el.className = "status " + (cls || "");
}

function fail(msg) {
  const el = document.getElementById("error");
  el.textContent = msg;
  el.hidden = false;
}

async function getJSON(url) {
  const headers = TOKEN ? { "X-Poptune-Token": TOKEN } : {};
  const r = await fetch(url, { headers, cache: "no-store" });
  const body = await r.json().catch(() => ({ error: r.statusText }));
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

async function poll(id) {
  const c = D.cursor;
  const url = `api/experiment/${encodeURIComponent(id)}/updates?gen=${encodeURIComponent(D.gen)}` +
    `&steps_after=${c.steps}&events_after=${c.events}&faults_after=${c.faults}&members_after=${c.members}`;
  let wait = 1000;
  try {
    const t0 = performance.now();
    const u = await getJSON(url);
    const t1 = performance.now();
    if (apply(u)) redraw();
    window.poptune.timing = { fetchStart: t0, fetched: t1, applied: performance.now() };
    const live = D.summary.state === "running";
    wait = live ? 1000 : 4000;
    setStatus((live ? "live" : D.summary.state) + " · updated " + new Date().toLocaleTimeString(), live ? "live" : "");
    document.getElementById("error").hidden = true;
  } catch (e) {
    setStatus("cannot reach the server; retrying", "bad");
    fail(String(e.message || e));
    wait = 3000;
  }
  setTimeout(() => poll(id), wait);
}

function showExperiment() {
  document.getElementById("list-view").hidden = true;
  document.getElementById("experiment-view").hidden = false;
}

async function start() {
  wire();
  if (EMBEDDED !== null) {
    apply(EMBEDDED);
    showExperiment();
    setStatus("static snapshot · " + (D.summary.state || ""), "");
    redraw();
    return;
  }
  let id = params.get("experiment");
  if (!id) {
    let list;
    try { list = await getJSON("api/experiments"); } catch (e) { fail(String(e.message || e)); return; }
    if (list.length !== 1) {
      document.getElementById("list-view").hidden = false;
      PT.experimentList(list, TOKEN);
      setStatus(`${list.length} experiments`);
      setTimeout(start, 5000);
      return;
    }
    id = list[0].id;
  }
  showExperiment();
  poll(id);
}

function wire() {
  if (wire.done) return;
  wire.done = true;
  const scores = document.getElementById("scores");
  scores.addEventListener("mousemove", (ev) => PT.hoverScores(D, scores, ev));
  scores.addEventListener("mouseleave", () => { document.getElementById("tip").hidden = true; });
  const tree = document.getElementById("tree");
  tree.addEventListener("mousemove", (ev) => PT.hoverTree(D, tree, ev));
  tree.addEventListener("mouseleave", () => { document.getElementById("tree-tip").hidden = true; });
  document.getElementById("yscale").addEventListener("change", redraw);
  document.getElementById("jumps").addEventListener("change", redraw);
  document.getElementById("legend").addEventListener("click", (ev) => {
    const b = ev.target.closest("[data-m]");
    if (!b) return;
    const m = Number(b.dataset.m);
    PT.scores.focus = PT.scores.focus === m ? null : m;
    redraw();
  });
  document.getElementById("population").addEventListener("click", (ev) => {
    const th = ev.target.closest("th[data-key]");
    if (th) {
      const k = th.dataset.key;
      PT.sort = { key: k, dir: PT.sort.key === k ? -PT.sort.dir : k === "score" ? -1 : 1 };
      PT.population(D);
      return;
    }
    const tr = ev.target.closest("tr[data-member]");
    if (tr) {
      const m = Number(tr.dataset.member);
      PT.scores.focus = PT.scores.focus === m ? null : m;
      redraw();
    }
  });
  let resizing = null;
  window.addEventListener("resize", () => { clearTimeout(resizing); resizing = setTimeout(redraw, 100); });
}

start();
