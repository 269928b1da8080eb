"use strict";
// Tables: the summary cards, the population (sortable), the faults, the workers, and the
// list of experiments.

PT.sort = { key: "score", dir: -1 };

PT.summary = function (D) {
  const s = D.summary;
  const pct = Math.round((s.progress || 0) * 1000) / 10;
  const best = s.best ? `member ${s.best.member}: ${PT.score(s.best.score)}` : "-";
  const cards = [
    ["state", `<span class="state ${PT.esc(s.state)}">${PT.esc(s.state)}</span>` +
      (s.reason ? `<div class="muted small" title="${PT.esc(s.reason)}">${PT.esc(PT.firstLine(s.reason, 160))}</div>` : ""), "state"],
    ["progress", `${pct}%<div class="bar"><i style="width:${Math.min(100, pct)}%"></i></div>` +
      `<div class="muted small">${s.trained} of ${s.target} member-steps</div>`, "progress"],
    ["compute", `${s.compute} <span class="muted small">member-steps trained</span>`, "compute"],
    ["steps recorded", `<span id="steps-recorded">${D.total}</span>`, "recorded"],
    ["elapsed", PT.duration(s.elapsed), "elapsed"],
    ["best " + PT.esc(D.info.metric) + " (" + PT.esc(D.info.mode) + ")", PT.esc(best), "best"],
    ["exploits · faults", `${s.exploits} · ${s.faults}`, "counts"],
  ];
  document.getElementById("summary").innerHTML = cards.map(([k, v, id]) =>
    `<div class="card" data-card="${id}"><div class="card-k">${k}</div><div class="card-v">${v}</div></div>`).join("");
};

PT.stateOf = function (m) {
  if (m.done) return "done";
  if (m.failures > 0) return `${m.failures} fault${m.failures > 1 ? "s" : ""}`;
  if (m.worker) return "leased";
  return m.step > 0 ? "training" : "waiting";
};

PT.population = function (D) {
  const table = document.getElementById("population");
  const names = Object.keys(D.info.space || {});
  const distributed = D.info.distributed;
  const cols = [["id", "member"], ["step", "step"], ["score", D.info.metric]]
    .concat(names.map((n) => ["h." + n, n]))
    .concat([["state", "state"], ["decisions", "decisions"]])
    .concat(distributed ? [["worker", "worker"]] : []);
  const key = (m, k) => {
    if (k.startsWith("h.")) { const v = m.h[k.slice(2)]; return typeof v === "number" ? v : String(v); }
    if (k === "state") return PT.stateOf(m);
    if (k === "score") {
      if (m.score === null) return -Infinity;
      return D.info.mode === "min" ? -m.score : m.score;
    }
    return m[k] === null || m[k] === undefined ? "" : m[k];
  };
  const rows = Object.values(D.members);
  const { key: sk, dir } = PT.sort;
  rows.sort((a, b) => {
    const x = key(a, sk), y = key(b, sk);
    const c = x < y ? -1 : x > y ? 1 : a.id - b.id;
    return x === y ? a.id - b.id : c * dir;
  });
  const best = D.best ? D.best.member : null;
  const arrow = (k) => (k === sk ? (dir > 0 ? " &#9650;" : " &#9660;") : "");
  let html = "<thead><tr>" + cols.map(([k, label]) =>
    `<th data-key="${PT.esc(k)}" class="${k === "id" || k === "step" || k === "score" || k === "decisions" ? "num" : ""}">${PT.esc(label)}${arrow(k)}</th>`).join("") + "</tr></thead><tbody>";
  for (const m of rows) {
    const isBest = m.id === best;
    html += `<tr data-member="${m.id}" class="${isBest ? "best" : ""}${m.id === PT.scores.focus ? " focus" : ""}">` +
      `<td class="num"><i class="dot" style="background:${PT.color(m.id)}"></i>${isBest ? "&#9733; " : ""}${m.id}</td>` +
      `<td class="num">${m.step}</td><td class="num">${m.score === null ? "-" : PT.score(m.score)}</td>` +
      names.map((n) => `<td>${PT.esc(PT.value(m.h[n]))}</td>`).join("") +
      `<td>${PT.esc(PT.stateOf(m))}</td><td class="num">${m.decisions}</td>` +
      (distributed ? `<td>${PT.esc(m.worker || "-")}</td>` : "") + "</tr>";
  }
  table.innerHTML = html + "</tbody>";
};

PT.faults = function (D) {
  const el = document.getElementById("faults");
  if (!D.faults.length) { el.innerHTML = `<p class="muted">No faults.</p>`; return; }
  const shown = D.faults.slice(-100).reverse();
  el.innerHTML = (D.faults.length > 100 ? `<p class="muted">The latest 100 of ${D.faults.length}.</p>` : "") +
    shown.map((f) => `<details class="fault"><summary><b>member ${f.member}</b>, step ${f.step}: ` +
      `<span class="kind">${PT.esc(f.kind)}</span> ${PT.esc(f.message)}</summary>` +
      `<pre>${PT.esc(f.stderr || "(no stderr)")}</pre></details>`).join("");
};

PT.workers = function (D) {
  const panel = document.getElementById("workers-panel");
  if (!D.workers) { panel.hidden = true; return; }
  panel.hidden = false;
  const rows = D.workers.map((w) => `<tr><td>${PT.esc(w.worker)}</td><td>${w.members.join(", ")}</td></tr>`).join("");
  document.getElementById("workers").innerHTML = "<thead><tr><th>worker</th><th>members it holds a lease on</th></tr></thead><tbody>" +
    (rows || `<tr><td colspan="2" class="muted">No live lease.</td></tr>`) + "</tbody>";
};

PT.experimentList = function (list, token) {
  const q = (id) => "?experiment=" + encodeURIComponent(id) + (token ? "&token=" + encodeURIComponent(token) : "");
  const rows = list.map((x) => {
    if (x.error) return `<tr><td>${PT.esc(x.id)}</td><td colspan="4" class="error">${PT.esc(x.error)}</td></tr>`;
    const pct = Math.round((x.progress || 0) * 1000) / 10;
    const best = x.best ? `${PT.score(x.best.score)} (member ${x.best.member})` : "-";
    return `<tr><td><a href="${q(x.id)}">${PT.esc(x.name)}</a></td><td><span class="state ${PT.esc(x.state)}" title="${PT.esc(x.status)}">${PT.esc(PT.firstLine(x.status, 80))}</span></td>` +
      `<td>${pct}%<div class="bar"><i style="width:${Math.min(100, pct)}%"></i></div></td>` +
      `<td class="num">${PT.esc(best)}</td><td class="num">${x.population}</td></tr>`;
  }).join("");
  document.getElementById("experiments").innerHTML =
    "<thead><tr><th>experiment</th><th>status</th><th>progress</th><th class=num>best score</th><th class=num>members</th></tr></thead><tbody>" + rows + "</tbody>";
};
